"""SPIRAL-TAP: Poisson reconstruction by separable quadratic approximations (Harmany, Marcia &
Willett, "This is SPIRAL-TAP: Sparse Poisson Intensity Reconstruction ALgorithms — Theory and
Practice", IEEE TIP 2012)."""

from __future__ import annotations

import math

import torch

from ..operators.likelihood import PoissonLikelihood, check_background, poisson_gain
from ..priors.base import Energy, Proximal, fixed_prox_weight
from ..priors.tv import GRAD_NORM_SQ, TV, divergence, gradient
from .base import Solver, positive, register, relative_change
from .steps import initial_estimate


class _PenaltyMeta(type):
    def __instancecheck__(cls, prior) -> bool:
        return isinstance(prior, Proximal) and isinstance(prior, Energy) and fixed_prox_weight(prior) is None


class ScalableProximal(metaclass=_PenaltyMeta):
    """The capability SPIRAL-TAP needs: ``prox(x, γ)`` at every γ > 0 and ``value(x)`` (TV,
    :class:`L1`); a prior whose prox exists at one weight only (an LPN) does not have it."""


class L1:
    """R(x) = weight·‖x‖₁ (pixel-domain sparsity; capabilities Proximal, Energy, Denoiser).

    prox(x, γ) = sign(x)·max(|x| − γ·weight, 0) (soft thresholding); ``denoise(x, σ)`` =
    ``prox(x, σ²)``, the MAP denoiser of the Laplace prior p(x) ∝ exp(−weight·‖x‖₁).
    """

    def __init__(self, weight: float = 0.1):
        self.weight = float(positive(weight, "weight"))

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x.abs().flatten(1).sum(1)

    def prox(self, x: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
        if isinstance(gamma, torch.Tensor):
            gamma = gamma.to(x).reshape(-1, *([1] * (x.ndim - 1)))
        return x.sign() * (x.abs() - gamma * self.weight).clamp_min(0)

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        return self.prox(x, sigma**2)

    def __repr__(self):
        return f"L1(weight={self.weight:g})"


def tv_prox_nonnegative(
    tv: TV, x: torch.Tensor, gamma, q: torch.Tensor, *, max_iter: int, tol: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """argmin_{z ≥ 0} ½‖z − x‖² + γ·TV(z) by FGP with the constraint (Beck & Teboulle, "Fast
    gradient-based algorithms for constrained total variation image denoising and deblurring
    problems", IEEE TIP 2009, Algorithm GP/FGP with C = [0, ∞)):

        z(q) = P_C(x + div q),   q_k = P_{‖q_i‖ ≤ γw_i}(r_k + ∇z(r_k)/8),   FISTA momentum on r.

    ``q`` warm-starts the dual (projected onto the current balls first); returns (z, q).
    """
    lam = tv.lam(x, gamma)
    q_prev = tv.project(q, lam)
    r, t = q_prev, 1.0
    z_prev = (x + divergence(q_prev)).clamp_min(0)
    for _ in range(max_iter):
        # 1. projected gradient step on the dual at the extrapolated point r
        q_new = tv.project(r + gradient((x + divergence(r)).clamp_min(0)) / GRAD_NORM_SQ, lam)
        # 2. FISTA momentum
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        r = q_new + ((t - 1) / t_next) * (q_new - q_prev)
        q_prev, t = q_new, t_next
        # 3. stop on the relative change of the primal estimate
        z = (x + divergence(q_new)).clamp_min(0)
        change = relative_change(z, z_prev)
        z_prev = z
        if change.max().item() < tol:
            break
    return z_prev, q_prev


@register
class SpiralTAP(Solver):
    r"""Poisson reconstruction with a convex penalty by SPIRAL-TAP.

    min_{x ≥ 0} g·F(x) + R(x), F the Poisson NLL in photons
    (:mod:`restorekit.operators.likelihood`) and g·F = Σ[(A x + b) − y·log(A x + b)] the NLL per
    photon, R = ``prior`` (TV, ℓ1, or any Proximal prior), by SPIRAL-TAP (Harmany, Marcia &
    Willett, IEEE TIP 2012, Sec. II–III, eqs. (5)–(8)) on G = g·F:

        s_k = x_k − ∇G(x_k)/α_k
        x_{k+1} = argmin_{x ≥ 0} ½‖x − s_k‖² + R(x)/α_k           (subproblem)
        α_{k+1} = clamp(‖√y/(A x_{k+1} + b) ⊙ Aδ‖²/‖δ‖², α_min, α_max),  δ = x_{k+1} − x_k

    (the Barzilai–Borwein curvature of G along the last step). The paper's τ in F + τ·pen is
    the prior's weight divided by g. Why per photon: G's curvature at the solution is 1/x per
    pixel, 1 at white, as for ½‖Ax − y‖² — so a TV weight λ means here what it means for
    ``chambolle-pock`` at noise std √g, for every image and peak; weighting F by the image's
    own mean variance σ_eq² = g·mean y instead over-smoothed dark images (benchmarks/poisson.py).
    A step is accepted when G(x_{k+1}) + R(x_{k+1}) ≤ max_{j = 0..M−1} Φ_{k−j} − (σ/2)·α_k‖x_{k+1} − x_k‖² (non-monotone
    over the last M = ``accept_past`` objective values; M = 1 is monotone), else α_k ← η·α_k
    and the step is retried (per sample; after ``max_backtrack`` tries the last step is kept).
    Subproblem: for a :class:`~restorekit.priors.TV` prior, constrained FGP (warm-started dual,
    :func:`tv_prox_nonnegative`); for other priors prox then max(·, 0), which is exact for
    separable penalties such as :class:`L1` and an approximation otherwise.

    Starts from :func:`~restorekit.solvers.steps.initial_estimate` (the truncated-CG
    pseudo-inverse clipped to [0, 1], the harmonic fill for inpainting) or ``x_init``; stops when
    the gradient mapping α_k·(x_{k+1} − x_k) (Nesterov, "Gradient methods for minimizing
    composite functions", Math. Program. 2013, eq. (2.6): zero exactly at a minimiser, for any
    α) is small against the iterate, α_k·‖x_{k+1} − x_k‖/‖x_{k+1}‖ < ``tol``, for every sample
    — the relative change of the step taken at unit curvature, that of g·F at white.
    Why not the relative change alone: it also vanishes when α_k is huge, and with b = 0 it is
    whenever a pixel with y > 0 is driven to x = 0, where the BB curvature y/μ² ≈ y·10¹²
    (μ floored at :data:`~restorekit.operators.likelihood.RATE_FLOOR`): α then decays by about
    4× per iteration from ~1e9, and a relative-change test stopped there (moon 64², peak 100,
    TV 0.04: after 3 subproblems, objective 3.4 photons above the minimum, 27.54 dB against
    27.64). The gain g comes from the operator's Poisson noise model.
    Returns x clipped to [0, 1]. ``nfe`` counts the subproblems solved (backtracking included).

    Parameters (defaults of the authors' code: α_0 = 1, [α_min, α_max] = [1e-30, 1e30],
    η = 2, σ = 0.1, M = 10)
        max_iter: outer iterations at most (100).
        tol: threshold of the gradient-mapping stopping test above (1e-5).
        background: b ≥ 0 in image units (0).
        gain: g (None: read from the operator's Poisson noise model; a float for data whose
            operator carries no noise model).
        alpha_init, alpha_min, alpha_max: BB curvature start and safeguards.
        accept_mult, accept_decrease, accept_past: η, σ and M of the acceptance test.
        max_backtrack: tries per iteration (50).
        sub_iter, sub_tol: budget of the TV subproblem (100, 1e-5).
    """

    name = "spiral-tap"
    needs = ScalableProximal

    def __init__(
        self,
        *,
        max_iter: int = 100,
        tol: float = 1e-5,
        background: float = 0.0,
        alpha_init: float = 1.0,
        alpha_min: float = 1e-30,
        alpha_max: float = 1e30,
        accept_mult: float = 2.0,
        accept_decrease: float = 0.1,
        accept_past: int = 10,
        max_backtrack: int = 50,
        sub_iter: int = 100,
        sub_tol: float = 1e-5,
        gain: float | None = None,
    ):
        self.gain = positive(gain, "gain", allow_none=True)
        self.max_iter = positive(max_iter, "max_iter", integer=True)
        self.tol = positive(tol, "tol")
        self.background = check_background(background)
        self.alpha_init = positive(alpha_init, "alpha_init")
        self.alpha_min, self.alpha_max = positive(alpha_min, "alpha_min"), positive(alpha_max, "alpha_max")
        if not self.alpha_min <= self.alpha_init <= self.alpha_max:
            raise ValueError(
                f"need alpha_min <= alpha_init <= alpha_max, got {alpha_min!r}, {alpha_init!r}, {alpha_max!r}"
            )
        if not 1 < accept_mult < float("inf"):
            raise ValueError(f"accept_mult must be a finite number > 1, got {accept_mult!r}")
        if not 0 < accept_decrease < 1:
            raise ValueError(f"accept_decrease must be in (0, 1), got {accept_decrease!r}")
        self.accept_mult, self.accept_decrease = float(accept_mult), float(accept_decrease)
        self.accept_past = positive(accept_past, "accept_past", integer=True)
        self.max_backtrack = positive(max_backtrack, "max_backtrack", integer=True)
        self.sub_iter = positive(sub_iter, "sub_iter", integer=True)
        self.sub_tol = positive(sub_tol, "sub_tol")

    def _run(self, y, operator, prior, x_init, loop):
        lik = PoissonLikelihood(poisson_gain(operator) if self.gain is None else self.gain, self.background)
        x = initial_estimate(y, operator, x_init).clamp_min(0)
        dual = torch.zeros_like(gradient(x)) if isinstance(prior, TV) else None

        def subproblem(s, alpha):
            loop.nfe += 1
            if dual is None:
                return prior.prox(s, 1 / alpha).clamp_min(0), None
            return tv_prox_nonnegative(prior, s, 1 / alpha, dual, max_iter=self.sub_iter, tol=self.sub_tol)

        g = lik.gain  # G = g·F, the NLL per photon

        def objective(v):
            return g * lik.value(v, y, operator) + prior.value(v)

        past = [objective(x)]
        alpha = torch.full((x.shape[0],), float(self.alpha_init), dtype=x.dtype, device=x.device)
        for i in loop.range(self.max_iter):
            grad = g * lik.grad(x, y, operator)
            reference = torch.stack(past[-self.accept_past :]).max(0).values
            x_new, obj_new, dual_new = x.clone(), past[-1].clone(), dual
            done = torch.zeros_like(alpha, dtype=torch.bool)
            for j in range(self.max_backtrack):
                # 1. gradient step with curvature α, then the penalised, non-negative subproblem
                cand, dual_cand = subproblem(x - grad / alpha.view(-1, 1, 1, 1), alpha)
                obj = objective(cand)
                # 2. (non-)monotone acceptance test; rejected samples retry with η·α
                step = (cand - x).flatten(1).pow(2).sum(1)
                ok = obj <= reference - 0.5 * self.accept_decrease * alpha * step
                take = ok & ~done if j < self.max_backtrack - 1 else ~done
                x_new[take], obj_new[take] = cand[take], obj[take]
                if dual_cand is not None:
                    dual_new = torch.where(take.view(-1, 1, 1, 1, 1), dual_cand, dual_new)
                done |= take
                if done.all():
                    break
                alpha = torch.where(done, alpha, alpha * self.accept_mult)
            # 3. Barzilai–Borwein curvature of F along δ = x_new − x
            delta = x_new - x
            a_delta = operator.A(delta)
            mu = lik.rate(operator.A(x_new))
            num = (y.clamp_min(0) / mu**2 * a_delta**2).flatten(1).sum(1)
            den = delta.flatten(1).pow(2).sum(1)
            bb = (num / den.clamp_min(torch.finfo(x.dtype).tiny)).clamp(self.alpha_min, self.alpha_max)
            # 4. stop on the gradient mapping α_k·(x_{k+1} − x_k), relative to x_{k+1}
            loop.log(i, x_new)
            settled = (alpha * relative_change(x_new, x)).max().item() < self.tol
            alpha = torch.where(den > 0, bb, alpha)  # a sample that did not move keeps its α
            x, dual = x_new, dual_new
            past.append(obj_new)
            if settled:
                break
        return x.clamp(0, 1)
