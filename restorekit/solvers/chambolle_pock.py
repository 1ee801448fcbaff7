"""TV-regularised reconstruction by the Chambolle–Pock primal–dual algorithm."""

from __future__ import annotations

import math

import torch

from ..operators import operator_norm
from ..priors.base import GradientSparse
from .base import Solver, positive, register
from .steps import initial_estimate


@register
class ChambollePock(Solver):
    """min_x ½‖A x − y‖² + λ·TV(x) (optionally with x ∈ [0, 1]) by Chambolle & Pock,
    "A first-order primal-dual algorithm for convex problems with applications to imaging",
    JMIV 2011, Algorithm 1 with θ = 1.

    K = (A, ∇) with ‖K‖² ≤ ‖A‖² + 8 (‖A‖ by power iteration, cached per operator), steps
    τ = σ = ``step``/√(‖A‖² + 8) so that τσ‖K‖² < 1. With p the dual of the data term, q the
    dual of the TV term and λ_i the prior's (possibly space-variant) weight:

        p ← (p + σ(A x̄ − y))/(1 + σ)
        q ← proj_{‖q_i‖₂ ≤ λ_i}(q + σ∇x̄)
        x_new ← x − τ(Aᴴp − div q)            (then clipped to [0, 1] when ``box``)
        x̄ ← 2x_new − x

    from x = x̄ = :func:`~restorekit.solvers.steps.initial_estimate` (10 truncated CG steps on
    AᴴA x = Aᴴy clipped to [0, 1]; the harmonic fill for inpainting) or ``x_init``,
    p = q = 0; stops when ‖x_new − x‖/‖x_new‖ < ``tol`` for every sample, or after
    ``max_iter`` iterations. λ and channel coupling come from the prior, which must have the
    :class:`~restorekit.priors.base.GradientSparse` capability (:class:`~restorekit.priors.TV`).

    Parameters
        max_iter: iterations at most (500).
        tol: relative-change stopping threshold (1e-5).
        box: constrain x to [0, 1] (the primal prox becomes a clip); True by default.
        step: τ·√(‖A‖² + 8) = σ·√(‖A‖² + 8), in (0, 1) (0.99).
    """

    name = "chambolle-pock"
    needs = GradientSparse

    def __init__(self, *, max_iter: int = 500, tol: float = 1e-5, box: bool = True, step: float = 0.99):
        self.max_iter = positive(max_iter, "max_iter", integer=True)
        self.tol = positive(tol, "tol")
        self.box = bool(box)
        if not 0 < step < 1:
            raise ValueError(f"step must be in (0, 1) so that tau·sigma·‖K‖² < 1, got {step!r}")
        self.step = float(step)

    @staticmethod
    def operator_norm(operator, x: torch.Tensor) -> float:
        """‖A‖ on images shaped like x (power iteration, cached per operator)."""
        return operator_norm(operator, x.shape[1:], dtype=x.dtype, device=x.device)

    def _run(self, y, operator, prior, x_init, loop):
        x = initial_estimate(y, operator, x_init)
        tau = sigma = self.step / math.sqrt(self.operator_norm(operator, x) ** 2 + prior.grad_norm_sq)
        lam = prior.lam(x)
        x_bar, p = x, torch.zeros_like(y)
        q = torch.zeros_like(prior.gradient(x))
        for i in loop.range(self.max_iter):
            # 1. dual step on the data term: prox of σ·(½‖·‖² + ⟨·, y⟩)*
            p = (p + sigma * (operator.A(x_bar) - y)) / (1 + sigma)
            # 2. dual step on the TV term: projection onto the λ-balls
            q = prior.project(q + sigma * prior.gradient(x_bar), lam)
            # 3. primal step (∇ᴴ = −div), with the box constraint as primal prox
            x_new = x - tau * (operator.A_adjoint(p) - prior.divergence(q))
            if self.box:
                x_new = x_new.clamp(0, 1)
            # 4. extrapolation
            x_bar = 2 * x_new - x
            x, settled = x_new, loop.settled(i, x_new, x, self.tol)
            if settled:
                break
        return x
