"""Steps the diffusion solvers (DPS, MCG, DDS, RED-Diff) share.

Model-space maths (ā_t, Tweedie, DDPM/DDIM steps, the factor 2 between image and model units)
lives in :mod:`restorekit.priors.schedule`; this module holds what solvers do with it: the
levels they walk, the DPS guidance gradient, projections onto the measurements and logging.
"""

from __future__ import annotations

import torch
from deepinv.physics import DecomposablePhysics

from ..checks import positive
from ..operators import cg_solve, truncated_pinv
from ..priors.schedule import image_sigma, model_residual, randn, timesteps
from .steps import data_prox


def image_shape(y: torch.Tensor, operator) -> torch.Size:
    """Shape of the unknown image: that of Aᴴy, or (B, *img_shape) for a non-linear operator
    (``linear = False``: no Aᴴ, the operator declares its image shape)."""
    if getattr(operator, "linear", True) is False:
        return torch.Size((y.shape[0], *operator.img_shape))
    return operator.A_adjoint(y).shape


def start_noise(y: torch.Tensor, operator, loop) -> torch.Tensor:
    """u_T ~ N(0, I) shaped like the image, drawn from the loop's generator."""
    return randn(image_shape(y, operator), loop.generator, y)


def no_x_init(solver: str, x_init) -> None:
    """Samplers start from pure noise: a ValueError when ``x_init`` is given."""
    if x_init is not None:
        raise ValueError(
            f"solver {solver!r} starts from pure noise u_T ~ N(0, I) and takes no x_init; pass x_init=None"
        )


def dds_options(steps, eta, cg_steps, gamma, noisy, clip_x0, *, min_cg_steps: int = 0):
    """The checked options DDS and DDS-3D share, as (steps, η, M, γ, noisy, clip_x0): ``steps`` a
    positive int, η ∈ [0, 1], M an int ≥ ``min_cg_steps``, γ > 0, ``noisy`` None/True/False."""
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be in [0, 1], got {eta!r}")
    if isinstance(cg_steps, bool) or not isinstance(cg_steps, int) or cg_steps < min_cg_steps:
        raise ValueError(f"cg_steps must be an int >= {min_cg_steps}, got {cg_steps!r}")
    if noisy not in (None, True, False):
        raise ValueError(f"noisy must be None, True or False, got {noisy!r}")
    steps = positive(steps, "steps", integer=True)
    return steps, float(eta), cg_steps, float(positive(gamma, "gamma")), noisy, bool(clip_x0)


def noisy_data(noisy: bool | None, loop) -> bool:
    """Whether DDS treats y as noisy: ``noisy`` if given, else σ_y > 0 (the loop's noise level)."""
    return loop.sigma_y > 0 if noisy is None else noisy


def step_levels(prior, steps: int, kind: str = "leading"):
    """(t, t_prev) pairs walking the schedule down; t_prev = −1 marks the final (clean) level."""
    ts = timesteps(prior.alphas_cumprod.numel(), steps, kind)
    return list(zip(ts, ts[1:] + [-1]))


def residual_norm_grad(
    prior, u_t: torch.Tensor, t: int, y: torch.Tensor, operator, loop, gradient: bool = True
):
    """The DPS guidance term at (u_t, t), through the network (one counted evaluation).

    Returns (û0 clipped to [−1, 1], ε_renoise − ε̂, g) with
    g = ∇_{u_t} ‖2·(y − A((û0 + 1)/2))‖ per sample: the residual in model units
    (:func:`~restorekit.priors.schedule.model_residual`) so that published step sizes keep
    their meaning, and one norm per sample so that batch members never interact.
    ε_renoise − ε̂ is what the DDPM step adds to renoise as the prior asks (CFG++).
    With ``gradient`` False (a zero step size) g is 0 and nothing is backpropagated.
    """
    u = u_t.detach().requires_grad_(gradient)
    with torch.set_grad_enabled(gradient):
        pred = loop.evaluate(prior.predict, u, t)
        x0 = pred.x0.clamp(-1, 1)
        if gradient:
            norm = model_residual(y, operator, x0).flatten(1).norm(dim=1)
            (grad,) = torch.autograd.grad(norm.sum(), u)
        else:
            grad = torch.zeros_like(u)
    return x0.detach(), (pred.eps_renoise - pred.eps).detach(), grad


def pinv(operator, r: torch.Tensor, *, cg_iter: int, cg_tol: float) -> torch.Tensor:
    """A†r, the minimum-norm least-squares solution of A x = r: by the SVD for deepinv
    ``DecomposablePhysics`` (its ``A_dagger``; singular values below 1e-5 count as 0), else by
    CG on AᴴA x = Aᴴr from 0 (CG from 0 stays in the range of Aᴴ, hence the minimum norm)."""
    if isinstance(operator, DecomposablePhysics):
        return operator.A_dagger(r)
    aty = operator.A_adjoint(r)
    return cg_solve(
        operator, aty, gamma=1.0, shift=0.0, x0=torch.zeros_like(aty), max_iter=cg_iter, tol=cg_tol
    )


def project_measurements(
    operator, u: torch.Tensor, y_t: torch.Tensor, delta: float, *, cg_iter: int, cg_tol: float
) -> torch.Tensor:
    """u moved onto the measurements y_t (model units: y_t ≈ A u).

    δ = 0: the orthogonal projection onto {u : A u = y_t}, u − A†(A u − y_t).
    δ > 0: its Tikhonov relaxation argmin_v δ‖v − u‖² + ‖A v − y_t‖², i.e.
    (δI + AᴴA) v = δu + Aᴴy_t (closed form or CG), which tends to the projection as δ → 0.
    """
    if delta == 0:
        return u - pinv(operator, operator.A(u) - y_t, cg_iter=cg_iter, cg_tol=cg_tol)
    return data_prox(operator, u, y_t, 1 / delta, cg_iter=cg_iter, cg_tol=cg_tol)


def initial_guess(y: torch.Tensor, operator, kind: str) -> torch.Tensor:
    """A starting image from y: truncated CG on the normal equations ("cg"), A†y ("pinv") or Aᴴy."""
    if kind == "cg":
        return truncated_pinv(operator, y)
    return operator.A_dagger(y) if kind == "pinv" else operator.A_adjoint(y)


def log_step(loop, i: int, x0_image: torch.Tensor, abar_prev) -> None:
    """Log the clean estimate in [0, 1] (as both ``x`` and ``x0_hat``) and the next noise level
    in image units (None after the last step)."""
    x = x0_image.detach()
    sigma = None if abar_prev.max() >= 1 else float(image_sigma(abar_prev.max()))
    loop.log(i, x, x, sigma)
