"""MCG: manifold-constrained gradient (Chung, Sim, Ryu & Ye, NeurIPS 2022, Algorithm 1)."""

from __future__ import annotations

from typing import ClassVar

import torch

from ..priors.base import Diffusion
from ..priors.schedule import abar_at, ddpm_step, q_sample, randn, to_image
from .base import Loop, Solver, positive, register
from .diffusion_steps import (
    log_step,
    no_x_init,
    pinv,
    project_measurements,
    residual_norm_grad,
    start_noise,
    step_levels,
)
from .steps import operator_family


@register
class MCG(Solver):
    r"""Manifold-constrained gradient: DPS's gradient restricted to the unmeasured part, then a
    projection onto the measurements noised to the current level.

    For t = T−1, …, 0, from u_T ~ N(0, I), with g = ∇_{u_t} ‖2·(y − A((û0 + 1)/2))‖ (as in
    :class:`~restorekit.solvers.dps.DPS`, residual in [−1, 1] units, per sample, û0 clipped):

        u' = DDPM step from (u_t, û0) − α·(I − A†A) g,
        y_{t−1} = a_{t−1}·y_u + s_{t−1}·A ξ,      y_u = 2y − A𝟙 (the measurement of u0),
        u_{t−1} = P(u'),

    with A† the exact pseudo-inverse (the SVD for deepinv ``DecomposablePhysics``: blur,
    inpainting, denoising; CG on the normal equations otherwise: super-resolution, CT, MRI,
    ``cg_iter`` steps to ``cg_tol``) and P, for noiseless y, the orthogonal projection onto
    {u : A u = y_{t−1}}, P(u) = u − A†(A u − y_{t−1}) (paper eq. 14; for inpainting it
    overwrites the observed pixels). The last step projects onto y_u itself.

    Noisy y (σ_y > 0, read from the operator; a documented alternative to the paper's
    noise-free projection, which copies the noise into the estimate and, for an
    ill-conditioned A, amplifies it by 1/|H|): y_{t−1} then carries the measurement noise
    2a_{t−1}σ_y on top of the diffusion noise s_{t−1}·Aξ, so P becomes the Tikhonov relaxation

        P(u) = argmin_v δ_t‖v − u‖² + ‖A v − y_{t−1}‖²,   δ_t = ``relax``·(2a_{t−1}σ_y/s_{t−1})²,

    weighing the pseudo-measurement by its noise ratio: P is the hard projection while the
    diffusion noise dominates (high t) and fades out as t → 0 (no projection at the last step).
    The gradient is then not restricted (I − A†A would drop its measured part, which P no
    longer enforces): noisy MCG is DPS plus relaxed projections.

    ``relax`` = 30 was chosen on the Gaussian oracle (16² circular blur, σ_y = 0.01, 200 steps,
    mean of 128 samples vs the exact posterior mean: relative error 0.84 at relax 0.1, 0.32 at
    1, 0.08 at 10, 0.04 at 30; 10 truncated CG steps score 0.13).

    The projection is only as exact as CG gets: on 8-view CT at 16² (κ(AᴴA) = 2.5e7) it takes
    ``cg_tol`` 1e-14 and ~1000 iterations, and with ``cg_iter`` = 30 the four directions with
    σ ≤ 1e-3·σ_max stay at the prior (oracle mean error 0.157, of which 0.134 along them).

    The gradient step α per operator family (:attr:`FAMILY_ALPHA`, keyed by
    :func:`~restorekit.solvers.steps.operator_family`): the published inpainting value 1.0,
    except CT, α = 0, where the gradient pulls the estimate away from the data. On the nine gray
    TRAINING images at 32² (``benchmarks/mcg_alpha.py``; diffusion-gray, σ_y = 0.01):
    limited-angle CT (truncated-CG start 25.00 dB) α = 1 / 0.3 / 0.1 / 0 gave 24.81 / 27.59 /
    28.46 / 28.66 dB, sparse-view CT (start 24.35) α = 1 / 0 gave 28.93 / 30.65. At α = 0 MCG
    is DDPM sampling with relaxed projections onto the noised measurement (the projection-only
    sampler of score-based CT reconstruction), and no gradient is backpropagated. On the
    held-out images (64² / 128²) α = 0 moved limited-angle CT from −5.01 / −3.60 dB to −0.84 /
    +0.42 against the start (still short: the pair warns) and sparse CT from +1.75 / +2.42 to
    +1.54 / +2.22.

    Parameters: ``steps`` (default 1000), ``alpha`` (gradient step in [−1, 1]-residual units;
    default per family, above), ``relax`` (the factor on δ_t for noisy y,
    default 30), ``cg_iter`` (default 100) and ``cg_tol`` (default 1e-7) for A† and P on
    operators without an SVD.
    """

    #: Per-family gradient steps for ``alpha`` left None; other families take 1.0.
    FAMILY_ALPHA: ClassVar[dict[str, float]] = {"ct": 0.0, "ct-limited": 0.0}

    name = "mcg"
    needs = Diffusion

    def __init__(
        self,
        *,
        steps: int = 1000,
        alpha: float | None = None,
        relax: float = 30.0,
        cg_iter: int = 100,
        cg_tol: float = 1e-7,
    ):
        if alpha is not None and not 0 <= alpha < float("inf"):
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        self.steps = positive(steps, "steps", integer=True)
        self.alpha = None if alpha is None else float(alpha)
        self.relax = float(positive(relax, "relax"))
        self.cg_iter = positive(cg_iter, "cg_iter", integer=True)
        self.cg_tol = float(positive(cg_tol, "cg_tol"))

    def alpha_for(self, operator) -> float:
        """α: ``alpha`` if given, else the operator family's default (:attr:`FAMILY_ALPHA`)."""
        if self.alpha is not None:
            return self.alpha
        return self.FAMILY_ALPHA.get(operator_family(operator), 1.0)

    def _run(self, y, operator, prior, x_init, loop: Loop) -> torch.Tensor:
        no_x_init(self.name, x_init)
        alpha = self.alpha_for(operator)
        ac, cg = prior.alphas_cumprod, dict(cg_iter=self.cg_iter, cg_tol=self.cg_tol)
        noisy = loop.sigma_y > 0
        u = start_noise(y, operator, loop)
        y_u = 2 * y - operator.A(torch.ones_like(u))  # A u0 = A(2x − 1) = 2y − A𝟙
        for i, (t, t_prev) in zip(loop.range(self.steps), step_levels(prior, self.steps)):
            # 1. Tweedie estimate and the DPS gradient, restricted to the null space of A
            x0, eps_shift, grad = residual_norm_grad(prior, u, t, y, operator, loop, gradient=alpha > 0)
            if not noisy and alpha > 0:
                grad = grad - pinv(operator, operator.A(grad), **cg)
            # 2. ancestral DDPM step and manifold-constrained gradient step
            abar_t, abar_prev = abar_at(ac, t, u), abar_at(ac, t_prev, u)
            last = t_prev < 0
            noise = torch.zeros_like(u) if last else randn(u.shape, loop.generator, u)
            u = ddpm_step(u, x0, abar_t, abar_prev, noise, eps_shift) - alpha * grad
            # 3. projection onto the measurement noised to the next level
            y_t = y_u if last else q_sample(y_u, abar_prev, operator.A(randn(u.shape, loop.generator, u)))
            if not noisy:
                u = project_measurements(operator, u, y_t, 0.0, **cg)
            elif not last:
                abar = float(abar_prev.max())
                delta = self.relax * (2 * loop.sigma_y) ** 2 * abar / (1 - abar)
                u = project_measurements(operator, u, y_t, delta, **cg)
            log_step(loop, i, to_image(x0), abar_prev)
        return to_image(u)
