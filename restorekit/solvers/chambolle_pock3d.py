"""3D-TV reconstruction of volumes by the Chambolle–Pock primal–dual algorithm."""

from __future__ import annotations

import math

import torch

from ..operators import truncated_pinv
from ..priors.tv3d import GRAD3_NORM_SQ, TV3D, divergence3d, gradient3d
from .base import positive, register
from .volume import VolumeSolver, volume_norm


@register
class ChambollePock3D(VolumeSolver):
    """min_x ½‖A x − y‖² + λ·TV3(x) over volumes (B, C, D, H, W), x ∈ [0, 1] optionally
    (Chambolle & Pock, JMIV 2011, Algorithm 1 with θ = 1; the 2D ``chambolle-pock`` with the
    3D gradient). K = (A, ∇₃), ‖K‖² ≤ ‖A‖² + 12, τ = σ = ``step``/√(‖A‖² + 12):

        p ← (p + σ(A x̄ − y))/(1 + σ)
        q ← proj_{‖q_i‖₂ ≤ λ}(q + σ∇₃x̄)
        x_new ← x − τ(Aᴴp − div₃ q)            (then clipped to [0, 1] when ``box``)
        x̄ ← 2x_new − x

    from x = x̄ = the truncated-CG pseudo-inverse clipped to [0, 1] (or ``x_init``), p = q = 0;
    stops when ‖x_new − x‖/‖x_new‖ < ``tol`` for every volume or after ``max_iter``. λ is the
    :class:`~restorekit.priors.tv3d.TV3D` prior's weight.
    """

    name = "chambolle-pock-3d"
    needs = TV3D

    def __init__(self, *, max_iter: int = 300, tol: float = 1e-5, box: bool = True, step: float = 0.99):
        self.max_iter = positive(max_iter, "max_iter", integer=True)
        self.tol = positive(tol, "tol")
        self.box = bool(box)
        if not 0 < step < 1:
            raise ValueError(f"step must be in (0, 1) so that tau·sigma·‖K‖² < 1, got {step!r}")
        self.step = float(step)

    def _run(self, y, operator, prior, x_init, loop):
        x = x_init.clone() if x_init is not None else truncated_pinv(operator, y).clamp(0, 1)
        tau = sigma = self.step / math.sqrt(volume_norm(operator, x) ** 2 + GRAD3_NORM_SQ)
        x_bar, p = x, torch.zeros_like(y)
        q = torch.zeros_like(gradient3d(x))
        for i in loop.range(self.max_iter):
            # 1. dual step on the data term
            p = (p + sigma * (operator.A(x_bar) - y)) / (1 + sigma)
            # 2. dual step on the TV term: projection onto the λ-balls
            q = prior.project(q + sigma * gradient3d(x_bar), prior.weight)
            # 3. primal step (∇ᴴ = −div), with the box constraint as primal prox
            x_new = x - tau * (operator.A_adjoint(p) - divergence3d(q))
            if self.box:
                x_new = x_new.clamp(0, 1)
            # 4. extrapolation
            x_bar = 2 * x_new - x
            change = (x_new - x).flatten(1).norm(dim=1) / x_new.flatten(1).norm(dim=1).clamp_min(1e-12)
            x = x_new
            loop.log(i, x)
            if change.max().item() < self.tol:
                break
        return x
