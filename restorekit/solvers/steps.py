"""Steps the classical solvers (Chambolle–Pock, PnP-HQS/ADMM/PGD, RED) share.

Every prior works in the PnP family through one step, :func:`prior_step`: a Proximal prior
(TV, LPN) takes its exact proximal map prox(v, γ) = argmin_z ½‖z − v‖² + γ·R(z); any other
prior is a Denoiser and D(v, σ) stands in for the proximal map (Venkatakrishnan et al. 2013,
Zhang et al. 2021). A Proximal prior whose prox exists at one weight γ* only (an LPN, see
:func:`~restorekit.priors.base.fixed_prox_weight`) keeps every prox weight at γ* and the
solvers weigh the data term instead, by :func:`data_weight`.

σ_y, the noise level of y, is read once per solve (``loop.sigma_y``); the helpers here take it
as a number.
"""

from __future__ import annotations

import torch
from deepinv.physics import DecomposablePhysics

from ..operators import cg_solve, truncated_pinv
from ..priors.base import Proximal, fixed_prox_weight

#: Smallest noise level the schedules use (DPIR's 0.255/255): keeps the penalties positive for
#: noiseless data.
SIGMA_FLOOR = 0.001


def operator_task(operator) -> str:
    """The kind of problem an operator poses, for per-task defaults: "sr" (a deepinv
    ``Downsampling``), "blur" (a deepinv ``Blur``/``BlurFFT``, incl. the periodic blur),
    "inpainting" (a deepinv ``Inpainting`` mask, random or box) or "other"."""
    from deepinv.physics import Blur, BlurFFT, Downsampling, Inpainting

    if isinstance(operator, Downsampling):
        return "sr"
    if isinstance(operator, Inpainting):
        return "inpainting"
    return "blur" if isinstance(operator, (Blur, BlurFFT)) else "other"


def initial_estimate(y: torch.Tensor, operator, x_init: torch.Tensor | None) -> torch.Tensor:
    """The starting point of the classical solvers: ``x_init``, else the truncated-CG
    pseudo-inverse (:func:`~restorekit.operators.truncated_pinv`: 10 CG steps on AᴴA x = Aᴴy
    from 0) clipped to [0, 1]; the exact A†y of a noisy blur is an inverse filter that no
    20-iteration splitting recovers from."""
    if x_init is not None:
        return x_init.clone()
    return truncated_pinv(operator, y).clamp(0, 1)


def data_prox(
    operator, z: torch.Tensor, y: torch.Tensor, gamma: float, *, cg_iter: int, cg_tol: float
) -> torch.Tensor:
    """argmin_x ½‖x − z‖² + (γ/2)‖A x − y‖², i.e. (I + γAᴴA)x = z + γAᴴy.

    Operators with an SVD (deepinv ``DecomposablePhysics``: periodic blur, inpainting,
    denoising) use their closed form ``prox_l2``; the others a warm-started
    :func:`~restorekit.operators.cg_solve`.
    """
    if isinstance(operator, DecomposablePhysics):
        return operator.prox_l2(z, y, gamma)
    return cg_solve(
        operator, z + gamma * operator.A_adjoint(y), gamma=gamma, x0=z, max_iter=cg_iter, tol=cg_tol
    )


def prior_step(prior, v: torch.Tensor, sigma: float, gamma: float, loop) -> torch.Tensor:
    """prior.prox(v, γ) for a Proximal prior, else prior.denoise(v, σ); one evaluation."""
    if isinstance(prior, Proximal):
        return loop.evaluate(prior.prox, v, gamma)
    return loop.evaluate(prior.denoise, v, sigma)


def data_weight(prior, sigma_y: float) -> float:
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
    return float(sigma0) ** 2 / (gamma * max(sigma_y, SIGMA_FLOOR) ** 2)


#: First denoiser level σ_1 of the plug-and-play schedules per operator kind
#: (:func:`operator_task`): DPIR's 49/255, and 0.5 for inpainting, whose start has holes far from
#: any image (chosen for PnP-HQS on TRAINING images; see its docstring).
FIRST_LEVEL = {"blur": 49 / 255, "sr": 49 / 255, "inpainting": 0.5, "other": 49 / 255}


