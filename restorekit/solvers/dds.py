"""DDS: decomposed diffusion sampler (Chung, Lee & Ye, ICLR 2024, Algorithm 1)."""

from __future__ import annotations

import torch

from ..operators import cg_solve
from ..priors.base import Diffusion
from ..priors.schedule import abar_at, ddim_step, randn, to_image, to_model
from .base import Loop, Solver, register
from .diffusion_steps import dds_options, log_step, no_x_init, noisy_data, start_noise, step_levels


@register
class DDS(Solver):
    r"""Decomposed diffusion sampler: DDIM with a few conjugate-gradient steps on x̂0.

    For the 50 levels t = 980, 960, …, 0 ("leading" spacing), from u_T ~ N(0, I):

        ε̂ = ε_θ(u_t, t),  x̂0 = ((u_t − s_t·ε̂)/a_t + 1)/2, clipped to [0, 1]
        x̃0 = M CG steps from x̂0 on  AᴴA x = Aᴴy              (noiseless y)
                             or  (I + γAᴴA) x = x̂0 + γAᴴy     (noisy y)
        u_{t−1} = a_{t−1}·ũ0 + s_{t−1}·(η·ξ + sqrt(1 − η²)·ε̂),   ũ0 = 2x̃0 − 1,

    the authors' noise step (η is the share of fresh noise, not the textbook DDIM σ_t(η)); the
    ε̂ of the noise step is the prior's ``eps_renoise`` (ε̂ itself, except under CFG++ guidance,
    which renoises with the unconditional ε).
    The last step returns x̃0. No network backprop: one forward per step.

    Units: CG runs in image space [0, 1], where A acts. The map u = 2x − 1 carries both
    systems onto the same systems in model space with the same γ (and CG iterates map
    exactly), so γ means what it means in the paper.

    Parameters: ``steps`` (default 50), ``eta`` (default 0.85), ``cg_steps`` M (default 5),
    ``gamma`` γ (default 10), ``noisy`` (None: σ_y > 0, σ_y read from the operator's noise
    model by :func:`~restorekit.operators.noise.noise_level`),
    ``clip_x0`` (default True: clip x̂0 to the image range before CG, as diffusers' DDIM does
    with ``clip_sample``; without it a small prior's x̂0 at large t overshoots to [−12, 8] and
    weakly informative data, e.g. denoising at σ_y = 0.1, cannot pull it back; False for priors
    not supported on [0, 1], such as the Gaussian oracle).

    γ weighs the data against x̂0 (like σ_e²/σ_y², σ_e the error of x̂0, σ_y the data noise).
    The default 10 was chosen at σ_y = 0.01 on the Gaussian oracle (16² blur, mean of 16
    samples vs the exact posterior mean: relative error 0.27 at γ = 1, 0.08 at 10, 0.07 at 30,
    0.11 at 100) and on TRAINING images with the shipped gray prior (128², mean of 4 images:
    deblurring σ_b = 2 29.9 → 31.8 dB, 4× SR 19.5 → 29.7 dB from γ = 1 to 10). A noise-scaled
    rule γ = (0.0316/σ_y)² was tried and dropped: for denoising at σ_y = 0.1 it gives γ = 0.1
    and the sampler drifts from the data (17.8 dB from a 20.1 dB input; 19.8 at γ = 10, 20.8
    at γ = 1, on a 32² crop) — DDS is no substitute for the one-step ``denoise`` there.
    Re-measured with the GPU-trained diffusion-gray at 64² (σ_y = 0.1): γ = 0.1 gave 26.8 dB on
    the four gray TRAINING images (input 20.0) but 19.9 on HELD_OUT (input 20.6; γ = 10:
    20.6), so on a denoising operator DDS warns and names the alternatives.

    Limited-angle CT (views over less than 180°, e.g. the ``ct-limited`` preset, 90°): DDS
    warns and names ``pnp-hqs``. With diffusion-gray at 64², σ_y = 0.01, its mean PSNR over
    the HELD_OUT images is only +0.39 dB above the truncated-CG start (pnp-hqs: +2.90,
    diffpir: +1.29; benchmarks/defaults_results.md), while on twelve TRAINING images (moon,
    page, brick, clock, cell, microaneurysms, coffee, chelsea in gray, four ``ellipse_phantom``)
    it is +3.08 (photographs +3.21, phantoms +2.80), and the knobs tried there do not move it:
    M = 20 CG steps +3.09; γ = 3 or 100 and η = 0.5 were lower (an earlier session). The weakness
    is not one a default chosen on training images can target, so DDS says so instead.

    Noiseless data and an ill-conditioned A: M CG steps from x̂0 move it along the singular
    directions of A in order of σ, so directions with tiny σ keep x̂0's (the prior's) value,
    while E[x|y] is fixed there by the data (A E[x|y] = y). On the Gaussian oracle with 8-view
    CT at 16² (four directions with σ ≤ 1e-3·σ_max carry 0.134 of ‖E[x|y] − m‖) the mean of
    DDS is 0.19 from E[x|y] at M = 5 and 0.086 with CG run to tol 1e-13 (300 steps, 64
    samples). The projection itself is not the limit: with exact projections DDS's steps are
    affine, and propagating their mean in closed form gives 0.047 at 50 steps, η = 0.85
    (0.028 at 200, 0.013 at 1000; 0.017 at 50 steps, η = 0). Renoising with the ε of ũ0
    instead of ε̂ stalls at 0.074, and the Σ-metric (oblique) projection E[u0 | u_t, y] with
    ε̂ is worse at η = 0 (0.16); that projection with the ε of ũ0 is the exact posterior
    sampler (error 0).
    """

    name = "dds"
    needs = Diffusion

    def __init__(
        self,
        *,
        steps: int = 50,
        eta: float = 0.85,
        cg_steps: int = 5,
        gamma: float = 10.0,
        noisy: bool | None = None,
        clip_x0: bool = True,
    ):
        self.steps, self.eta, self.cg_steps, self.gamma, self.noisy, self.clip_x0 = dds_options(
            steps, eta, cg_steps, gamma, noisy, clip_x0
        )

    def _run(self, y, operator, prior, x_init, loop: Loop) -> torch.Tensor:
        no_x_init(self.name, x_init)
        noisy = noisy_data(self.noisy, loop)
        ac = prior.alphas_cumprod
        aty = operator.A_adjoint(y)
        u = start_noise(y, operator, loop)
        for i, (t, t_prev) in zip(loop.range(self.steps), step_levels(prior, self.steps)):
            # 1. Tweedie estimate (no backprop)
            pred = loop.evaluate(prior.predict, u, t)
            x0 = to_image(pred.x0)
            if self.clip_x0:
                x0 = x0.clamp(0, 1)
            # 2. data consistency: M CG steps started at x̂0, in image space
            if self.cg_steps:
                if noisy:
                    x0 = cg_solve(
                        operator,
                        x0 + self.gamma * aty,
                        gamma=self.gamma,
                        shift=1.0,
                        x0=x0,
                        max_iter=self.cg_steps,
                    )
                else:
                    x0 = cg_solve(operator, aty, gamma=1.0, shift=0.0, x0=x0, max_iter=self.cg_steps)
            abar_prev = abar_at(ac, t_prev, u)
            log_step(loop, i, x0, abar_prev)
            if t_prev < 0:
                return x0
            # 3. the authors' DDIM noise step from ũ0 and ε̂
            noise = randn(u.shape, loop.generator, u)
            u = ddim_step(to_model(x0), pred.eps_renoise, abar_prev, self.eta, noise)
        raise AssertionError("unreachable: the last level always returns")
