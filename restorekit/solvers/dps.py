"""DPS: diffusion posterior sampling (Chung, Kim, Mccann, Klasky & Ye, ICLR 2023, Algorithm 1)."""
from __future__ import annotations

import torch

from ..priors.base import Diffusion
from ..priors.schedule import abar_at, ddpm_step, randn, sigma_of, timesteps
from .base import Loop, Solver, positive, register


def image_shape(y: torch.Tensor, operator) -> torch.Size:
    """Shape of the unknown image: that of Aᴴy."""
    with torch.no_grad():
        return operator.A_adjoint(y).shape


def no_x_init(solver: str, x_init) -> None:
    if x_init is not None:
        raise ValueError(f"solver {solver!r} starts from pure noise u_T ~ N(0, I) and takes no "
                         "x_init; pass x_init=None")


def residual_norm_grad(prior, u_t: torch.Tensor, t: int, y: torch.Tensor, operator):
    """The DPS guidance term at (u_t, t), through the network.

    Returns (û0 clipped to [−1, 1], ε̂, g) with g = ∇_{u_t} ‖2·(y − A((û0 + 1)/2))‖ per sample:
    the residual in [−1, 1] units (twice the [0, 1] residual) so that published step sizes keep
    their meaning, and one norm per sample so that batch members never interact.
    """
    u = u_t.detach().requires_grad_(True)
    with torch.enable_grad():
        pred = prior.predict(u, t)
        x0 = pred.x0.clamp(-1, 1)
        residual = 2 * (y - operator.A(prior.to_image(x0)))
        norm = residual.flatten(1).norm(dim=1)
        (grad,) = torch.autograd.grad(norm.sum(), u)
    return x0.detach(), pred.eps.detach(), grad


def step_levels(prior, steps: int, kind: str = "leading"):
    """(t, t_prev) pairs walking the schedule down; t_prev = −1 marks the final (clean) level."""
    ts = timesteps(prior.alphas_cumprod.numel(), steps, kind)
    return list(zip(ts, ts[1:] + [-1]))


def log_step(loop: Loop, i: int, x0_image: torch.Tensor, abar_prev) -> None:
    """Log the clean estimate in [0, 1] (as both ``x`` and ``x0_hat``) and the next noise level
    in image units (σ = s/(2a); None after the last step)."""
    x = x0_image.detach()
    sigma = None if abar_prev.max() >= 1 else float(sigma_of(abar_prev.max())) / 2
    loop.log(i, x, x, sigma)


@register
class DPS(Solver):
    r"""Diffusion posterior sampling: ancestral DDPM plus a gradient step on ‖y − A(x̂0)‖.

    For t = T−1, …, 0 (``steps`` levels, "leading" spacing; all 1000 by default):

        ε̂ = ε_θ(u_t, t),  û0 = clip((u_t − s_t·ε̂)/a_t, −1, 1),
        u' = mean(q(u_{t−1} | u_t, û0)) + σ̃_t·ξ          (DDPM, fixed-small variance),
        u_{t−1} = u' − ζ·∇_{u_t} ‖2·(y − A((û0 + 1)/2))‖,

    starting from u_T ~ N(0, I); the result is (u_{−1} + 1)/2, not clipped. The gradient goes
    through the network (one forward and one backward per step).

    Units of ζ: the residual is measured in [−1, 1] units (twice the [0, 1] residual), so
    ``zeta`` is the published ζ: 0.3 for deblurring and super-resolution (the default), 0.5
    for inpainting (σ_y = 0.05 in [−1, 1] units there). The norm is taken per sample (the
    authors take one norm over the batch).

    Poisson data (``likelihood="poisson"``, an operator built with ``poisson=g``; the DPS
    paper's eq. (16)): the residual is the shot-noise weighted one, 2·‖Λ^{1/2}(y − b − A x̂0)‖
    with Λ = diag(1/(2·k)) on the counts k = y/g (a zero count weighted as one), i.e.
    2·‖(y − b − A x̂0)/√(2·g·max(y, g))‖ (the factor 2 of the Gaussian branch kept), a
    standardised residual (about √(2n) at the truth for n pixels) instead of a [−1, 1]-unit
    one, so ζ has another scale there. The paper's ζ_i = ζ'/‖y − A(x̂0)‖_Λ on the squared
    weighted norm is this plain weighted norm, as in the Gaussian case.

    Parameters: ``steps`` (int, default 1000), ``zeta`` (float > 0, default 0.3),
    ``likelihood`` ("gaussian" (default) or "poisson"), ``background`` (b ≥ 0, default 0).
    """

    name = "dps"
    needs = Diffusion

    def __init__(self, steps: int = 1000, zeta: float = 0.3, *, likelihood: str = "gaussian",
                 background: float = 0.0):
        from ..operators.likelihood import check_background

        self.steps = positive(steps, "steps", integer=True)
        self.zeta = float(positive(zeta, "zeta"))
        if likelihood not in ("gaussian", "poisson"):
            raise ValueError(f"likelihood must be 'gaussian' or 'poisson', got {likelihood!r}")
        self.likelihood, self.background = likelihood, check_background(background)

    def _run(self, y, operator, prior, x_init, loop: Loop) -> torch.Tensor:
        no_x_init(self.name, x_init)
        prior.reset()
        ac = prior.alphas_cumprod
        nonlinear = getattr(operator, "linear", True) is False  # no Aᴴ: the shape is declared
        shape = (y.shape[0], *operator.img_shape) if nonlinear else image_shape(y, operator)
        u = randn(shape, loop.generator, y)
        y_fit, op_fit = y, operator
        if self.likelihood == "poisson":
            from ..operators.likelihood import PoissonLikelihood

            lik = PoissonLikelihood.from_operator(operator, self.background)
            y_fit, op_fit = lik.whiten(y, operator)
        for i, (t, t_prev) in zip(loop.range(self.steps), step_levels(prior, self.steps)):
            # 1. Tweedie estimate and the guidance gradient through the network
            x0, _, grad = residual_norm_grad(prior, u, t, y_fit, op_fit)
            loop.nfe += 1
            # 2. ancestral DDPM step from (u_t, û0), then the measurement step
            abar_t, abar_prev = abar_at(ac, t, u), abar_at(ac, t_prev, u)
            noise = randn(u.shape, loop.generator, u) if t_prev >= 0 else torch.zeros_like(u)
            u = ddpm_step(u, x0, abar_t, abar_prev, noise) - self.zeta * grad
            log_step(loop, i, prior.to_image(x0), abar_prev)
        return prior.to_image(u)
