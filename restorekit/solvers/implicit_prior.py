"""Solving linear inverse problems with the implicit prior of a denoiser (Kadkhodaie & Simoncelli,
"Solving linear inverse problems using the prior implicit in a denoiser", NeurIPS 2021)."""

from __future__ import annotations

import math

import torch

from ..priors.base import Denoiser, fixed_prox_weight
from ..priors.schedule import randn
from .base import Loop, Solver, positive, register
from .steps import data_prox


def step_size(t: int, h0: float) -> float:
    """h_t = h₀·t/(1 + h₀·(t − 1)): h₀ at t = 1, rising to 1 (the paper's schedule)."""
    return h0 * t / (1 + h0 * (t - 1))


def injected_noise(h: float, beta: float, sigma: float) -> float:
    """γ_t = sqrt((1 − βh)² − (1 − h)²)·σ_t: the noise that leaves σ_{t+1} = (1 − βh)·σ_t."""
    return math.sqrt(max((1 - beta * h) ** 2 - (1 - h) ** 2, 0.0)) * sigma


@register
class ImplicitPrior(Solver):
    r"""Coarse-to-fine stochastic ascent of the log-density implicit in a denoiser, constrained
    by the measurements (Kadkhodaie & Simoncelli 2021, Algorithm 2).

    A least-squares denoiser gives the score of the noisy density (Miyasawa/Tweedie):
    f(v) = D(v, σ) − v = σ²∇log p_σ(v). For measurements x_c = Mᵀx with orthonormal M the paper
    iterates, from v₀ = 0.5 + σ₀z,

        d_t = (I − MMᵀ) f(v_{t−1}) + M(x_c − Mᵀv_{t−1}),     σ_t = ‖d_t‖/√N,
        h_t = h₀ t/(1 + h₀(t − 1)),   γ_t² = ((1 − βh_t)² − (1 − h_t)²)·σ_t²,
        v_t = v_{t−1} + h_t d_t + γ_t z_t,                      until σ_t ≤ σ_L.

    d_t = P(D(v_{t−1})) − v_{t−1}, with P(u) = u + M(x_c − Mᵀu) the projection of the denoised
    image onto the measurement set. For a general operator A we use the same form with P the
    projection u + A†(y − Au) when y is noiseless, and for noisy y (σ_y > 0) the regularised
    projection P(u) = argmin_x ½‖x − u‖² + (γ/2)‖Ax − y‖² with γ = σ_{t−1}²/σ_y² — the data
    weigh against the denoised image as its noise level against theirs, an exact projection
    while σ_t ≫ σ_y (our extension; the paper treats noiseless measurements). The denoiser is
    called at the current level σ_{t−1} (σ₀ first), so blind and noise-conditional denoisers
    both work; it must cover σ up to σ₀ (a composite prior does) and down to σ_L. A prior that
    denoises at one level only (an LPN, trained at its ``sigma`` = 0.1) is refused with a
    ValueError: its residual never falls below that level, so σ_t never reaches σ_L and the run
    ends at ``max_iter`` (lpn-gray on a 64² deblurring ran over 15 minutes for one solve on the
    defaults matrix). β controls the injected
    noise: β = 1 none (a deterministic coarse-to-fine projected denoising), β → 0 a sample.
    Returns P(D(v)) at the last step (the projected clean estimate), clipped to [0, 1] only by
    the caller.

    Parameters (published: h₀ = 0.01, β = 0.01 — or 0.5 for a faster, less stochastic run —,
    σ₀ = 1, σ_L = 0.01)
        h0: first step size h₀ (0.01).
        beta: β ∈ (0, 1], the noise-reduction share per step (0.01).
        sigma0: σ₀, the noise level of the start v₀ = 0.5 + σ₀z, or x_init + σ₀z (1.0).
        sigma_min: σ_L, the level at which to stop (0.01).
        max_iter: hard cap on the number of steps (5000).
        cg_iter: CG budget of the regularised projection for operators without a closed form.
    """

    name = "implicit-prior"
    needs = Denoiser

    def __init__(
        self,
        *,
        h0: float = 0.01,
        beta: float = 0.01,
        sigma0: float = 1.0,
        sigma_min: float = 0.01,
        max_iter: int = 5000,
        cg_iter: int = 30,
    ):
        if not (isinstance(h0, (int, float)) and 0 < h0 <= 1):
            raise ValueError(f"h0 must be in (0, 1], got {h0!r}")
        if not (isinstance(beta, (int, float)) and 0 < beta <= 1):
            raise ValueError(f"beta must be in (0, 1], got {beta!r}")
        self.h0, self.beta = float(h0), float(beta)
        self.sigma0 = float(positive(sigma0, "sigma0"))
        self.sigma_min = float(positive(sigma_min, "sigma_min"))
        if self.sigma_min >= self.sigma0:
            raise ValueError(f"sigma_min must be below sigma0 ({self.sigma0}), got {sigma_min!r}")
        self.max_iter = positive(max_iter, "max_iter", integer=True)
        self.cg_iter = positive(cg_iter, "cg_iter", integer=True)

    def _project(self, u: torch.Tensor, y: torch.Tensor, operator, sigma: float, sigma_y: float):
        """P(u): the exact projection onto {Ax = y} (noiseless) or the regularised one."""
        if sigma_y == 0:
            return u + operator.A_dagger(y - operator.A(u))
        return data_prox(operator, u, y, (sigma / sigma_y) ** 2, cg_iter=self.cg_iter, cg_tol=1e-6)

    def _run(self, y, operator, prior, x_init, loop: Loop) -> torch.Tensor:
        if fixed_prox_weight(prior) is not None:
            raise ValueError(
                f"solver 'implicit-prior' needs a denoiser at every level from σ₀ = {self.sigma0:g} down "
                f"to σ_L = {self.sigma_min:g}; {getattr(prior, 'name', None) or type(prior).__name__} "
                f"denoises at σ = {float(getattr(prior, 'sigma', 0.0)):g} only, so the ascent never "
                "settles; use 'pnp-hqs' or 'pnp-admm' with it"
            )
        sigma_y = loop.sigma_y
        like = operator.A_adjoint(y)
        n = like[0].numel()
        # 1. start: v₀ = 0.5 (or x_init) + σ₀z
        start = torch.full_like(like, 0.5) if x_init is None else x_init
        v = start + self.sigma0 * randn(like.shape, loop.generator, like)
        sigma = self.sigma0
        for t in loop.range(self.max_iter):
            # 2. denoise at the current level, then project onto the measurements: d = P(D(v)) − v
            loop.nfe += 1
            x_hat = self._project(prior.denoise(v, sigma), y, operator, sigma, sigma_y)
            d = x_hat - v
            sigma = (d.pow(2).sum() / (n * d.shape[0])).sqrt().item()
            loop.log(t, x_hat.clamp(0, 1), sigma=sigma)
            if sigma <= self.sigma_min:
                break
            # 3. partial step towards P(D(v)) plus fresh noise, so σ shrinks by (1 − βh_t)
            h = step_size(t + 1, self.h0)
            v = v + h * d + injected_noise(h, self.beta, sigma) * randn(v.shape, loop.generator, v)
        return x_hat
