"""Plug-and-play solvers (HQS, ADMM, PGD) and the helpers the classical solvers share.

Every prior works here through one step, :func:`prior_step`: a Proximal prior (TV, LPN) takes
its exact proximal map prox(v, γ) = argmin_z ½‖z − v‖² + γ·R(z), so the solvers minimise

    ½‖A x − y‖² + R(x)                                                        (P)

(exactly for ADMM and PGD, as a penalty method for HQS); any other prior is a Denoiser and
D(v, σ) stands in for the proximal map, as in Venkatakrishnan et al. 2013 and Zhang et al. 2021
(DPIR). With the Gaussian MAP reading D(·, σ) = prox of σ²Φ, a denoiser prior plays the role of
R = λ·σ_y²·Φ in (P), which is how HQS ties σ_k to its penalty α_k.

A Proximal prior whose prox exists at one weight γ* only (an LPN, see
:func:`~restorekit.priors.base.fixed_prox_weight`) cannot be rescaled, so for it the solvers
keep every prox weight at γ* and weigh the data term instead: they minimise
(λ/2)‖A x − y‖² + R(x) with λ from :func:`data_weight`.
"""
from __future__ import annotations

import math
from typing import ClassVar

import torch
from deepinv.physics import DecomposablePhysics

from ..operators import cg_solve, operator_norm, truncated_pinv
from ..priors.base import Denoiser, Proximal, fixed_prox_weight
from .base import Solver, positive, register

#: Smallest noise level the schedules use (DPIR's 0.255/255): keeps the penalties positive for
#: noiseless data.
SIGMA_FLOOR = 0.001


def noise_level(operator) -> float:
    """The Gaussian noise standard deviation of a deepinv operator's noise model (0 if none)."""
    sigma = getattr(getattr(operator, "noise_model", None), "sigma", None)
    return 0.0 if sigma is None else float(torch.as_tensor(sigma).max())


def initial_estimate(y: torch.Tensor, operator, x_init: torch.Tensor | None) -> torch.Tensor:
    """The starting point of the classical solvers: ``x_init``, else the truncated-CG
    pseudo-inverse (:func:`~restorekit.operators.truncated_pinv`) clipped to [0, 1]; the exact
    A†y of a noisy blur is an inverse filter that no 20-iteration splitting recovers from."""
    if x_init is not None:
        return x_init.clone()
    return truncated_pinv(operator, y).clamp(0, 1)


def data_prox(operator, z: torch.Tensor, y: torch.Tensor, gamma: float, *, cg_iter: int,
              cg_tol: float) -> torch.Tensor:
    """argmin_x ½‖x − z‖² + (γ/2)‖A x − y‖², i.e. (I + γAᴴA)x = z + γAᴴy.

    Operators with an SVD (deepinv ``DecomposablePhysics``: periodic blur, inpainting,
    denoising, single-coil MRI) use their closed form ``prox_l2``; the others a warm-started
    :func:`~restorekit.operators.cg_solve`.
    """
    if isinstance(operator, DecomposablePhysics):
        return operator.prox_l2(z, y, gamma)
    return cg_solve(operator, z + gamma * operator.A_adjoint(y), gamma=gamma, x0=z,
                    max_iter=cg_iter, tol=cg_tol)


