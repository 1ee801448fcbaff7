"""MCG: manifold-constrained gradient (Chung, Sim, Ryu & Ye, NeurIPS 2022, Algorithm 1)."""
from __future__ import annotations

import torch

from ..priors.base import Diffusion
from ..priors.schedule import abar_at, ddpm_step, randn
from .base import Loop, Solver, positive, register
from .dps import image_shape, log_step, no_x_init, residual_norm_grad, step_levels


@register
class MCG(Solver):
    r"""Manifold-constrained gradient: DPS's gradient restricted to the unmeasured part, then a
    projection onto the measurements noised to the current level.

    For t = T−1, …, 0, from u_T ~ N(0, I), with g = ∇_{u_t} ‖2·(y − A((û0 + 1)/2))‖ (as in
    :class:`~restorekit.solvers.dps.DPS`, residual in [−1, 1] units, per sample, û0 clipped):

        u' = DDPM step from (u_t, û0) − α·(I − A†A) g,
        y_{t−1} = a_{t−1}·y_u + s_{t−1}·A ξ,      y_u = 2y − A𝟙 (the measurement of u0),
        u_{t−1} = u' − w·A†(A u' − y_{t−1}).

    For inpainting (I − A†A) keeps the missing pixels and the projection overwrites the
    observed ones with the noised measurement. The last step projects onto y itself.

    The hard projection (w = 1) copies the measurement noise into the estimate, and for an
    ill-conditioned A (blur) A† amplifies it by 1/|H|; with noisy y use the soft form
    0 < w < 1. The paper's CT setting (VE-SDE, predictor–corrector, soft weights 1 → 0.6) is
    not reproduced; this is the VP/DDPM form used for its inpainting experiments.

    Parameters: ``steps`` (default 1000), ``alpha`` (gradient step, default 1.0, the published
    inpainting value, in [−1, 1]-residual units), ``weight`` (projection weight w in (0, 1],
    default 1.0).
    """

    name = "mcg"
    needs = Diffusion

    def __init__(self, steps: int = 1000, alpha: float = 1.0, weight: float = 1.0):
        if not 0 <= alpha < float("inf"):
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        if not 0 < weight <= 1:
            raise ValueError(f"weight must be in (0, 1], got {weight!r}")
        self.steps = positive(steps, "steps", integer=True)
        self.alpha, self.weight = float(alpha), float(weight)

    def _run(self, y, operator, prior, x_init, loop: Loop) -> torch.Tensor:
        no_x_init(self.name, x_init)
        prior.reset()
        ac = prior.alphas_cumprod
        u = randn(image_shape(y, operator), loop.generator, y)
        y_u = 2 * y - operator.A(torch.ones_like(u))
        for i, (t, t_prev) in zip(loop.range(self.steps), step_levels(prior, self.steps)):
            # 1. Tweedie estimate and the DPS gradient, restricted to the null space of A
            x0, _, grad = residual_norm_grad(prior, u, t, y, operator)
            loop.nfe += 1
            grad = grad - operator.A_dagger(operator.A(grad))
            # 2. ancestral DDPM step and manifold-constrained gradient step
            abar_t, abar_prev = abar_at(ac, t, u), abar_at(ac, t_prev, u)
            last = t_prev < 0
            noise = torch.zeros_like(u) if last else randn(u.shape, loop.generator, u)
            u = ddpm_step(u, x0, abar_t, abar_prev, noise) - self.alpha * grad
            # 3. projection onto the measurement noised to the next level
            y_t = y_u if last else abar_prev.sqrt() * y_u + (1 - abar_prev).sqrt() * operator.A(
                randn(u.shape, loop.generator, u))
            u = u - self.weight * operator.A_dagger(operator.A(u) - y_t)
            log_step(loop, i, prior.to_image(x0), abar_prev)
        return prior.to_image(u)
