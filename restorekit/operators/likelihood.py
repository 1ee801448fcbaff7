"""The Poisson negative log-likelihood data term, for photon-limited measurements.

The operators draw Poisson noise as deepinv's ``PoissonNoise(gain=g)``: the photon counts are
k = y/g ~ Poisson((A x + b)/g) per pixel, so 1/g photons make a unit intensity ("peak" 1/g at
white) and y stays in image units. Up to terms free of x, the negative log-likelihood is

    F(x) = (1/g)·Σ_i [(A x)_i + b_i − y_i·log((A x)_i + b_i)]                       (NLL)

with ∇F(x) = (1/g)·Aᴴ(1 − y/(A x + b)) and Hessian (1/g)·Aᴴ diag(y/(A x + b)²) A. The
background b ≥ 0 (dark current, stray light) keeps the logarithm finite where A x = 0; with
b = 0 the rate is floored at :data:`RATE_FLOOR` inside the logarithm only.

With A = I the proximal map prox_{γF}(v) = argmin_x ½‖x − v‖² + γ·F(x) over x ≥ 0 is closed
form per pixel: with c = γ/g and z = x + b the optimality condition z − b − v + c − c·y/z = 0
is the quadratic z² − (v + b − c)·z − c·y = 0, whose positive root gives

    x = max(½[(v + b − c) + √((v + b − c)² + 4·c·y)] − b, 0)                       (PROX)

(Figueiredo & Bioucas-Dias, "Restoration of Poissonian images using alternating direction
optimization", IEEE TIP 2010, eq. (21)).

Solvers weigh g·F = Σ[(A x) + b − y·log(A x + b)], the NLL per photon: its curvature at the
solution, 1/x per pixel, is 1 at white, that of ½‖A x − y‖², so a prior weight tuned for the
Gaussian term at noise std √g means the same here, for every image.

This module reads the gain g straight from the operator's deepinv noise model (``gain``),
until ``operators/noise.py`` is the one reader of noise levels.
"""

from __future__ import annotations

import math

import torch

from .linalg import cg_solve

#: Smallest rate (A x + b) inside the logarithm when there is no background.
RATE_FLOOR = 1e-6


def check_background(background) -> float:
    """``background`` as a float if it is a finite number ≥ 0, else a ValueError naming it."""
    if (
        isinstance(background, bool)
        or not isinstance(background, (int, float))
        or not 0 <= background < math.inf
    ):
        raise ValueError(f"background must be a finite number >= 0, got {background!r}")
    return float(background)


def poisson_gain(operator) -> float:
    """The gain g of an operator's Poisson noise model (deepinv ``PoissonNoise`` or
    ``PoissonGaussianNoise``); a ValueError when the operator draws no Poisson noise."""
    model = getattr(operator, "noise_model", None)
    gain = getattr(model, "gain", None)
    if gain is None:
        raise ValueError(
            f"the operator's noise model {type(model).__name__} is not Poisson; build "
            "the operator with poisson=<gain> (e.g. denoising(noise_sigma=0, "
            "poisson=0.1)) or pass gain= explicitly"
        )
    return float(torch.as_tensor(gain).max())


def anscombe(y: torch.Tensor, gain: float) -> torch.Tensor:
    """Anscombe's variance-stabilising transform of the counts k = y/g: 2·√(k + 3/8), whose
    noise is close to N(0, 1) for rates above a few photons (Anscombe, Biometrika 1948)."""
    return 2 * (y / gain + 0.375).clamp_min(0).sqrt()


def inverse_anscombe(a: torch.Tensor, gain: float) -> torch.Tensor:
    """The closed-form approximation of the exact unbiased inverse of :func:`anscombe`
    (Mäkitalo & Foi, IEEE TIP 2011, eq. (4)), back in image units (times g):

        k = a²/4 + ¼√(3/2)·a⁻¹ − (11/8)·a⁻² + (5/8)√(3/2)·a⁻³ − 1/8.
    """
    a = a.clamp_min(0.8)  # the expansion holds for a ≳ 1; below, the inverse is ≈ 0 anyway
    r = math.sqrt(1.5)
    k = a**2 / 4 + r / 4 / a - 11 / 8 / a**2 + 5 * r / 8 / a**3 - 1 / 8
    return gain * k.clamp_min(0)


