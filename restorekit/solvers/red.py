"""Regularisation by denoising (RED)."""

from __future__ import annotations

from ..checks import positive_int
from ..operators import operator_norm
from ..priors.base import Denoiser
from .base import Solver, positive, register
from .steps import (
    continuation_levels,
    denoiser_sigma,
    initial_estimate,
)

#: Noise level below which RED's default λ stops shrinking (see :meth:`RED.default_lam`).
LAM_NOISE_FLOOR = 0.01


@register
class RED(Solver):
    """Regularisation by denoising, steepest-descent form (Romano, Elad & Milanfar, "The little
    engine that could: regularization by denoising (RED)", SIAM J. Imaging Sci. 2017, eq. (37)):

        x_{k+1} = x_k − μ(Aᴴ(A x_k − y) + λ(x_k − D(x_k, σ)))

    i.e. gradient descent on ½‖A x − y‖² + (λ/2)·xᵀ(x − D(x)) for a denoiser with a symmetric
    Jacobian. μ = ``step``/(‖A‖² + λ) (‖A‖ by power iteration, cached). Starts from the
    truncated-CG pseudo-inverse clipped to [0, 1], the harmonic fill for inpainting
    (:func:`~restorekit.solvers.steps.initial_estimate`), or ``x_init``; stops when the relative change falls below ``tol``. Always uses
    ``prior.denoise`` (for :class:`~restorekit.priors.TV` that is prox(x, σ²), see its notes).
    Returns x clipped to [0, 1].

    λ scales with the noise: Romano et al. minimise (1/(2σ_y²))‖Hx − y‖² + (λ_R/2)·xᵀ(x − D(x)),
    i.e. λ = λ_R·(255·σ_y)² in the form above (pixels in [0, 255] for λ_R), with λ_R = 0.02
    for deblurring and a fixed denoiser level near 3/255 (:meth:`default_lam`). Our denoiser
    level grows with σ_y, so a smaller λ_R, and the denoiser runs at σ_y itself (at least
    0.02), not at the 2σ_y of PnP-ADMM/PGD: on TRAINING images (moon, brick, clock, page at 64²,
    DnCNN, denoising) λ_R = 0.005 with σ = σ_y gave 26.65 dB at σ_y = 0.1 and 29.58 at 0.05;
    with σ = 2σ_y 24.93 / 29.29 (one image at 21.5 from a 20.0 input: with a large λ the
    fixed point of an over-smoothing denoiser collapses); a fixed λ = 0.5 22.5 at σ_y = 0.1.
    (At 48², σ = 2σ_y: λ_R = 0.005 29.95 / 25.90 dB at σ_y = 0.05 / 0.1, λ_R = 0.02 29.46 /
    26.04.) An earlier version with σ = 2σ_y ended the held-out denoising cell of the defaults
    matrix at 18.3 dB from a 20.6 dB input.

    Parameters
        max_iter: iterations at most (100).
        lam: λ, the weight of the RED term (None: :meth:`default_lam`).
        sigma: denoiser level σ (None: max(σ_y, 0.02)).
        warmup: continuation iterations W (None: ``max_iter``, the whole run; 0: the fixed level σ from the
            start): for k < W the denoiser runs at σ_k, geometric from PnP-HQS's first level
            for the operator's kind (49/255; 0.5 for inpainting) down to σ
            (:func:`~restorekit.solvers.steps.continuation_level`), so that what the start
            lacks (inpainting holes) is filled before the fixed-level descent; no stopping test
            before W.
        step: μ·(‖A‖² + λ), in (0, 2) (1.0).
        tol: relative-change stopping threshold (1e-5).
    """

    name = "red"
    needs = Denoiser

    #: λ_R (pixels in [0, 255]); Romano et al. use 0.02 with a fixed denoiser level, see above.
    LAM_RED = 0.005

    def __init__(
        self,
        *,
        max_iter: int = 100,
        lam: float | None = None,
        sigma: float | None = None,
        warmup: int | None = None,
        step: float = 1.0,
        tol: float = 1e-5,
    ):
        self.max_iter = positive(max_iter, "max_iter", integer=True)
        self.lam = positive(lam, "lam", allow_none=True)
        self.sigma = positive(sigma, "sigma", allow_none=True)
        self.warmup = None if warmup is None else positive_int(warmup, "warmup", minimum=0)
        self.step = positive(step, "step")
        self.tol = positive(tol, "tol")

    @classmethod
    def default_lam(cls, sigma_y: float) -> float:
        """λ = λ_R·(255·σ_y)², σ_y the operator's noise level taken as at least 0.01: gradient
        descent moves what the data does not see (inpainting holes) at rate μ·λ only, so λ must
        not vanish with the noise."""
        return cls.LAM_RED * (255 * max(sigma_y, LAM_NOISE_FLOOR)) ** 2

    def _run(self, y, operator, prior, x_init, loop):
        sigma = denoiser_sigma(self.sigma, loop.sigma_y, prior, factor=1.0)
        lam = self.default_lam(loop.sigma_y) if self.lam is None else self.lam
        x = initial_estimate(y, operator, x_init)
        norm_a = operator_norm(operator, x.shape[1:], dtype=x.dtype, device=x.device)
        mu = self.step / (norm_a**2 + lam)
        levels, warmup = continuation_levels(operator, prior, sigma, self.max_iter, self.warmup)
        for i in loop.range(self.max_iter):
            sigma_k = levels[i]
            # 1. denoiser residual
            residual = x - loop.evaluate(prior.denoise, x, sigma_k)
            # 2. gradient step on data term + RED term
            x_new = x - mu * (operator.A_adjoint(operator.A(x) - y) + lam * residual)
            x, settled = x_new, loop.settled(i, x_new, x, self.tol, sigma_k)
            if settled and i >= warmup:
                break
        return x.clamp(0, 1)
