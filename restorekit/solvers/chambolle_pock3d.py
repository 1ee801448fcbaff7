"""3D-TV reconstruction of volumes by the Chambolle–Pock primal–dual algorithm."""

from __future__ import annotations

from ..priors.tv3d import TV3D
from .base import register
from .chambolle_pock import ChambollePock
from .volume import VolumeSolver, volume_norm


@register
class ChambollePock3D(VolumeSolver, ChambollePock):
    """min_x ½‖A x − y‖² + λ·TV3(x) over volumes (B, C, D, H, W), x ∈ [0, 1] optionally
    (Chambolle & Pock, JMIV 2011, Algorithm 1 with θ = 1): the update of ``chambolle-pock``
    with the 3D gradient of :class:`~restorekit.priors.tv3d.TV3D` (its GradientSparse
    structure), K = (A, ∇₃), ‖K‖² ≤ ‖A‖² + 12, τ = σ = ``step``/√(‖A‖² + 12):

        p ← (p + σ(A x̄ − y))/(1 + σ)
        q ← proj_{‖q_i‖₂ ≤ λ}(q + σ∇₃x̄)
        x_new ← x − τ(Aᴴp − div₃ q)            (then clipped to [0, 1] when ``box``)
        x̄ ← 2x_new − x

    from x = x̄ = the truncated-CG pseudo-inverse clipped to [0, 1] (or ``x_init``), p = q = 0;
    stops when ‖x_new − x‖/‖x_new‖ < ``tol`` for every volume or after ``max_iter`` (300).
    ‖A‖ is :func:`~restorekit.solvers.volume.volume_norm` (the slice operator's for slice-wise CT).
    """

    name = "chambolle-pock-3d"
    needs = TV3D
    operator_norm = staticmethod(volume_norm)

    def __init__(self, *, max_iter: int = 300, tol: float = 1e-5, box: bool = True, step: float = 0.99):
        super().__init__(max_iter=max_iter, tol=tol, box=box, step=step)