def relative_change(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """‖new − old‖ / ‖new‖ per sample, the stopping criterion of the classical solvers."""
    return (new - old).flatten(1).norm(dim=1) / new.flatten(1).norm(dim=1).clamp_min(1e-12)


def prior_step(prior, v: torch.Tensor, sigma: float, gamma: float, loop) -> torch.Tensor:
    """prior.prox(v, γ) for a Proximal prior, else prior.denoise(v, σ); counts one evaluation."""
    loop.nfe += 1
    if isinstance(prior, Proximal):
        return prior.prox(v, gamma)
    return prior.denoise(v, sigma)


def data_weight(prior, operator) -> float:
    """λ, the weight of the data term in (λ/2)‖A x − y‖² + R(x), by default.

    1, except for a prior with a fixed prox weight γ* that states the noise level σ₀ it was
    trained for (its ``sigma``; an LPN): it is prox_{γ*R} = the MAP denoiser at σ₀, so
    γ*·R ≈ σ₀²·(−log p), and the MAP estimate for data noise σ_y, argmin ‖Ax − y‖²/(2σ_y²) −
    log p(x), is the minimiser of (λ/2)‖Ax − y‖² + R(x) with λ = σ₀²/(γ*·σ_y²) (σ_y at least
    ``SIGMA_FLOOR``).
    """
    gamma, sigma0 = fixed_prox_weight(prior), getattr(prior, "sigma", None)
    if gamma is None or sigma0 is None:
        return 1.0
    return float(sigma0) ** 2 / (gamma * max(noise_level(operator), SIGMA_FLOOR) ** 2)


def denoiser_sigma(sigma: float | None, operator) -> float:
    """The fixed denoiser level of ADMM/PGD/RED: ``sigma``, or max(2σ_y, 0.02) when None."""
    return max(2 * noise_level(operator), 0.02) if sigma is None else sigma


@register
class PnPHQS(Solver):
    """Plug-and-play half-quadratic splitting with a decreasing noise schedule (DPIR).

    Zhang, Li, Zuo, Zhang, Van Gool & Timofte, "Plug-and-Play Image Restoration with Deep
    Denoiser Prior", TPAMI 2021 (DPIR), Algorithm 1 / eqs. (6)–(7). With σ_y the operator's
    noise level (at least 0.001) and σ_k decaying geometrically from ``sigma_max`` to the last
    level σ_K over K iterations, α_k = λ·σ_y²/σ_k²:

        x_k = argmin_x (λ_d/2)‖A x − y‖² + (α_k/2)‖x − z_{k−1}‖²      (closed form or CG)
        z_k = D(x_k, σ_k)          — or prox(x_k, 1/α_k) for a Proximal prior

    starting from z_0 (the truncated-CG pseudo-inverse, DPIR's shifted bicubic start for
    super-resolution, or ``x_init``); returns z_K clipped to [0, 1]. A Proximal prior carries
    its own weight in R, so for it λ = 1 (``lam`` is not used) and the last step is
    prox(x, σ_y²/σ_K²): the penalty method for (P) with α rising to σ_y²/σ_K², which reaches
    the minimiser of ½‖Ax − y‖² + R(x) only as α → ∞; use ``pnp-admm`` for the exact
    minimiser. A prior with a fixed prox weight γ* (an LPN) keeps α_k = 1/γ* (the σ schedule is
    not used; HQS is then alternating minimisation of (λ_d/2)‖Ax − y‖² + (α/2)‖x − z‖² + R(z)).
    λ_d is the data weight, 1 except for such priors (:func:`data_weight`).

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
        sigma_max: first denoiser level σ_1 (49/255).
        sigma_min: last level σ_K (None: per task, see above).
        data_weight: λ_d (None: :func:`data_weight`, i.e. 1 except for fixed-scale priors).
        ensemble: average the denoiser over the 8 flips/rotations of its input (DPIR's ×8
            self-ensemble; 8× the denoiser cost, counted in nfe) (False).
        cg_iter, cg_tol: CG budget for operators without a closed-form prox.
    """

    name = "pnp-hqs"
    needs = Denoiser
    #: Per-task defaults (DPIR): iterations and whether the last level is max(sf/255, σ_y).
    TASKS: ClassVar[dict] = {"blur": {"max_iter": 8}, "sr": {"max_iter": 24}, "other": {"max_iter": 24}}

    def __init__(self, *, max_iter: int | None = None, lam: float = 0.23, sigma_max: float = 49 / 255,
                 sigma_min: float | None = None, data_weight: float | None = None,
                 ensemble: bool = False, cg_iter: int = 30, cg_tol: float = 1e-6):
        self.max_iter = positive(max_iter, "max_iter", integer=True, allow_none=True)
        self.lam = positive(lam, "lam")
        self.data_weight = positive(data_weight, "data_weight", allow_none=True)
        self.sigma_max = positive(sigma_max, "sigma_max")
        self.sigma_min = positive(sigma_min, "sigma_min", allow_none=True)
        self.ensemble = bool(ensemble)
        self.cg_iter = positive(cg_iter, "cg_iter", integer=True)
        self.cg_tol = positive(cg_tol, "cg_tol")

    @staticmethod
    def task(operator) -> str:
        """"blur" (a deepinv Blur/BlurFFT), "sr" (a deepinv Downsampling) or "other"."""
        from deepinv.physics import Blur, BlurFFT, Downsampling

        if isinstance(operator, Downsampling):
            return "sr"
        return "blur" if isinstance(operator, (Blur, BlurFFT)) else "other"

    def iterations(self, operator) -> int:
        return self.max_iter if self.max_iter is not None else self.TASKS[self.task(operator)]["max_iter"]

    def sigmas(self, operator) -> torch.Tensor:
        """σ_1 … σ_K, geometric from ``sigma_max`` to σ_K (float64)."""
        if self.sigma_min is not None:
            lo = self.sigma_min
        elif self.task(operator) == "sr":
            lo = max(operator.factor / 255, noise_level(operator))
        else:
            lo = noise_level(operator)
        lo = max(lo, SIGMA_FLOOR)
        hi = max(self.sigma_max, lo)
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
        sigma_y = max(noise_level(operator), SIGMA_FLOOR)
        sigmas = self.sigmas(operator).tolist()
        lam = 1.0 if isinstance(prior, Proximal) else self.lam  # a Proximal prior carries its weight
        lam_d = data_weight(prior, operator) if self.data_weight is None else self.data_weight
        gamma_fixed = fixed_prox_weight(prior)
        if x_init is None and self.task(operator) == "sr":
            z = self.bicubic_start(y, operator)
        else:
            z = initial_estimate(y, operator, x_init)
        for i in loop.range(len(sigmas)):
            sigma = sigmas[i]
            alpha = lam * sigma_y ** 2 / sigma ** 2 if gamma_fixed is None else 1 / gamma_fixed
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

    from z_0 = A†y (or ``x_init``), u_0 = 0; stops when ‖z_{k+1} − z_k‖/‖z_{k+1}‖ < ``tol``.
    With a Proximal prior it converges to the minimiser of (λ_d/2)‖Ax − y‖² + R(x) for any ρ > 0
    (λ_d = 1 is (P)). Returns z clipped to [0, 1] when ``clip`` (default), else the raw iterate.
    With a non-convex R (an LPN) convergence needs ρ large against the data term's Lipschitz
    constant λ_d‖A‖² (Hong, Luo & Razaviyayn 2016); with an LPN's fixed ρ = 1 and its MAP data
    weight (100 at σ_y = 0.01) ADMM can settle into a 2-cycle of nearby points (measured: camera
    64² deblurring, iterate change stuck at 0.018 RMS per pixel with PSNR steady at 27.05 dB);
    HQS, alternating exact minimisation of one objective, always settles.

    Parameters
        max_iter: iterations at most (100).
        rho: penalty ρ (None: 0.5, or 1/γ* for a prior with a fixed prox weight γ* — an LPN);
            larger trusts the prior step more per iteration.
        data_weight: λ_d (None: :func:`data_weight`, i.e. 1 except for fixed-scale priors).
        sigma: denoiser level for denoiser priors (None: max(2σ_y, 0.02)); unused by Proximal ones.
        tol: relative-change stopping threshold (1e-5).
        clip: clip the result to [0, 1].
        cg_iter, cg_tol: CG budget for operators without a closed-form prox.
    """

    name = "pnp-admm"
    needs = Denoiser

    def __init__(self, *, max_iter: int = 100, rho: float | None = None, sigma: float | None = None,
                 data_weight: float | None = None, tol: float = 1e-5, clip: bool = True,
                 cg_iter: int = 30, cg_tol: float = 1e-6):
        self.max_iter = positive(max_iter, "max_iter", integer=True)
        self.rho = positive(rho, "rho", allow_none=True)
        self.data_weight = positive(data_weight, "data_weight", allow_none=True)
        self.sigma = positive(sigma, "sigma", allow_none=True)
        self.tol = positive(tol, "tol")
        self.clip = bool(clip)
        self.cg_iter = positive(cg_iter, "cg_iter", integer=True)
        self.cg_tol = positive(cg_tol, "cg_tol")

    def _run(self, y, operator, prior, x_init, loop):
        sigma = denoiser_sigma(self.sigma, operator)
        gamma_fixed = fixed_prox_weight(prior)
        rho = self.rho if self.rho is not None else 0.5 if gamma_fixed is None else 1 / gamma_fixed
        lam_d = data_weight(prior, operator) if self.data_weight is None else self.data_weight
        z = initial_estimate(y, operator, x_init)
        u = torch.zeros_like(z)
        for i in loop.range(self.max_iter):
            # 1. data step on the scaled-form augmented Lagrangian
            x = data_prox(operator, z - u, y, lam_d / rho, cg_iter=self.cg_iter, cg_tol=self.cg_tol)
            # 2. prior step
            z_new = prior_step(prior, x + u, sigma, 1 / rho, loop)
            # 3. dual ascent
            u = u + x - z_new
            change = relative_change(z_new, z)
            z = z_new
            loop.log(i, z, sigma=sigma)
            if change.max().item() < self.tol:
                break
        return z.clamp(0, 1) if self.clip else z


@register
class PnPPGD(Solver):
    """Plug-and-play proximal gradient descent (forward–backward; Combettes & Wajs 2005, PnP form
    of Venkatakrishnan et al. 2013):

        x_{k+1} = D(x_k − η Aᴴ(A x_k − y), σ)   — or prox(x_k − η Aᴴ(A x_k − y), η) for a
                                                  Proximal prior (ISTA on (P))

    from A†y (or ``x_init``), with η = ``step``/‖A‖² (‖A‖ by power iteration, cached per
    operator); stops when the relative change falls below ``tol``. Returns x clipped to [0, 1].
    A prior with a fixed prox weight γ* (an LPN) keeps η = γ* and takes the step on
    (λ_d/2)‖Ax − y‖² with λ_d = ``step``/(γ*‖A‖²) instead: PGD converges only for
    η·λ_d·‖A‖² < 2, so it cannot reach the MAP weight of :func:`data_weight` (use ADMM).

    Parameters
        max_iter: iterations at most (100).
        step: η·‖A‖², in (0, 2) for convergence with a Proximal prior (1.0).
        sigma: denoiser level for denoiser priors (None: max(2σ_y, 0.02)); unused by Proximal ones.
        tol: relative-change stopping threshold (1e-5).
    """

    name = "pnp-pgd"
    needs = Denoiser

    def __init__(self, *, max_iter: int = 100, step: float = 1.0, sigma: float | None = None,
                 tol: float = 1e-5):
        self.max_iter = positive(max_iter, "max_iter", integer=True)
        self.step = positive(step, "step")
        self.sigma = positive(sigma, "sigma", allow_none=True)
        self.tol = positive(tol, "tol")

    def _run(self, y, operator, prior, x_init, loop):
        sigma = denoiser_sigma(self.sigma, operator)
        x = initial_estimate(y, operator, x_init)
        lipschitz = operator_norm(operator, x.shape[1:], dtype=x.dtype, device=x.device) ** 2
        gamma_fixed = fixed_prox_weight(prior)
        eta = self.step / lipschitz if gamma_fixed is None else gamma_fixed
        lam_d = 1.0 if gamma_fixed is None else self.step / (gamma_fixed * lipschitz)
        for i in loop.range(self.max_iter):
            # 1. gradient step on (λ_d/2)‖Ax − y‖²
            v = x - eta * lam_d * operator.A_adjoint(operator.A(x) - y)
            # 2. prior step
            x_new = prior_step(prior, v, sigma, eta, loop)
            change = relative_change(x_new, x)
            x = x_new
            loop.log(i, x, sigma=sigma)
            if change.max().item() < self.tol:
                break
        return x.clamp(0, 1)
