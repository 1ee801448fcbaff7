"""Steps the classical solvers (Chambolle–Pock, PnP-HQS/ADMM/PGD, RED) share.

Every prior works in the PnP family through one step, :func:`prior_step`: a Proximal prior
(TV, LPN) takes its exact proximal map prox(v, γ) = argmin_z ½‖z − v‖² + γ·R(z); any other
prior is a Denoiser and D(v, σ) stands in for the proximal map (Venkatakrishnan et al. 2013,
Zhang et al. 2021). A Proximal prior whose prox exists at one weight γ* only (an LPN, see
:func:`~restorekit.priors.base.fixed_prox_weight`) keeps every prox weight at γ* and the
solvers weigh the data term instead, by :func:`data_weight`.

σ_y, the noise level of y, is read once per solve (``loop.sigma_y``); the helpers here take it
as a number.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from deepinv.physics import DecomposablePhysics

from ..operators import cg_solve, harmonic_fill, truncated_pinv
from ..priors.base import Proximal, fixed_prox_weight

#: Smallest noise level the schedules use (DPIR's 0.255/255): keeps the penalties positive for
#: noiseless data.
SIGMA_FLOOR = 0.001


def operator_task(operator) -> str:
    """The kind of problem an operator poses, for per-task defaults: "sr" (a deepinv
    ``Downsampling``), "blur" (a deepinv ``Blur``/``BlurFFT``, incl. the periodic blur),
    "inpainting" (a deepinv ``Inpainting`` mask, random or box) or "other"."""
    from deepinv.physics import Blur, BlurFFT, Downsampling, Inpainting

    if isinstance(operator, Downsampling):
        return "sr"
    if isinstance(operator, Inpainting):
        return "inpainting"
    return "blur" if isinstance(operator, (Blur, BlurFFT)) else "other"


def initial_estimate(y: torch.Tensor, operator, x_init: torch.Tensor | None) -> torch.Tensor:
    """The starting point of the classical solvers: ``x_init``, else the truncated-CG
    pseudo-inverse (:func:`~restorekit.operators.truncated_pinv`: 10 CG steps on AᴴA x = Aᴴy
    from 0) clipped to [0, 1]; the exact A†y of a noisy blur is an inverse filter that no
    20-iteration splitting recovers from. For inpainting, A†y is y with the holes at 0, a dark
    patch that a CNN denoiser keeps as an edge at every level (PnP + dncnn ended 0.03 dB above
    it on 32² holes); there the start is the harmonic fill of the holes
    (:func:`~restorekit.operators.harmonic_fill`), which stays A†y on the observed pixels."""
    if x_init is not None:
        return x_init.clone()
    if operator_task(operator) == "inpainting":
        return harmonic_fill(y, operator.mask).clamp(0, 1)
    return truncated_pinv(operator, y).clamp(0, 1)


def data_prox(
    operator, z: torch.Tensor, y: torch.Tensor, gamma: float, *, cg_iter: int, cg_tol: float
) -> torch.Tensor:
    """argmin_x ½‖x − z‖² + (γ/2)‖A x − y‖², i.e. (I + γAᴴA)x = z + γAᴴy.

    Operators with an SVD (deepinv ``DecomposablePhysics``: periodic blur, inpainting,
    denoising) use their closed form ``prox_l2``; the others a warm-started
    :func:`~restorekit.operators.cg_solve`.
    """
    if isinstance(operator, DecomposablePhysics):
        return operator.prox_l2(z, y, gamma)
    return cg_solve(
        operator, z + gamma * operator.A_adjoint(y), gamma=gamma, x0=z, max_iter=cg_iter, tol=cg_tol
    )


def prior_step(prior, v: torch.Tensor, sigma: float, gamma: float, loop) -> torch.Tensor:
    """prior.prox(v, γ) for a Proximal prior, else prior.denoise(v, σ); one evaluation."""
    if isinstance(prior, Proximal):
        return loop.evaluate(prior.prox, v, gamma)
    return loop.evaluate(prior.denoise, v, sigma)


def data_weight(prior, sigma_y: float) -> float:
    """λ, the weight of the data term in (λ/2)‖A x − y‖² + R(x), by default.

    1, except for a prior with a fixed prox weight γ* that states the noise level σ₀ it was
    trained for (its ``sigma``; an LPN): it is prox_{γ*R} = the MAP denoiser at σ₀, so
    γ*·R ≈ σ₀²·(−log p), and the MAP estimate for data noise σ_y, argmin ‖Ax − y‖²/(2σ_y²) −
    log p(x), is the minimiser of (λ/2)‖Ax − y‖² + R(x) with λ = σ₀²/(γ*·σ_y²) (σ_y at least
    ``SIGMA_FLOOR``).
    """
    gamma, sigma0 = fixed_prox_weight(prior), getattr(prior, "sigma", None)
    if gamma is None or sigma0 is None:
        return 1.0
    return float(sigma0) ** 2 / (gamma * max(sigma_y, SIGMA_FLOOR) ** 2)


#: First denoiser level σ_1 of the plug-and-play schedules per operator kind
#: (:func:`operator_task`): DPIR's 49/255, and 0.5 for inpainting, whose start has holes far from
#: any image (chosen for PnP-HQS on TRAINING images with a zero-filled start; from today's
#: harmonic-fill start 49/255 … 0.7 lie within 0.14 dB: see PnPHQS's docstring).
FIRST_LEVEL = {"blur": 49 / 255, "sr": 49 / 255, "inpainting": 0.5, "other": 49 / 255}


def first_level(operator, prior) -> float:
    """σ_1 of :data:`FIRST_LEVEL` for the operator's kind; 0 (no schedule) for a Proximal
    prior, whose prox weight, not a denoiser level, sets its strength."""
    return 0.0 if isinstance(prior, Proximal) else FIRST_LEVEL[operator_task(operator)]


def continuation_level(k: int, first: float, last: float, warmup: int) -> float:
    """σ_k of a fixed-level plug-and-play scheme run with continuation: geometric from ``first``
    (k = 0) down to ``last`` (k = ``warmup``), then ``last``; ``first`` ≤ ``last`` or
    ``warmup`` = 0 gives ``last`` throughout. A strong first denoiser removes what the start
    carries (holes, amplified noise) before the scheme settles at its own level, as DPIR's
    schedule does for HQS and the increasing penalty ρ_k of Chan, Wang & Elgendy (IEEE TCI
    2017, Algorithm 2) does for ADMM."""
    if warmup <= 0 or first <= last or k >= warmup:
        return last
    return first * (last / first) ** (k / warmup)


def continuation_levels(operator, prior, sigma: float, max_iter: int, warmup: int | None):
    """(σ_0 … σ_max_iter, W): the levels of :func:`continuation_level` from the operator kind's
    first level (:func:`first_level`) down to ``sigma`` over W = ``warmup`` iterations (None:
    the whole run), as pnp-admm, pnp-pgd and red use them."""
    first, warmup = first_level(operator, prior), max_iter if warmup is None else warmup
    return [continuation_level(k, first, sigma, warmup) for k in range(max_iter + 1)], warmup


def denoiser_sigma(sigma: float | None, sigma_y: float, prior=None, factor: float = 2.0) -> float:
    """The fixed denoiser level of ADMM/PGD (``factor`` 2) and RED (1): ``sigma``, or when None
    max(factor·σ_y, 0.02) and never below the level σ₀ of a prior with a fixed prox weight (an
    LPN denoises at σ ≥ σ₀ only)."""
    if sigma is not None:
        return sigma
    floor = getattr(prior, "sigma", None) if fixed_prox_weight(prior) is not None else None
    return max(factor * sigma_y, 0.02, float(floor or 0.0))


def prior_family(prior) -> str:
    """ "diffusion", "lpn", "cnn" (a plain denoising network), "tv" or "other": what
    :data:`WEAK_DEFAULTS` distinguishes."""
    from ..priors.base import Diffusion
    from ..priors.denoisers import DenoiserPrior
    from ..priors.lpn import LPN
    from ..priors.tv import TV

    for family, cls in (("diffusion", Diffusion), ("lpn", LPN), ("cnn", DenoiserPrior), ("tv", TV)):
        if isinstance(prior, cls):
            return family
    return "other"


def operator_family(operator) -> str:
    """What :data:`WEAK_DEFAULTS` tells operators apart by: :func:`operator_task`'s "sr",
    "inpainting" and "blur"; "denoising"; CT as "ct", or "ct-limited" when its views cover less
    than 180° (:func:`~restorekit.operators.ct.angular_range`); "mri" (single- or multi-coil);
    "other" for any other linear operator and "nonlinear" for the rest."""
    from deepinv.physics import MRI, Denoising, LinearPhysics, MultiCoilMRI, Tomography

    from ..operators.ct import angular_range
    from ..operators.mri import RealMRI

    task = operator_task(operator)
    if task != "other":
        return task
    if isinstance(operator, Denoising):
        return "denoising"
    if isinstance(operator, Tomography):
        return "ct-limited" if angular_range(operator) < LIMITED_ANGLE_DEG else "ct"
    if isinstance(operator, (RealMRI, MRI, MultiCoilMRI)):
        return "mri"
    return "other" if isinstance(operator, LinearPhysics) else "nonlinear"


#: CT scans whose views cover fewer degrees than this are limited-angle ("ct-limited").
LIMITED_ANGLE_DEG = 180.0 - 1e-3
#: The network priors' families (:func:`prior_family`): all but "tv" and "other".
LEARNED = ("cnn", "lpn", "diffusion")


def hole_width(operator) -> int:
    """How wide the largest hole of an inpainting mask is, in pixels: 2k for the k 3×3 erosions
    that remove every unobserved pixel (a pixel is unobserved when no channel sees it; beyond the
    border counts as unobserved), so a missing s×s box gives s (s even) or s + 1, and a random
    50 % mask 2–6. 0 for an operator without a mask or with nothing missing."""
    mask = getattr(operator, "mask", None)
    if operator_task(operator) != "inpainting" or not isinstance(mask, torch.Tensor):
        return 0
    missing = (mask.reshape(-1, *mask.shape[-2:]).amax(0) == 0).to(torch.float32)[None, None]
    for k in range(max(missing.shape[-2:]) + 1):
        if not missing.any():
            return 2 * k
        missing = -torch.nn.functional.max_pool2d(-missing, 3, stride=1, padding=1)
    return 2 * k  # nothing observed: the erosion never ends, the whole image is one hole


#: Every family of a linear operator (:func:`operator_family`).
LINEAR = ("blur", "inpainting", "sr", "denoising", "ct", "ct-limited", "mri", "other")


@dataclass(frozen=True)
class WeakDefault:
    """A (solver, operator families, prior family) whose defaults end below the truncated-CG
    start + 0.5 dB in the defaults matrix, what to use instead, and the measurement that says so.
    ``operators`` is one :func:`operator_family` or a tuple of them (:data:`LINEAR`: every linear
    operator); ``prior`` None matches every prior, else a :func:`prior_family` or a shipped
    network's name (``dncnn``, ``denoiser-gray``), or a tuple of them (:data:`LEARNED`: every
    network prior); ``min_factor`` / ``max_factor`` restrict an "sr" entry to the factors
    between them, ``min_hole`` an "inpainting" entry to masks whose :func:`hole_width` is at least
    that many pixels."""

    solver: str
    operators: str | tuple[str, ...]
    instead: str
    evidence: str
    prior: str | tuple[str, ...] | None = None
    min_factor: int = 1
    max_factor: int | None = None
    min_hole: int = 0

    def __post_init__(self):  # one family or prior given as a name: a tuple of one
        for field in ("operators", "prior"):
            if isinstance(getattr(self, field), str):
                object.__setattr__(self, field, (getattr(self, field),))

    def matches(self, solver: str, operator, prior) -> bool:
        if solver != self.solver or operator_family(operator) not in self.operators:
            return False
        if self.prior is not None and not {prior_family(prior), getattr(prior, "name", None)} & set(
            self.prior
        ):
            return False
        if self.min_hole and hole_width(operator) < self.min_hole:
            return False
        factor = int(getattr(operator, "factor", 1))
        return self.min_factor <= factor <= (self.max_factor or factor)

    def message(self) -> str:
        where = "linear operators" if self.operators == LINEAR else " / ".join(self.operators)
        if self.min_hole:
            where += f" with holes {self.min_hole} px wide or more"
        return (
            f"solver {self.solver!r} at its defaults does not beat the truncated-CG start on "
            f"{where} ({self.evidence}; benchmarks/defaults_results.md); use {self.instead} instead"
        )


#: Pairs whose defaults do not beat the truncated-CG start by 0.5 dB (benchmarks/defaults.py:
#: margins on the nine gray / seven colour TRAINING images, ``--training``, where defaults are
#: chosen, and on HELD_OUT, benchmarks/defaults_results.md; 64², σ_y = 0.01), with an
#: alternative that passes on HELD_OUT. Each warns once per solve.
WEAK_DEFAULTS = (
    # RED and the implicit prior with TV (at its noise-scaled weight; HELD_OUT, 64²): TV's prox is
    # no MMSE denoiser, whose residual they read as a score. Chambolle–Pock minimises the same
    # objective to convergence; PnP-HQS/ADMM/PGD with TV pass every operator family.
    # The implicit prior with a diffusion model on a large hole (128² box inpainting, a 64-px
    # hole): at β = 0.01 its result is close to a posterior sample, which for a large hole is far
    # from the posterior mean that PSNR rewards; on the training images it still passes, on the
    # held-out photographs it does not. 32-px holes at 64² pass on both (+3.8 / +5.3 held-out).
    WeakDefault(
        "implicit-prior",
        "inpainting",
        "'pnp-hqs' or 'red' with the same prior",
        "box inpainting at 128² on held-out images −0.39 dB in colour and +0.87 in gray "
        "(pnp-hqs +6.01 / +5.21, red +6.48 / +6.15), on training images +6.6 / +13.5",
        prior="diffusion",
        min_hole=48,
    ),
    WeakDefault(
        "red",
        LINEAR,
        "'chambolle-pock', TV's own solver,",
        "with TV on held-out images motion blur −0.71 dB, sparse CT −0.33, ×2 SR +0.09",
        prior="tv",
    ),
    WeakDefault(
        "implicit-prior",
        LINEAR,
        "'chambolle-pock', TV's own solver,",
        "with TV deblurring ends at 6.6 dB on held-out images, −15.8 dB",
        prior="tv",
    ),
    WeakDefault(
        "dps",
        LINEAR,
        "'ddrm' (operators with an SVD), 'diffpir' or 'dds'",
        "1000 steps: deblurring +0.75 dB over the blurred input, ×4 SR −3.1 dB below A†y; "
        "200 steps at ζ = 1.5: deblurring −0.1 dB on training images",
    ),
    WeakDefault(
        "red-diff",
        ("blur", "sr", "ct", "ct-limited", "mri", "other"),
        "'ddrm' (periodic blur), 'diffpir' or 'dds'",
        "deblurring −2.5 dB on training images; SR and MRI only level with the start on held-out images",
    ),
    WeakDefault(
        "red-diff",
        "inpainting",
        "'ddrm' or 'pnp-hqs' with the same prior",
        "box inpainting +0.29 dB on held-out images at 128² (+3.69 at 64²; random inpainting +11.59)",
    ),
    WeakDefault(
        "pnp-pgd",
        "mri",
        "'pnp-hqs' or 'pnp-admm'",
        "multi-coil MRI −1.97 dB, single-coil +0.61 on held-out images",
        prior="lpn",
    ),
    WeakDefault(
        "dds",
        "denoising",
        "'ddrm', 'diffpir' or the prior's one-step prior.denoise(y, σ_y)",
        "its data step keeps x̃0 ≈ (x̂0 + γy)/(1 + γ): 20.6 dB from a 20.6 dB input on held-out "
        "images at σ_y = 0.1",
    ),
    WeakDefault(
        "dds",
        "ct-limited",
        "'pnp-hqs' (+2.90 dB there with the same prior) or 'diffpir'",
        "+0.39 dB on held-out images at 64², +3.08 on training",
    ),
    # PnP-PGD: with TV it is exact proximal gradient and passes (held-out: blur +1.35 dB, ×4 SR
    # +1.16, sparse CT +2.69); with a network denoiser it does not
    WeakDefault(
        "pnp-pgd", "sr", "'pnp-hqs' or 'pnp-admm'", "×4 SR +0.08 dB on training images", prior=LEARNED
    ),
    WeakDefault(
        "mcg",
        "blur",
        "'ddrm' (periodic blur), 'diffpir' or 'dds'",
        "Gaussian blur −1.32 dB on training images at its 1000 steps (random inpainting +20.99)",
    ),
    WeakDefault(
        "mcg",
        "ct-limited",
        "'pnp-hqs' or 'pnp-admm' with the same prior, or 'diffpir'",
        "limited-angle CT on held-out images −0.84 dB at 64² and +0.42 at 128² with its CT "
        "default α = 0 (α = 1: −5.01 / −3.60; there pnp-hqs +2.85 / +2.67, diffpir +1.29 / +1.31)",
    ),
    WeakDefault(
        "mcg",
        "denoising",
        "'ddrm', 'diffpir' or the prior's one-step prior.denoise(y, σ_y)",
        "+0.16 dB over y on held-out images at 64², σ_y = 0.1 (20.8 dB; DDRM +6.78 there)",
    ),
    WeakDefault(
        "mcg",
        "sr",
        "'pnp-hqs' with the same prior, or 'diffpir'",
        "×4 SR −1.70 dB on held-out images at its 1000 steps (×2 +0.84)",
        min_factor=4,
    ),
    WeakDefault(
        "mcg",
        "sr",
        "'diffpir' or 'dds' with the same prior, or 'pnp-admm' with dncnn",
        "×2 SR +0.43 dB on held-out gray images at 128² (+0.84 at 64², colour +2.27 at 128²; "
        "there diffpir +1.10, dds +1.01, pnp-admm + dncnn +3.94)",
        prior="diffusion-gray",
        max_factor=2,
    ),
    WeakDefault(
        "pnp-pgd",
        "blur",
        "'pnp-hqs' or 'pnp-admm'",
        "Gaussian blur −0.77 / −1.13 dB (diffusion-gray / dncnn) on training images; motion blur passes",
        prior=LEARNED,
    ),
    WeakDefault(
        "pnp-pgd",
        ("ct", "ct-limited"),
        "'pnp-hqs' or 'pnp-admm'",
        "sparse-view CT −1.28 / −2.25 dB (diffusion-gray / dncnn) on held-out images, +2.5 / "
        "+3.1 on training; limited-angle −0.91 with dncnn",
        prior=LEARNED,
    ),
    # ×4 SR of 64² training images (textures, text): no pair beats the start by 0.5 dB there
    # (best +0.28), so these entries are the pairs that also fail on held-out images, where
    # PnP-HQS + diffusion-gray gains +1.28 dB (training +0.14) and + dncnn +0.58 (+0.25)
    WeakDefault(
        "pnp-admm",
        "sr",
        "'pnp-hqs' with 'diffusion-gray', or this solver with 'dncnn'",
        "×4 SR −0.35 dB on held-out images, +0.10 on training",
        prior="diffusion",
        min_factor=4,
    ),
    WeakDefault(
        "pnp-admm",
        ("blur", "sr"),
        "'dncnn' with this solver or with 'pnp-hqs'",
        "Gaussian blur / ×2 SR +0.23 / +0.28 dB (denoiser-gray), +0.56 / +0.42 (lpn-gray) on "
        "training images; Gaussian blur −4.35 dB with lpn-gray on held-out images",
        prior=("denoiser-gray", "lpn"),
    ),
    WeakDefault(
        "pnp-admm",
        ("blur", "ct"),
        "'pnp-hqs' with 'diffusion-gray' (+1.75 dB on that blur) or this solver with 'dncnn'",
        "Gaussian blur +0.44 dB, sparse CT +0.37 on held-out images at 128² (+2.10 / +2.47 at "
        "64²); Gaussian blur +0.73 on training images at 64²",
        prior="diffusion-gray",
    ),
    WeakDefault(
        "pnp-admm",
        ("ct", "ct-limited"),
        "'dncnn' with this solver (+4.09 dB there) or with 'pnp-hqs'",
        "sparse / limited-angle CT +0.26 / −0.26 dB on held-out images",
        prior="denoiser-gray",
    ),
    WeakDefault(
        "implicit-prior",
        ("ct", "ct-limited"),
        "'pnp-hqs' with the same prior, or this solver with 'dncnn' (+2.74 dB there)",
        "sparse CT +0.40 dB on held-out images",
        prior="denoiser-gray",
    ),
    WeakDefault(
        "red",
        "sr",
        "'pnp-hqs' with 'dncnn', or this solver with 'dncnn' at ×2 (+3.75 dB there at 128²)",
        "×2 SR −0.07 / +0.27 dB, ×4 +0.31 (lpn-gray) on held-out images",
        prior=("denoiser-gray", "lpn"),
    ),
    WeakDefault(
        "red",
        "sr",
        "'pnp-hqs' with 'diffusion-gray' or 'dncnn'",
        "×4 SR +0.41 dB on held-out images, +0.15 on training",
        prior="cnn",
        min_factor=4,
    ),
    WeakDefault(
        "red",
        "sr",
        "'pnp-hqs' with 'dncnn', or this solver with 'dncnn' at ×2 (+3.75 dB there at 128²)",
        "×2 SR +0.32 dB on held-out images at 128² (+2.38 at 64²); ×2 / ×4 +0.48 / −0.10 on "
        "training images at 64²",
        prior="diffusion-gray",
    ),
    WeakDefault(
        "pnp-hqs",
        "sr",
        "'pnp-hqs' with 'dncnn' or 'diffusion-gray'",
        "×2 / ×4 SR −1.29 / −0.68 dB on held-out images, −1.83 / −0.49 on training",
        prior="lpn",
    ),
    WeakDefault(
        "pnp-hqs",
        "sr",
        "'pnp-hqs' with 'dncnn' or 'diffusion-gray'",
        "×2 / ×4 SR −0.27 / +0.16 dB on held-out images, +0.71 / −0.02 on training",
        prior="denoiser-gray",
    ),
    WeakDefault(
        "pnp-hqs",
        "sr",
        "'pnp-hqs' with 'dncnn' (+3.67 dB there) or 'diffpir'",
        "×2 SR −0.45 dB on held-out images at 128², +1.97 at 64², +2.45 on training images at 128²",
        prior="diffusion-gray",
        max_factor=2,
    ),
    WeakDefault(
        "implicit-prior",
        "blur",
        "'pnp-hqs' with the same prior, or this solver with 'diffusion-gray'",
        "Gaussian blur −0.25 / −0.71 dB (denoiser-gray / dncnn) on training images",
        prior="cnn",
    ),
    WeakDefault(
        "implicit-prior",
        "sr",
        "'pnp-hqs' with the same prior",
        "×2 SR −0.43 / −0.30, ×4 −0.83 / −1.14 dB (denoiser-gray / dncnn) on training images",
        prior="cnn",
    ),
    WeakDefault(
        "implicit-prior",
        "sr",
        "'pnp-hqs' with the same prior",
        "×4 SR +0.30 dB on held-out images, +0.28 on training",
        prior="diffusion",
        min_factor=4,
    ),
    # colour ×4 SR: PnP-HQS + diffusion-rgb gains +0.73 dB on training images, +2.06 on held-out
    WeakDefault(
        "dds",
        "sr",
        "'pnp-hqs' with 'diffusion-rgb'",
        "colour ×4 SR −0.48 dB on training images, +0.01 on held-out",
        prior="diffusion-rgb",
        min_factor=4,
    ),
    WeakDefault(
        "diffpir",
        "sr",
        "'pnp-hqs' with 'diffusion-rgb'",
        "colour ×4 SR −0.30 dB on training images, +0.29 on held-out",
        prior="diffusion-rgb",
        min_factor=4,
    ),
)


def weak_default(solver: str, operator, prior) -> WeakDefault | None:
    """The :data:`WEAK_DEFAULTS` entry for this solve, or None."""
    return next((w for w in WEAK_DEFAULTS if w.matches(solver, operator, prior)), None)


def warn_weak_default(solver: str, operator, prior) -> None:
    """Warn, naming what to use instead, when (``solver``, operator, prior) is in
    :data:`WEAK_DEFAULTS`; called once per solve by :class:`~restorekit.solvers.base.Solver`."""
    import warnings

    weak = weak_default(solver, operator, prior)
    if weak is not None:
        warnings.warn(weak.message(), UserWarning, stacklevel=4)
