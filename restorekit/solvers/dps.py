"""DPS: diffusion posterior sampling (Chung, Kim, Mccann, Klasky & Ye, ICLR 2023, Algorithm 1)."""

from __future__ import annotations

import torch

from ..priors.base import Diffusion
from ..priors.schedule import abar_at, ddpm_step, randn, to_image
from .base import Loop, Solver, positive, register
from .diffusion_steps import log_step, no_x_init, residual_norm_grad, start_noise, step_levels


@register
class DPS(Solver):
    r"""Diffusion posterior sampling: ancestral DDPM plus a gradient step on ‖y − A(x̂0)‖.

    For t = T−1, …, 0 (``steps`` levels, "leading" spacing; all 1000 by default):

        ε̂ = ε_θ(u_t, t),  û0 = clip((u_t − s_t·ε̂)/a_t, −1, 1),
        u' = mean(q(u_{t−1} | u_t, û0)) + σ̃_t·ξ          (DDPM, fixed-small variance;
                                                           renoised with ε_renoise, see below),
        u_{t−1} = u' − ζ·∇_{u_t} ‖2·(y − A((û0 + 1)/2))‖,

    starting from u_T ~ N(0, I); the result is (u_{−1} + 1)/2, not clipped. The gradient goes
    through the network (one forward and one backward per step).

    Units of ζ: the residual is measured in [−1, 1] units (twice the [0, 1] residual), so
    ``zeta`` is the published ζ: 0.3 for deblurring and super-resolution, 0.5 for inpainting,
    with 1000 steps (σ_y = 0.05 in [−1, 1] units there). The norm is taken per sample (the
    authors take one norm over the batch).

    Defaults: 200 steps with ζ = 1.5, the published guidance budget ζ·steps = 300 in a fifth
    of the time. On TRAINING images (moon, brick at 64², shipped diffusion-gray, deblurring
    σ_y = 0.01) 200 steps gave 28.9 dB at ζ = 1.5 and 28.8 at ζ = 3.0, against 29.0 for the
    truncated-CG start; the published 1000 steps at ζ = 0.3 ends below it (issue 14: 0.75 dB
    above the blurred input). DPS does not beat the trivial start on linear problems with the
    shipped priors, so on a linear operator it warns and names the samplers that do.

    Under CFG++ guidance the DDPM step renoises with the prior's ``eps_renoise`` (the
    unconditional ε), as :func:`~restorekit.priors.schedule.ddpm_step` with ``eps_shift`` does.

    Poisson data (``likelihood="poisson"``, an operator built with ``poisson=g``; the DPS
    paper's eq. (16)): the residual is the shot-noise weighted one per photon,
    2·‖(y − b − A x̂0)/√max(y, g)‖ — the paper's 2·‖Λ^{1/2}(y − b − A x̂0)‖ with
    Λ = diag(1/(2·k)) on the counts k = y/g (a zero count weighted as one), times √(2g)
    (:meth:`~restorekit.operators.likelihood.PoissonLikelihood.whiten`). A white pixel then
    weighs as in the Gaussian branch and darker ones more (1/√y), so ζ has the Gaussian
    branch's scale at every gain. The paper's ζ_i = ζ'/‖y − A(x̂0)‖_Λ on the squared
    weighted norm is this plain weighted norm, as in the Gaussian case.

    Parameters: ``steps`` (int, default 200), ``zeta`` (float > 0, default 1.5),
    ``likelihood`` ("gaussian" (default) or "poisson"), ``background`` (b ≥ 0, default 0).
    """

    name = "dps"
    needs = Diffusion

    def __init__(
        self, *, steps: int = 200, zeta: float = 1.5, likelihood: str = "gaussian", background: float = 0.0
    ):
        from ..operators.likelihood import check_background

        self.steps = positive(steps, "steps", integer=True)
        self.zeta = float(positive(zeta, "zeta"))
        if likelihood not in ("gaussian", "poisson"):
            raise ValueError(f"likelihood must be 'gaussian' or 'poisson', got {likelihood!r}")
        self.likelihood, self.background = likelihood, check_background(background)

    def _run(self, y, operator, prior, x_init, loop: Loop) -> torch.Tensor:
        no_x_init(self.name, x_init)
        ac = prior.alphas_cumprod
        u = start_noise(y, operator, loop)
        y_fit, op_fit = y, operator
        if self.likelihood == "poisson":
            from ..operators.likelihood import PoissonLikelihood

            lik = PoissonLikelihood.from_operator(operator, self.background)
            y_fit, op_fit = lik.whiten(y, operator)
        for i, (t, t_prev) in zip(loop.range(self.steps), step_levels(prior, self.steps)):
            # 1. Tweedie estimate and the guidance gradient through the network
            x0, eps_shift, grad = residual_norm_grad(prior, u, t, y_fit, op_fit, loop)
            # 2. ancestral DDPM step from (u_t, û0), then the measurement step
            abar_t, abar_prev = abar_at(ac, t, u), abar_at(ac, t_prev, u)
            noise = randn(u.shape, loop.generator, u) if t_prev >= 0 else torch.zeros_like(u)
            u = ddpm_step(u, x0, abar_t, abar_prev, noise, eps_shift) - self.zeta * grad
            log_step(loop, i, to_image(x0), abar_prev)
        return to_image(u)