def anscombe_denoise(y: torch.Tensor, gain: float, prior, level: float = 1.0) -> torch.Tensor:
    """The Anscombe baseline for Poisson denoising (Mäkitalo & Foi, IEEE TIP 2011): stabilise,
    scale to [0, 1], denoise at the stabilised noise std, back, exact unbiased inverse:

        a = 2·√(y/g + 3/8)/s,  s = 2·√(1/g + 3/8),     x̂ = IA(s·D(a, level/s))

    (a has noise std 1/s; IA is :func:`inverse_anscombe`); ``level`` scales the denoiser's
    noise level. Returns x̂ clipped to [0, 1]."""
    scale = 2 * (1 / gain + 0.375) ** 0.5
    stabilised = anscombe(y, gain) / scale
    return inverse_anscombe(prior.denoise(stabilised, level / scale) * scale, gain).clamp(0, 1)


def accepts_sigma_map(prior) -> bool:
    """Whether ``prior.denoise`` takes a per-pixel (B, 1, H, W) noise-level map: restorekit's
    noise-input CNNs (``dncnn``, ``denoiser-gray``; :mod:`restorekit.priors.dncnn`)."""
    from ..priors.dncnn import BiasFreeDenoiser, DnCNN

    net = getattr(prior, "net", None)
    return isinstance(net, BiasFreeDenoiser) or (isinstance(net, DnCNN) and net.in_channels == 2)


def iterative_poisson_denoise(
    y: torch.Tensor,
    gain: float,
    prior,
    *,
    iterations: int = 2,
    lam_last: float = 0.6,
    level: float = 1.1,
    noise: str = "poisson",
) -> torch.Tensor:
    """Poisson denoising (A = I) by iterated denoising of noisy + estimate combinations.

    The scheme of Azzari & Foi, "Variance stabilization for noisy+estimate combination in
    iterative Poisson denoising", IEEE SPL 23(8), 2016. From the pilot x̂_0 =
    :func:`anscombe_denoise` (at the same ``level``), for k = 1 … K:

        z_k = λ_k·y + (1 − λ_k)·x̂_{k−1}              (mean ≈ x, variance ≈ λ_k²·g·x)

    and x̂_k is a denoised z_k, the step ``noise`` names:

    - ``"vst"`` (the paper's): z_k/(g·λ_k²) has mean = variance, like photon counts, so z_k is
      stabilised by Anscombe's transform at gain g·λ_k² and denoised at one level with the
      exact unbiased inverse, x̂_k = :func:`anscombe_denoise` (z_k, g·λ_k²); λ_k falls linearly
      from 1 (the pilot, k = 0) to λ_K = ``lam_last``. Any Gaussian denoiser works.
    - ``"poisson"``: the denoiser takes z_k's per-pixel noise std as a map (as in FFDNet),
      x̂_k = D(z_k, ``level``·λ_k·√(g·max(x̂_{k−1}, g/4))), with λ_k falling from 1 at k = 1.
    - ``"gaussian"``: the same with the constant map √mean(g·x̂) and the pilot
      D(y, ``level``·√mean(g·y)): the iterations under a homoscedastic Gaussian noise model,
      the twin benchmarks/poisson.py compares against.

    Measured (benchmarks/poisson_results_denoising.md, dncnn, 64², every setting chosen on the
    TRAINING images brick, grass, clock, moon): see the README's Poisson table. The ``"poisson"``
    map loses 1.0–1.5 dB to plain Anscombe + dncnn on the Shepp–Logan phantom (dncnn takes
    non-uniform maps less well than the uniform noise it sees after stabilisation).

    ``"poisson"`` and ``"gaussian"`` need a prior that takes a per-pixel map
    (:func:`accepts_sigma_map`). Returns x̂_K in [0, 1].
    """
    if noise not in ("vst", "poisson", "gaussian"):
        raise ValueError(f"noise must be 'vst', 'poisson' or 'gaussian', got {noise!r}")
    if noise != "vst" and not accepts_sigma_map(prior):
        raise TypeError(
            f"iterative_poisson_denoise(noise={noise!r}) needs a denoiser that takes a per-pixel "
            f"noise map (the shipped dncnn or denoiser-gray), got {prior!r}; noise='vst' takes "
            "any denoiser"
        )
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    if not 0 < lam_last <= 1:
        raise ValueError(f"lam_last must be in (0, 1], got {lam_last!r}")
    if not 0 < level < math.inf:
        raise ValueError(f"level must be a positive number, got {level!r}")
    PoissonLikelihood(gain)  # checks the gain

    if noise == "vst":
        estimate = anscombe_denoise(y, gain, prior, level)
        for k in range(1, iterations + 1):
            lam = 1 - (1 - lam_last) * k / iterations
            estimate = anscombe_denoise(lam * y + (1 - lam) * estimate, gain * lam**2, prior, level)
        return estimate

    def noise_map(x):
        if noise == "gaussian":
            return (gain * x.flatten(1).mean(1)).clamp_min(0).sqrt().reshape(-1, 1, 1, 1).expand_as(x)
        return (gain * x.clamp_min(gain / 4)).sqrt()

    if noise == "poisson":
        estimate = anscombe_denoise(y, gain, prior, level)
    else:
        estimate = prior.denoise(y, level * noise_map(y)).clamp(0, 1)
    for k in range(iterations):
        lam = 1 - (1 - lam_last) * k / (iterations - 1) if iterations > 1 else 1.0
        combined = lam * y + (1 - lam) * estimate
        estimate = prior.denoise(combined, level * lam * noise_map(estimate)).clamp(0, 1)
    return estimate


