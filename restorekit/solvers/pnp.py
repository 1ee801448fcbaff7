"""Plug-and-play solvers: HQS, ADMM and PGD.

Every prior works here through one step, :func:`~restorekit.solvers.steps.prior_step`: a
Proximal prior (TV, LPN) takes its exact proximal map prox(v, γ) = argmin_z ½‖z − v‖² + γ·R(z),
so the solvers minimise

    ½‖A x − y‖² + R(x)                                                        (P)

(exactly for ADMM and PGD, as a penalty method for HQS); any other prior is a Denoiser and
D(v, σ) stands in for the proximal map, as in Venkatakrishnan et al. 2013 and Zhang et al. 2021
(DPIR). With the Gaussian MAP reading D(·, σ) = prox of σ²Φ, a denoiser prior plays the role of
R = λ·σ_y²·Φ in (P), which is how HQS ties σ_k to its penalty α_k.

A Proximal prior whose prox exists at one weight γ* only (an LPN, see
:func:`~restorekit.priors.base.fixed_prox_weight`) cannot be rescaled, so for it the solvers
keep every prox weight at γ* and weigh the data term instead: they minimise
(λ/2)‖A x − y‖² + R(x) with λ from :func:`~restorekit.solvers.steps.data_weight`.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from ..checks import positive_int
from ..operators import operator_norm
from ..priors.base import Denoiser, Proximal, fixed_prox_weight
from .base import Solver, positive, register
from .steps import (
    FIRST_LEVEL,
    SIGMA_FLOOR,
    continuation_levels,
    data_prox,
    data_weight,
    denoiser_sigma,
    initial_estimate,
    operator_task,
    prior_step,
)


@register
class PnPHQS(Solver):
    """Plug-and-play half-quadratic splitting with a decreasing noise schedule (DPIR).

    Zhang, Li, Zuo, Zhang, Van Gool & Timofte, "Plug-and-Play Image Restoration with Deep
    Denoiser Prior", TPAMI 2021 (DPIR), Algorithm 1 / eqs. (6)–(7). With σ_y the operator's
    noise level (at least 0.001) and σ_k decaying geometrically from ``sigma_max`` to the last
    level σ_K over K iterations, α_k = λ·σ_y²/σ_k²:

        x_k = argmin_x (λ_d/2)‖A x − y‖² + (α_k/2)‖x − z_{k−1}‖²      (closed form or CG)
        z_k = D(x_k, σ_k)          — or prox(x_k, 1/α_k) for a Proximal prior

    starting from z_0 (:func:`~restorekit.solvers.steps.initial_estimate`: the truncated-CG
    pseudo-inverse, the harmonic fill for inpainting; DPIR's shifted bicubic start for
    super-resolution; or ``x_init``); returns z_K clipped to [0, 1]. A Proximal prior carries
    its own weight in R, so for it λ = 1 (``lam`` is not used) and the last step is
    prox(x, σ_y²/σ_K²): the penalty method for (P) with α rising to σ_y²/σ_K², which reaches
    the minimiser of ½‖Ax − y‖² + R(x) only as α → ∞; use ``pnp-admm`` for the exact
    minimiser. A prior with a fixed prox weight γ* (an LPN) keeps α_k = 1/γ* (the σ schedule is
    not used; HQS is then alternating minimisation of (λ_d/2)‖Ax − y‖² + (α/2)‖x − z‖² + R(z)).
    λ_d is the data weight, 1 except for such priors (:func:`~restorekit.solvers.steps.data_weight`).

    Per-task defaults (:attr:`TASKS`, keyed by :meth:`task` of the operator; DPIR's published
    recipes, main_dpir_deblur.py / main_dpir_sisr.py):

    | task  | K  | last level σ_K     | start                                  |
    |-------|----|--------------------|----------------------------------------|
    | blur  | 8  | σ_y                | truncated CG                           |
    | sr    | 24 | max(sf/255, σ_y)   | bicubic upsampling shifted to the grid |
    | other | 24 | σ_y                | truncated CG                           |

    DPIR's SR runs 40 iterations in the paper's table and 24 in its code; 24 here.

    Parameters (DPIR's published settings: λ = 0.23, σ from 49/255 down)
        max_iter: K (None: per task, see above).
        lam: λ, the weight of a denoiser prior against the data (0.23).
        sigma_max: first denoiser level σ_1 (None: per task, :data:`~restorekit.solvers.steps.FIRST_LEVEL`: DPIR's 49/255, and
            0.5 for inpainting, whose start has holes far from any image: on the four gray
            TRAINING images at 64², 50 % random mask, σ_y = 0.01, σ_1 = 49/255 → 0.5 took
            ``dncnn`` from 31.64 to 34.36 dB and ``denoiser-gray`` from 28.33 to 33.82 dB,
            clock alone 30.1 → 41.1 and 18.9 → 41.0; the other three within 0.3 dB). That was
            with the zero-filled start; from the harmonic-fill start the level hardly matters:
            on the nine gray TRAINING images at 64² σ_1 = 49/255, 0.3, 0.5, 0.7 give 33.20 dB
            each on random inpainting and 28.68/28.65/28.56/28.70 on box inpainting (mean of
            dncnn, denoiser-gray, diffusion-gray; benchmarks/first_level.py), so 0.5 is kept.
        sigma_min: last level σ_K (None: per task, see above).
        data_weight: λ_d (None: :func:`data_weight`, i.e. 1 except for fixed-scale priors).
        ensemble: average the denoiser over the 8 flips/rotations of its input (DPIR's ×8
            self-ensemble; 8× the denoiser cost, counted in nfe) (False).
        cg_iter, cg_tol: CG budget for operators without a closed-form prox.
    """

    name = "pnp-hqs"
    needs = Denoiser
    #: Per-task defaults (DPIR): iterations and whether the last level is max(sf/255, σ_y).
    TASKS: ClassVar[dict] = {
        "blur": {"max_iter": 8},
        "sr": {"max_iter": 24},
        "inpainting": {"max_iter": 24},
        "other": {"max_iter": 24},
    }

    def __init__(
        self,
        *,
        max_iter: int | None = None,
        lam: float = 0.23,
        sigma_max: float | None = None,
        sigma_min: float | None = None,
        data_weight: float | None = None,
        ensemble: bool = False,
        cg_iter: int = 30,
        cg_tol: float = 1e-6,
    ):
        self.max_iter = positive(max_iter, "max_iter", integer=True, allow_none=True)
        self.lam = positive(lam, "lam")
        self.data_weight = positive(data_weight, "data_weight", allow_none=True)
        self.sigma_max = None if sigma_max is None else positive(sigma_max, "sigma_max")
        self.sigma_min = positive(sigma_min, "sigma_min", allow_none=True)
        self.ensemble = bool(ensemble)
        self.cg_iter = positive(cg_iter, "cg_iter", integer=True)
        self.cg_tol = positive(cg_tol, "cg_tol")

    #: "blur", "sr", "inpainting" or "other" (:func:`~restorekit.solvers.steps.operator_task`)
    task = staticmethod(operator_task)

    def iterations(self, operator) -> int:
        return self.max_iter if self.max_iter is not None else self.TASKS[self.task(operator)]["max_iter"]

    def sigmas(self, operator, sigma_y: float) -> torch.Tensor:
        """σ_1 … σ_K, geometric from ``sigma_max`` to σ_K (float64); ``sigma_y`` the noise level of y."""
        if self.sigma_min is not None:
            lo = self.sigma_min
        elif self.task(operator) == "sr":
            lo = max(operator.factor / 255, sigma_y)
        else:
            lo = sigma_y
        lo = max(lo, SIGMA_FLOOR)
        first = self.sigma_max if self.sigma_max is not None else FIRST_LEVEL[self.task(operator)]
        hi = max(first, lo)
        return torch.logspace(math.log10(hi), math.log10(lo), self.iterations(operator), dtype=torch.float64)

    @staticmethod
    def bicubic_start(y: torch.Tensor, operator) -> torch.Tensor:
        """DPIR's SR start: bicubic upsampling of y shifted to the operator's sampling grid.

        Bicubic interpolation (``align_corners=False``) puts low-resolution pixel i at
        f·i + (f − 1)/2; the operator measures pixel i around the centroid c_i of Aᴴδ_i. The
        upsampled image is moved by (f − 1)/2 − (c_i − f·i) per axis (a periodic Fourier
        shift, as the operator's boundary is periodic). For deepinv's bicubic ×4 that is one
        pixel (1.4 dB better start on training images), for ×2 none."""
        import torch.nn.functional as F

        f = operator.factor
        up = F.interpolate(y, scale_factor=f, mode="bicubic", align_corners=False)
        h, w = y.shape[-2:]
        delta = torch.zeros_like(y[:1])
        delta[..., h // 2, w // 2] = 1
        response = operator.A_adjoint(delta)[0, 0].abs()
        phase = torch.zeros(up.shape[-2:], dtype=up.dtype, device=up.device)
        for axis, n in ((0, h), (1, w)):
            profile = response.sum(1 - axis)
            centroid = (profile * torch.arange(n * f, dtype=up.dtype, device=up.device)).sum() / profile.sum()
            shift = (f - 1) / 2 - (centroid - f * (n // 2))
            k = torch.fft.fftfreq(n * f, dtype=up.dtype, device=up.device)
            phase = phase + (k[:, None] if axis == 0 else k[None, :]) * shift
        return torch.fft.ifft2(torch.fft.fft2(up) * torch.exp(2j * math.pi * phase)).real.clamp(0, 1)

    def denoise(self, prior, v: torch.Tensor, sigma: float, gamma: float, loop) -> torch.Tensor:
        """:func:`prior_step`, averaged over the 8 flips/rotations of v when ``ensemble``."""
        if not self.ensemble:
            return prior_step(prior, v, sigma, gamma, loop)
        out = torch.zeros_like(v)
        for k in range(4):
            for flip in (False, True):
                t = torch.rot90(v.flip(-1) if flip else v, k, (-2, -1))
                d = torch.rot90(prior_step(prior, t, sigma, gamma, loop), -k, (-2, -1))
                out = out + (d.flip(-1) if flip else d)
        return out / 8

    def _run(self, y, operator, prior, x_init, loop):
        sigma_y = max(loop.sigma_y, SIGMA_FLOOR)
        sigmas = self.sigmas(operator, loop.sigma_y).tolist()
        lam = 1.0 if isinstance(prior, Proximal) else self.lam  # a Proximal prior carries its weight
        lam_d = data_weight(prior, loop.sigma_y) if self.data_weight is None else self.data_weight
        gamma_fixed = fixed_prox_weight(prior)
        if x_init is None and self.task(operator) == "sr":
            z = self.bicubic_start(y, operator)
        else:
            z = initial_estimate(y, operator, x_init)
        for i in loop.range(len(sigmas)):
            sigma = sigmas[i]
            alpha = lam * sigma_y**2 / sigma**2 if gamma_fixed is None else 1 / gamma_fixed
            # 1. data step: x = argmin (λ_d/2)‖Ax − y‖² + (α/2)‖x − z‖²
            x = data_prox(operator, z, y, lam_d / alpha, cg_iter=self.cg_iter, cg_tol=self.cg_tol)
            # 2. prior step at level σ_k (prox with γ = 1/α_k for a Proximal prior)
            z = self.denoise(prior, x, sigma, 1 / alpha, loop)
            loop.log(i, z, sigma=sigma)
        return z.clamp(0, 1)


@register
class PnPADMM(Solver):
    """Plug-and-play ADMM (Venkatakrishnan, Bouman & Wohlberg 2013; Chan, Wang & Elgendy 2017).

    Scaled-form ADMM on (λ_d/2)‖A x − y‖² + R(z) subject to x = z, penalty ρ:

        x_{k+1} = argmin_x (λ_d/2)‖A x − y‖² + (ρ/2)‖x − z_k + u_k‖²   (closed form or CG)
        z_{k+1} = prox(x_{k+1} + u_k, 1/ρ)   — or D(x_{k+1} + u_k, σ) for a denoiser prior
        u_{k+1} = u_k + x_{k+1} − z_{k+1}

    from z_0 = :func:`~restorekit.solvers.steps.initial_estimate` (truncated CG on AᴴA x = Aᴴy;
    the harmonic fill for inpainting) or ``x_init``, u_0 = 0; stops when
    ‖z_{k+1} − z_k‖/‖z_{k+1}‖ < ``tol``.
    With a Proximal prior it converges to the minimiser of (λ_d/2)‖Ax − y‖² + R(x) for any ρ > 0
    (λ_d = 1 is (P)). Returns z clipped to [0, 1] when ``clip`` (default), else the raw iterate.
    With a non-convex R (an LPN) convergence needs ρ large against the data term's Lipschitz
    constant λ_d‖A‖² (Hong, Luo & Razaviyayn 2016); with an LPN's fixed ρ = 1 and its MAP data
    weight (100 at σ_y = 0.01) ADMM can settle into a 2-cycle of nearby points (measured: camera
    64² deblurring, iterate change stuck at 0.018 RMS per pixel with PSNR steady at 27.05 dB);
    HQS, alternating exact minimisation of one objective, always settles.

    Parameters
        max_iter: iterations at most (100).
        rho: penalty ρ (None: λ·max(σ_y, 0.001)²/σ² for a denoiser prior — DPIR's penalty
            α = λσ_y²/σ² at the level σ, the MAP reading of D(·, σ) as the prox of
            (λσ_y²/ρ)·Φ; 0.5 for a Proximal prior, whose minimiser does not depend on ρ; 1/γ*
            for a prior with a fixed prox weight γ* — an LPN).
        lam: λ, the weight of a denoiser prior against the data (DPIR's 0.23, as ``pnp-hqs``;
            it sets the default ρ only).
        data_weight: λ_d (None: :func:`~restorekit.solvers.steps.data_weight`, i.e. 1 except
            for fixed-scale priors).
        sigma: denoiser level σ for denoiser priors (None: max(2σ_y, 0.02)); unused by Proximal ones.
        warmup: continuation iterations W (None: ``max_iter``, the whole run; 0: the fixed level σ from the
            start). For k < W a denoiser prior runs at σ_k, geometric from the first level of
            PnP-HQS's schedule for the operator's kind (49/255; 0.5 for inpainting) down to σ,
            with ρ_k = ρ·σ²/σ_k² so that ρ_kσ_k², the prior weight of the MAP reading, stays
            ρσ² (Chan, Wang & Elgendy 2017's increasing ρ); no stopping test before W.
        tol: relative-change stopping threshold (1e-5).
        clip: clip the result to [0, 1].
        cg_iter, cg_tol: CG budget for operators without a closed-form prox.
        data_term: "gaussian" (½‖Ax − y‖², the default) or "poisson" (below).
        background: b ≥ 0 of the Poisson data term (0).
        inner_iter: inner ADMM iterations of the Poisson data step when A ≠ I (5).

    Poisson data (``data_term="poisson"``, an operator built with ``poisson=g``): ½‖Ax − y‖²
    is replaced by the Poisson NLL per photon

        g·F(x) = Σ_i [(A x)_i + b_i − y_i·log((A x)_i + b_i)]

    (F the NLL in photons, :mod:`restorekit.operators.likelihood`). Its curvature
    y_i/(A x + b)_i² is 1/x_i at the solution, 1 at a white pixel: the curvature of ½‖Ax − y‖²,
    and the same for every image, so ρ, σ and λ_d keep their Gaussian meaning with σ_y read as
    √g, the noise std at white. (Scaling by the image's own mean variance σ_eq² = g·mean y
    instead over-smoothed dark images; benchmarks/poisson.py.) The MAP estimate
    argmin F − log p is reached with a Gaussian MAP denoiser when ρσ² = g (λ_d = 1). The data
    step becomes x_{k+1} = prox_{(λ_d g/ρ)F}(z_k − u_k): closed form per pixel when A = I, the
    split w = A x with a warm-started inner ADMM otherwise
    (:class:`~restorekit.operators.likelihood.PoissonProx`); the default denoiser level is
    max(2√g, 0.02) and the default λ_d that of :func:`data_weight` at σ_y = √g.
    """

    name = "pnp-admm"
    needs = Denoiser

    def __init__(
        self,
        *,
        max_iter: int = 100,
        rho: float | None = None,
        lam: float | None = None,
        sigma: float | None = None,
        warmup: int | None = None,
        data_weight: float | None = None,
        tol: float = 1e-5,
        clip: bool = True,
        cg_iter: int = 30,
        cg_tol: float = 1e-6,
        data_term: str = "gaussian",
        background: float = 0.0,
        inner_iter: int = 5,
    ):
        from ..operators.likelihood import check_background

        if data_term not in ("gaussian", "poisson"):
            raise ValueError(f"data_term must be 'gaussian' or 'poisson', got {data_term!r}")
        self.data_term, self.background = data_term, check_background(background)
        self.inner_iter = positive(inner_iter, "inner_iter", integer=True)
        self.max_iter = positive(max_iter, "max_iter", integer=True)
        self.rho = positive(rho, "rho", allow_none=True)
        self.lam = positive(lam, "lam", allow_none=True)
        self.data_weight = positive(data_weight, "data_weight", allow_none=True)
        self.sigma = positive(sigma, "sigma", allow_none=True)
        self.warmup = None if warmup is None else positive_int(warmup, "warmup", minimum=0)
        self.tol = positive(tol, "tol")
        self.clip = bool(clip)
        self.cg_iter = positive(cg_iter, "cg_iter", integer=True)
        self.cg_tol = positive(cg_tol, "cg_tol")

    def prior_weight(self, operator) -> float:
        """λ: ``lam``, or 2 on a denoising operator and DPIR's 0.23 otherwise."""
        from deepinv.physics import Denoising

        if self.lam is not None:
            return self.lam
        return 2.0 if isinstance(operator, Denoising) else 0.23

    def _run(self, y, operator, prior, x_init, loop):
        sigma_y = loop.sigma_y
        if self.data_term == "poisson":
            from ..operators.likelihood import PoissonLikelihood, PoissonProx, poisson_gain

            lik = PoissonLikelihood(poisson_gain(operator), self.background)
            sigma_y = math.sqrt(lik.gain)  # the noise std at white: the per-photon scale
            poisson_step = PoissonProx(
                lik, operator, y, inner_iter=self.inner_iter, cg_iter=self.cg_iter, cg_tol=self.cg_tol
            )
        sigma = denoiser_sigma(self.sigma, sigma_y, prior)
        gamma_fixed = fixed_prox_weight(prior)
        if self.rho is not None:
            rho = self.rho
        elif gamma_fixed is not None:
            rho = 1 / gamma_fixed
        else:
            rho = (
                0.5
                if isinstance(prior, Proximal)
                else self.prior_weight(operator) * max(sigma_y, SIGMA_FLOOR) ** 2 / sigma**2
            )
        lam_d = data_weight(prior, sigma_y) if self.data_weight is None else self.data_weight
        z = initial_estimate(y, operator, x_init)
        u = torch.zeros_like(z)
        levels, warmup = continuation_levels(operator, prior, sigma, self.max_iter, self.warmup)
        for i in loop.range(self.max_iter):
            sigma_k = levels[i]
            rho_k = rho * (sigma / sigma_k) ** 2
            # 1. data step on the scaled-form augmented Lagrangian
            if self.data_term == "poisson":
                x = poisson_step(z - u, lam_d / rho_k * lik.gain)
            else:
                x = data_prox(operator, z - u, y, lam_d / rho_k, cg_iter=self.cg_iter, cg_tol=self.cg_tol)
            # 2. prior step
            z_new = prior_step(prior, x + u, sigma_k, 1 / rho_k, loop)
            # 3. dual ascent; the scaled dual u = dual/ρ follows ρ_k → ρ_{k+1}
            u = (u + x - z_new) * (levels[i + 1] / sigma_k) ** 2
            z, settled = z_new, loop.settled(i, z_new, z, self.tol, sigma_k)
            if settled and i >= warmup:
                break
        return z.clamp(0, 1) if self.clip else z


@register
class PnPPGD(Solver):
    """Plug-and-play proximal gradient descent (forward–backward; Combettes & Wajs 2005, PnP form
    of Venkatakrishnan et al. 2013):

        x_{k+1} = D(x_k − η Aᴴ(A x_k − y), σ)   — or prox(x_k − η Aᴴ(A x_k − y), η) for a
                                                  Proximal prior (ISTA on (P))

    from :func:`~restorekit.solvers.steps.initial_estimate` (truncated CG on AᴴA x = Aᴴy; the
    harmonic fill for inpainting) or ``x_init``, with η = ``step``/‖A‖² (‖A‖ by power
    iteration, cached per operator); stops when the relative change falls below ``tol``.
    Returns x clipped to [0, 1].
    A prior with a fixed prox weight γ* (an LPN) keeps η = γ* and takes the step on
    (λ_d/2)‖Ax − y‖² with λ_d = ``step``/(γ*‖A‖²) instead: PGD converges only for
    η·λ_d·‖A‖² < 2, so it cannot reach the MAP weight of
    :func:`~restorekit.solvers.steps.data_weight` (use ADMM).

    Parameters
        max_iter: iterations at most (100).
        step: η·‖A‖², in (0, 2) for convergence with a Proximal prior (1.0).
        sigma: denoiser level σ for denoiser priors (None: σ_y·√(λη), at least 0.001: the MAP
            reading of D(·, σ) as prox_{η·λσ_y²Φ}, the PGD step on ½‖Ax − y‖² + λσ_y²Φ with
            DPIR's prior weight; 0.48σ_y at ‖A‖ = 1); unused by Proximal priors.
        lam: λ, the weight of a denoiser prior against the data (DPIR's 0.23, as ``pnp-hqs``;
            it sets the default σ only).
        warmup: continuation iterations W (None: ``max_iter``, the whole run; 0: the fixed level σ from the
            start): for k < W a denoiser prior runs at σ_k, geometric from PnP-HQS's first level
            for the operator's kind down to σ (:func:`~restorekit.solvers.steps.continuation_level`);
            no stopping test before W.
        tol: relative-change stopping threshold (1e-5).
    """

    name = "pnp-pgd"
    needs = Denoiser

    def __init__(
        self,
        *,
        max_iter: int = 100,
        step: float = 1.0,
        sigma: float | None = None,
        lam: float = 0.23,
        warmup: int | None = None,
        tol: float = 1e-5,
    ):
        self.max_iter = positive(max_iter, "max_iter", integer=True)
        self.step = positive(step, "step")
        self.lam = positive(lam, "lam")
        self.sigma = positive(sigma, "sigma", allow_none=True)
        self.warmup = None if warmup is None else positive_int(warmup, "warmup", minimum=0)
        self.tol = positive(tol, "tol")

    def _run(self, y, operator, prior, x_init, loop):
        x = initial_estimate(y, operator, x_init)
        lipschitz = operator_norm(operator, x.shape[1:], dtype=x.dtype, device=x.device) ** 2
        gamma_fixed = fixed_prox_weight(prior)
        eta = self.step / lipschitz if gamma_fixed is None else gamma_fixed
        if self.sigma is None and not isinstance(prior, Proximal):
            sigma = max(math.sqrt(self.lam * eta) * loop.sigma_y, SIGMA_FLOOR)
        else:
            sigma = denoiser_sigma(self.sigma, loop.sigma_y, prior)
        lam_d = 1.0 if gamma_fixed is None else self.step / (gamma_fixed * lipschitz)
        levels, warmup = continuation_levels(operator, prior, sigma, self.max_iter, self.warmup)
        for i in loop.range(self.max_iter):
            sigma_k = levels[i]
            # 1. gradient step on (λ_d/2)‖Ax − y‖²
            v = x - eta * lam_d * operator.A_adjoint(operator.A(x) - y)
            # 2. prior step
            x_new = prior_step(prior, v, sigma_k, eta, loop)
            x, settled = x_new, loop.settled(i, x_new, x, self.tol, sigma_k)
            if settled and i >= warmup:
                break
        return x.clamp(0, 1)