def first_level(operator, prior) -> float:
    """σ_1 of :data:`FIRST_LEVEL` for the operator's kind; 0 (no schedule) for a Proximal
    prior, whose prox weight, not a denoiser level, sets its strength."""
    return 0.0 if isinstance(prior, Proximal) else FIRST_LEVEL[operator_task(operator)]


def continuation_level(k: int, first: float, last: float, warmup: int) -> float:
    """σ_k of a fixed-level plug-and-play scheme run with continuation: geometric from ``first``
    (k = 0) down to ``last`` (k = ``warmup``), then ``last``; ``first`` ≤ ``last`` or
    ``warmup`` = 0 gives ``last`` throughout. A strong first denoiser removes what the start
    carries (holes, amplified noise) before the scheme settles at its own level, as DPIR's
    schedule does for HQS and the increasing penalty ρ_k of Chan, Wang & Elgendy (IEEE TCI
    2017, Algorithm 2) does for ADMM."""
    if warmup <= 0 or first <= last or k >= warmup:
        return last
    return first * (last / first) ** (k / warmup)


def continuation_levels(operator, prior, sigma: float, max_iter: int, warmup: int | None):
    """(σ_0 … σ_max_iter, W): the levels of :func:`continuation_level` from the operator kind's
    first level (:func:`first_level`) down to ``sigma`` over W = ``warmup`` iterations (None:
    the whole run), as pnp-admm, pnp-pgd and red use them."""
    first, warmup = first_level(operator, prior), max_iter if warmup is None else warmup
    return [continuation_level(k, first, sigma, warmup) for k in range(max_iter + 1)], warmup


def denoiser_sigma(sigma: float | None, sigma_y: float, prior=None, factor: float = 2.0) -> float:
    """The fixed denoiser level of ADMM/PGD (``factor`` 2) and RED (1): ``sigma``, or when None
    max(factor·σ_y, 0.02) and never below the level σ₀ of a prior with a fixed prox weight (an
    LPN denoises at σ ≥ σ₀ only)."""
    if sigma is not None:
        return sigma
    floor = getattr(prior, "sigma", None) if fixed_prox_weight(prior) is not None else None
    return max(factor * sigma_y, 0.02, float(floor or 0.0))


def warn_tv_as_denoiser(solver: str, prior) -> None:
    """Warn that ``solver`` (a plug-and-play scheme built around a denoiser schedule) with the
    :class:`~restorekit.priors.TV` prior at its defaults ends below the truncated-CG start on
    most operators: in benchmarks/defaults_results.md (HELD_OUT, 64²) PnP-HQS + TV failed 7 of
    11 operator families (−5.9 dB on sparse CT), RED + TV 5 of 6 and the implicit prior + TV
    ended at 6.6 dB on deblurring (−15.8 dB; TV's prox is no MMSE denoiser, whose residual
    that solver reads as a score). TV's own solver,
    ``chambolle-pock``, minimises the same objective to convergence."""
    import warnings

    from ..priors.tv import TV

    if isinstance(prior, TV):
        warnings.warn(
            f"solver {solver!r} with the TV prior at its defaults does not beat the truncated-CG "
            "start on most operators (benchmarks/defaults_results.md); use 'chambolle-pock', "
            "TV's own solver, instead",
            UserWarning,
            stacklevel=5,
        )


#: (solver, operator kind) pairs whose defaults stay below the truncated-CG start + 0.5 dB on
#: TRAINING images (clock, brick, grass, moon at 64², σ_y = 0.01, diffusion-gray), with what to
#: use instead: PGD on ×4 SR +0.08 dB (continuation included), RED on box inpainting +0.34 (its
#: gradient step moves a hole by μλ ≈ 3 % per iteration).
WEAK_DEFAULTS = {("pnp-pgd", "sr"): "'pnp-hqs' or 'pnp-admm'", ("red", "inpainting"): "'pnp-hqs'"}


def warn_weak_default(solver: str, operator) -> None:
    """Warn when (``solver``, the operator's kind) is in :data:`WEAK_DEFAULTS`."""
    import warnings

    kind = operator_task(operator)
    instead = WEAK_DEFAULTS.get((solver, kind))
    if instead is not None:
        warnings.warn(
            f"solver {solver!r} at its defaults does not beat the truncated-CG start on {kind} "
            f"(benchmarks/defaults_results.md); use {instead} instead",
            UserWarning,
            stacklevel=5,
        )
