"""DiffPIR: denoising diffusion models for plug-and-play image restoration (Zhu, Zhang, Liang,
Cao, Wen, Timofte & Van Gool, CVPR Workshops 2023, Algorithm 1)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from ..priors.base import Diffusion
from ..priors.schedule import abar_at, ddim_step, eps_from_x0, randn, sigma_of
from .base import Loop, Solver, positive, register
from .diffusion_steps import image_shape, log_step, no_x_init
from .steps import SIGMA_FLOOR, data_prox, operator_task


def quadratic_levels(num_train: int, steps: int) -> list[tuple[int, int]]:
    """(t, t_prev) pairs with DiffPIR's "quad" spacing, t_prev = −1 after the last: the
    distance from T − 1 grows like sqrt(k/steps)·T, so the steps crowd at low noise
    (t = 999, 898, 857, … for 100 of 1000; 999, …, 0 for steps = num_train)."""
    if not isinstance(steps, int) or not 1 <= steps <= num_train:
        raise ValueError(f"steps must be an int in [1, {num_train}], got {steps!r}")
    grid = [int(math.sqrt(num_train**2 * k / max(steps - 1, 1))) for k in range(steps)]
    ts = [max(num_train - 1 - g, 0) for g in grid]
    ts = sorted(set(ts), reverse=True)
    return list(zip(ts, ts[1:] + [-1]))


@register
class DiffPIR(Solver):
    r"""DiffPIR: DDIM sampling whose x̂0 is pulled to the data by a proximal step at every level.

    For the ``steps`` levels of the "quad" spacing (:func:`quadratic_levels`), from
    u_T ~ N(0, I), with σ̄_t = s_t/a_t (model units) and σ_y the measurement noise (image
    units, at least 0.001):

        x̂0 = (Tweedie estimate at (u_t, t) + 1)/2                 (clipped to [0, 1] if ``clip_x0``)
        x̂0′ = argmin_x ‖y − A x‖² + ρ_t‖x − x̂0‖²,  ρ_t = λ·σ_y²/σ̄_t²    (:func:`data_prox`, γ = 1/ρ_t)
        ε̂ = (u_t − a_t·(2x̂0′ − 1))/s_t
        u_{t−1} = a_{t−1}·(2x̂0′ − 1) + s_{t−1}·(sqrt(1 − ζ)·ε̂ + sqrt(ζ)·ξ)

    (eqs. (11)–(15) of the paper; the last line is :func:`~restorekit.priors.schedule.ddim_step`
    with η = sqrt(ζ)). The last level returns x̂0′. The units of ρ_t are the authors' (their
    code): σ̄_t in model units, σ_y and the data step in image units. The data step is exact
    for operators with an SVD (deepinv ``prox_l2``) and ``cg_iter`` warm-started CG steps
    otherwise, so every linear operator works. One network call per step, no backprop.

    Parameters (the authors' deblurring run: λ = 7, ζ = 0.3, 100 steps; their configs use 20
    steps for noiseless inpainting)
        steps: number of levels (100).
        lam: λ (7.0).
        zeta: ζ in [0, 1], the share of fresh noise in the DDIM step (None: per task, see below).
        clip_x0: clip x̂0 to [0, 1] (True; False for priors not supported on [0, 1]).
        cg_iter, cg_tol: CG budget of the data step for operators without a closed form.

    Per-task ζ (:attr:`TASKS`, keyed by :func:`~restorekit.solvers.steps.operator_task`): the
    paper's 0.3, except super-resolution and deblurring, ζ = 1 (every level renoises x̂0′ with
    fresh noise only, dropping the ε̂ that carries x̂0′'s misfit back). Chosen on the four gray
    TRAINING images at 64² (brick, grass, clock, moon; shipped diffusion-gray, σ_y = 0.01):
    ×4 SR (truncated-CG start 28.58 dB) ζ = 0.3 / 0.6 / 0.8 / 1.0 gave 28.23 / 28.63 / 28.91 /
    29.23 dB at λ = 7, while λ = 1, ζ = 0.1 (the authors' code) gave 27.78 and λ = 20 / 50 at
    ζ = 0.3 27.96 / 27.28; ×2 SR (start 31.72) ζ = 0.3 / 1.0: 31.92 / 32.86 dB; Gaussian
    blur (start 29.29) ζ = 0.3 / 1.0: 29.71 / 30.59 dB. At ζ = 0.3, ×4 SR ended below the
    truncated-CG start on HELD_OUT. Inpainting, CT, MRI and denoising keep 0.3 (untested at 1).
    """

    #: Per-task defaults of the options left None (:func:`~restorekit.solvers.steps.operator_task`).
    TASKS: ClassVar[dict] = {
        "sr": {"zeta": 1.0},
        "blur": {"zeta": 1.0},
        "inpainting": {"zeta": 0.3},
        "other": {"zeta": 0.3},
    }

    name = "diffpir"
    needs = Diffusion

    def __init__(
        self,
        steps: int = 100,
        lam: float = 7.0,
        zeta: float | None = None,
        clip_x0: bool = True,
        cg_iter: int = 20,
        cg_tol: float = 1e-6,
    ):
        if zeta is not None and not 0 <= zeta <= 1:
            raise ValueError(f"zeta must be in [0, 1] or None, got {zeta!r}")
        self.steps = positive(steps, "steps", integer=True)
        self.lam, self.zeta = float(positive(lam, "lam")), None if zeta is None else float(zeta)
        self.clip_x0 = bool(clip_x0)
        self.cg_iter = positive(cg_iter, "cg_iter", integer=True)
        self.cg_tol = positive(cg_tol, "cg_tol")

    def zeta_for(self, operator) -> float:
        """ζ: ``zeta`` if given, else the operator's task default (:attr:`TASKS`)."""
        return self.zeta if self.zeta is not None else self.TASKS[operator_task(operator)]["zeta"]

    def _run(self, y, operator, prior, x_init, loop: Loop) -> torch.Tensor:
        no_x_init(self.name, x_init)
        zeta = self.zeta_for(operator)
        ac = prior.alphas_cumprod
        sigma_y = max(loop.sigma_y, SIGMA_FLOOR)
        u = randn(image_shape(y, operator), loop.generator, y)
        levels = quadratic_levels(ac.numel(), self.steps)
        for i, (t, t_prev) in zip(loop.range(len(levels)), levels):
            abar, abar_prev = abar_at(ac, t, u), abar_at(ac, t_prev, u)
            # 1. Tweedie estimate (no backprop)
            with torch.no_grad():
                x0 = prior.to_image(prior.predict(u, t).x0)
            loop.nfe += 1
            if self.clip_x0:
                x0 = x0.clamp(0, 1)
            # 2. data proximal step with ρ_t = λσ_y²/σ̄_t²
            rho = self.lam * sigma_y**2 / float(sigma_of(abar.max())) ** 2
            x0 = data_prox(operator, x0, y, 1 / rho, cg_iter=self.cg_iter, cg_tol=self.cg_tol)
            log_step(loop, i, x0, abar_prev)
            if t_prev < 0:
                return x0
            # 3. DDIM step from the corrected x̂0 with a share ζ of fresh noise
            u0 = prior.to_model(x0)
            eps = eps_from_x0(u, u0, abar)
            u = ddim_step(u0, eps, abar_prev, math.sqrt(zeta), randn(u.shape, loop.generator, u))
        raise AssertionError("unreachable: the last level always returns")
