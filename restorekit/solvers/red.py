"""Regularisation by denoising (RED)."""
from __future__ import annotations

from ..operators import operator_norm
from ..priors.base import Denoiser
from .base import Solver, positive, register
from .steps import denoiser_sigma, initial_estimate


@register
class RED(Solver):
    """Regularisation by denoising, steepest-descent form (Romano, Elad & Milanfar, "The little
    engine that could: regularization by denoising (RED)", SIAM J. Imaging Sci. 2017, eq. (37)):

        x_{k+1} = x_k − μ(Aᴴ(A x_k − y) + λ(x_k − D(x_k, σ)))

    i.e. gradient descent on ½‖A x − y‖² + (λ/2)·xᵀ(x − D(x)) for a denoiser with a symmetric
    Jacobian. μ = ``step``/(‖A‖² + λ) (‖A‖ by power iteration, cached). Starts from 10
    truncated CG steps on AᴴA x = Aᴴy clipped to [0, 1] (or ``x_init``); stops when the relative
    change falls below ``tol``. Always uses ``prior.denoise`` (for
    :class:`~restorekit.priors.TV` that is prox(x, σ²), see its notes).
    Returns x clipped to [0, 1].

    Parameters
        max_iter: iterations at most (100).
        lam: λ, the weight of the RED term (0.5).
        sigma: denoiser level (None: max(2σ_y, 0.02)).
        step: μ·(‖A‖² + λ), in (0, 2) (1.0).
        tol: relative-change stopping threshold (1e-5).
    """

    name = "red"
    needs = Denoiser

    def __init__(self, *, max_iter: int = 100, lam: float = 0.5, sigma: float | None = None,
                 step: float = 1.0, tol: float = 1e-5):
        self.max_iter = positive(max_iter, "max_iter", integer=True)
        self.lam = positive(lam, "lam")
        self.sigma = positive(sigma, "sigma", allow_none=True)
        self.step = positive(step, "step")
        self.tol = positive(tol, "tol")

    def _run(self, y, operator, prior, x_init, loop):
        sigma = denoiser_sigma(self.sigma, loop.sigma_y, prior)
        x = initial_estimate(y, operator, x_init)
        norm_a = operator_norm(operator, x.shape[1:], dtype=x.dtype, device=x.device)
        mu = self.step / (norm_a ** 2 + self.lam)
        for i in loop.range(self.max_iter):
            # 1. denoiser residual
            residual = x - loop.evaluate(prior.denoise, x, sigma)
            # 2. gradient step on data term + RED term
            x_new = x - mu * (operator.A_adjoint(operator.A(x) - y) + self.lam * residual)
            x, settled = x_new, loop.settled(i, x_new, x, self.tol, sigma)
            if settled:
                break
        return x.clamp(0, 1)