class PoissonLikelihood:
    """F(x) = (1/g)·Σ[(A x) + b − y·log(A x + b)], the Poisson NLL (module notes).

    Parameters
    ----------
    gain : g > 0, image units per photon (the ``poisson`` argument of the operator builders).
    background : b ≥ 0, a float or a tensor broadcastable to y.
    """

    def __init__(self, gain: float, background: float | torch.Tensor = 0.0):
        if (
            isinstance(gain, bool)
            or not isinstance(gain, (int, float))
            or not gain > 0
            or not math.isfinite(gain)
        ):
            raise ValueError(f"gain must be a positive number, got {gain!r}")
        if isinstance(background, torch.Tensor):
            if (background < 0).any() or not torch.isfinite(background).all():
                raise ValueError("background must be finite and non-negative")
        else:
            background = check_background(background)
        self.gain, self.background = float(gain), background

    @classmethod
    def from_operator(cls, operator, background: float | torch.Tensor = 0.0) -> PoissonLikelihood:
        """The likelihood of an operator built with ``poisson=g`` (gain read from its noise model)."""
        return cls(poisson_gain(operator), background)

    def rate(self, ax: torch.Tensor) -> torch.Tensor:
        """A x + b, floored at :data:`RATE_FLOOR`."""
        return (ax + self.background).clamp_min(RATE_FLOOR)

    def value(self, x: torch.Tensor, y: torch.Tensor, operator=None) -> torch.Tensor:
        """F(x) per sample, a (B,) tensor (A = I when ``operator`` is None)."""
        ax = x if operator is None else operator.A(x)
        mu = self.rate(ax)
        return ((mu - y * mu.log()) / self.gain).flatten(1).sum(1)

    def grad(self, x: torch.Tensor, y: torch.Tensor, operator=None) -> torch.Tensor:
        """∇F(x) = (1/g)·Aᴴ(1 − y/(A x + b))."""
        ax = x if operator is None else operator.A(x)
        r = (1 - y / self.rate(ax)) / self.gain
        return r if operator is None else operator.A_adjoint(r)

    def prox(self, v: torch.Tensor, y: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
        """argmin_{x ≥ 0} ½‖x − v‖² + γ·F(x) with A = I, per pixel by (PROX); ``gamma`` a float
        or a (B,) tensor."""
        if isinstance(gamma, torch.Tensor):
            gamma = gamma.to(v).reshape(-1, *([1] * (v.ndim - 1)))
        c = gamma / self.gain
        w = v + self.background - c
        z = 0.5 * (w + (w * w + 4 * c * y.clamp_min(0)).sqrt())
        return (z - self.background).clamp_min(0)

    def whiten(self, y: torch.Tensor, operator):
        """(y_w, A_w) with ‖y_w − A_w x‖ = ‖(y − b − A x)/√max(y, g)‖: the shot-noise weighted
        residual of DPS (Chung et al., ICLR 2023, eq. (16), Λ = diag(1/(2k)) on the counts
        k = y/g; a zero count is weighted as one count), per photon: times √(2g), so that a
        white pixel weighs 1 as in the unweighted residual ‖y − A x‖ and the same step size
        serves every gain (Λ itself grows as 1/g)."""
        weight = y.clamp_min(self.gain).rsqrt()
        return weight * (y - self.background), Weighted(operator, weight)

    def __repr__(self):
        b = "map" if isinstance(self.background, torch.Tensor) else self.background
        return f"PoissonLikelihood(gain={self.gain:g}, background={b})"


class Weighted:
    """x ↦ w ⊙ A(x): an operator's forward map with a fixed per-pixel weight (only ``A``)."""

    def __init__(self, operator, weight: torch.Tensor):
        self.operator, self.weight = operator, weight

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * self.operator.A(x)


class PoissonProx:
    """x ↦ argmin_x ½‖x − v‖² + γ·F(A x) for one (y, operator), called repeatedly by a solver.

    A = I (deepinv ``Denoising``): the closed form (PROX) per pixel. Otherwise the split
    w = A x with an inner ADMM of penalty β (Figueiredo & Bioucas-Dias 2010, PIDAL):

        x ← (I + βAᴴA)⁻¹(v + βAᴴ(w − d))     (CG, :func:`~restorekit.operators.cg_solve`)
        w ← prox_{(γ/β)F}(A x + d)            (PROX, A = I)
        d ← d + A x − w

    ``inner_iter`` times per call; x, w and d persist between calls (warm starts), so a few
    inner iterations per outer step suffice. State lives on this object: make one per solve.
    """

    def __init__(
        self,
        likelihood: PoissonLikelihood,
        operator,
        y: torch.Tensor,
        *,
        inner_iter: int = 5,
        beta: float = 1.0,
        cg_iter: int = 30,
        cg_tol: float = 1e-6,
    ):
        from deepinv.physics import Denoising

        self.likelihood, self.operator, self.y = likelihood, operator, y
        self.identity = isinstance(operator, Denoising)
        self.inner_iter, self.beta = inner_iter, beta
        self.cg_iter, self.cg_tol = cg_iter, cg_tol
        self.x: torch.Tensor | None = None
        self.w: torch.Tensor | None = None
        self.d: torch.Tensor | None = None

    def __call__(self, v: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
        lik, op, beta = self.likelihood, self.operator, self.beta
        if self.identity:
            return lik.prox(v, self.y, gamma)
        if self.x is None:
            self.x = v.clone()
            self.w = lik.rate(op.A(v)) - lik.background
            self.d = torch.zeros_like(self.w)
        assert self.w is not None and self.d is not None  # set together with x above
        for _ in range(self.inner_iter):
            # 1. quadratic step in x, 2. Poisson prox in w = A x, 3. dual update
            rhs = v + beta * op.A_adjoint(self.w - self.d)
            self.x = cg_solve(op, rhs, gamma=beta, x0=self.x, max_iter=self.cg_iter, tol=self.cg_tol)
            ax = op.A(self.x)
            self.w = lik.prox(ax + self.d, self.y, gamma / beta)
            self.d = self.d + ax - self.w
        return self.x
