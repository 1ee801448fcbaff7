"""Non-linear forward models y = A(x) + n, Fienup's classical phase-retrieval iterations, and a
spatially varying blur (linear, with an exact adjoint; here because it is the other "beyond a
single convolution" model of the DPS paper's experiments).

Contract of a non-linear operator (deepinv ``Physics`` with ``linear = False``):
- ``A(x)`` is differentiable by autograd; nothing else is promised — no adjoint, no
  pseudo-inverse, no proximal map;
- ``img_shape`` gives (C, H, W) of the unknown image (linear solvers read it from Aᴴy);
- ``A_adjoint`` and ``A_dagger`` raise a TypeError saying so. :func:`restorekit.validate.check_problem`
  accepts a deepinv ``Physics`` only with this marker; every solver that needs linear structure
  calls Aᴴ or A† first (its starting point, CG, the data-consistency step) and so stops there
  with that message, while DPS (∇ of ‖y − A(x̂0)‖ only) runs.

Fourier phase retrieval (Fienup, "Phase retrieval algorithms: a comparison", Applied Optics
1982): y = |F P x| + n, P zero-pads the image to ``oversampling`` times its size in each
direction (oversampling ≥ 2 makes the problem generically unique up to trivial ambiguities:
shifts within the padded grid, the 180° rotation and, for real x, the conjugate), F the
orthonormal 2-D DFT.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from deepinv.physics import LinearPhysics, Physics

from ._common import as_device, check_generator, image_size, noise_model, positive_int, real_number


class PhaseRetrieval(Physics):
    """y = |F(P x)| + n: magnitudes of the oversampled orthonormal DFT (module notes).

    Parameters
    ----------
    img_size : int or (H, W) of the image.
    channels : image channels (each retrieved independently).
    oversampling : padded size / image size per direction, ≥ 1 (2 by default).
    noise_sigma : Gaussian noise std on the magnitudes; generator draws it.
    """

    linear = False

    def __init__(
        self,
        img_size,
        *,
        channels: int = 1,
        oversampling: float = 2.0,
        noise_sigma: float = 0.0,
        generator: torch.Generator | None = None,
        device=None,
    ):
        check_generator(generator)
        device = as_device(device)
        h, w = image_size(img_size)
        self.oversampling = real_number(oversampling, "oversampling", low=1.0)
        self.img_shape = (positive_int(channels, "channels"), h, w)
        self.padded = (int(math.ceil(h * self.oversampling)), int(math.ceil(w * self.oversampling)))
        super().__init__(noise_model=noise_model(noise_sigma, None, generator, device))

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """P x: zeros below and to the right up to the padded size."""
        ph, pw = self.padded
        return torch.nn.functional.pad(x, (0, pw - x.shape[-1], 0, ph - x.shape[-2]))

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return torch.fft.fft2(self.pad(x), norm="ortho").abs()

    def A_adjoint(self, y, **kwargs):
        raise TypeError(
            f"{type(self).__name__} is non-linear: it has no adjoint (solvers that need "
            "Aᴴ or A† refuse it; use dps, which needs a differentiable A only)"
        )

    A_dagger = A_adjoint


class SpatiallyVaryingBlur(LinearPhysics):
    """y = Σ_k w_k ⊙ (h_k ⋆ x) + n (⋆: torch's conv2d, a correlation; the same as a convolution
    for symmetric kernels): K blur kernels mixed by per-pixel weights (the
    "efficient filter flow" model of Nagy & O'Leary 1998 / Hirsch et al. 2010 — a blur that
    changes smoothly across the image). It is linear, so unlike the operators above it has an
    exact adjoint, Aᴴy = Σ_k h_k ∗ (w_k ⊙ y) (the transposed correlation), and every solver
    takes it.

    Parameters
    ----------
    kernels : (K, k, k) non-negative kernels (odd k), each summing to 1.
    weights : (K, H, W) non-negative mixing maps summing to 1 at every pixel (e.g.
        :func:`linear_ramp_weights`).
    noise_sigma, generator, device : the Gaussian measurement noise.
    Boundary: zero padding (so the adjoint is the exact transpose).
    """

    def __init__(
        self,
        kernels: torch.Tensor,
        weights: torch.Tensor,
        *,
        noise_sigma: float = 0.0,
        generator: torch.Generator | None = None,
        device=None,
    ):
        check_generator(generator)
        device = as_device(device)
        if kernels.ndim != 3 or kernels.shape[-1] != kernels.shape[-2] or kernels.shape[-1] % 2 == 0:
            raise ValueError(f"kernels must be shaped (K, k, k) with k odd, got {tuple(kernels.shape)}")
        if weights.ndim != 3 or weights.shape[0] != kernels.shape[0]:
            raise ValueError(
                f"weights must be shaped (K, H, W) with K = {kernels.shape[0]}, got {tuple(weights.shape)}"
            )
        if (kernels < 0).any() or (weights < 0).any():
            raise ValueError("kernels and weights must be non-negative")
        super().__init__(noise_model=noise_model(noise_sigma, None, generator, device))
        self.register_buffer("kernels", kernels[:, None].to(device))
        self.register_buffer("weights", weights[None].to(device))

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        b, c, h, w = x.shape
        pad = self.kernels.shape[-1] // 2
        k = self.kernels.to(x.dtype)
        blurred = F.conv2d(x.reshape(b * c, 1, h, w), k, padding=pad)  # (B·C, K, H, W)
        return (blurred * self.weights.to(x.dtype)).sum(1).reshape(b, c, h, w)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        b, c, h, w = y.shape
        pad = self.kernels.shape[-1] // 2
        weighted = y.reshape(b * c, 1, h, w) * self.weights.to(y.dtype)  # (B·C, K, H, W)
        k = self.kernels.to(y.dtype)  # (K, 1, k, k): K input channels of conv_transpose2d
        return F.conv_transpose2d(weighted, k, padding=pad).reshape(b, c, h, w)


def linear_ramp_weights(k: int, img_size) -> torch.Tensor:
    """(K, H, W) hat functions along the image width: kernel j dominates at column j/(K − 1)."""
    h, w = image_size(img_size)
    centres = torch.linspace(0, 1, positive_int(k, "k"))
    pos = torch.linspace(0, 1, w)
    hats = (1 - (pos[None] - centres[:, None]).abs() * max(k - 1, 1)).clamp_min(0)
    hats = hats / hats.sum(0, keepdim=True)
    return hats[:, None, :].expand(-1, h, -1).contiguous()


def support_projection(z: torch.Tensor, img_shape) -> torch.Tensor:
    """Zero outside the image support (top-left ``img_shape``) of a padded image."""
    mask = torch.zeros(z.shape[-2:], dtype=torch.bool, device=z.device)
    mask[: img_shape[-2], : img_shape[-1]] = True
    return z * mask


def fienup(
    y: torch.Tensor,
    operator: PhaseRetrieval,
    *,
    iters: int = 500,
    beta: float = 0.9,
    er_every: int = 0,
    generator: torch.Generator | None = None,
    x_init: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Error reduction (``beta = 0``) or hybrid input–output (Fienup 1982, eqs. (9)–(11),
    (36)): with g' = F⁻¹[y·F g/|F g|] (impose the measured magnitudes) and the object-domain
    constraint set S = {support = the image rectangle, g ≥ 0},

        ER:  g ← g' on S, 0 elsewhere;
        HIO: g ← g' where g' satisfies S, g − β·g' elsewhere.

    ``er_every`` > 0 runs one ER step every ``er_every`` iterations (HIO+ER); the last step
    is always ER. Starts from uniform noise on the support (``generator``) or ``x_init``.
    Returns the image crop, (B, C, H, W).
    """
    c, h, w = operator.img_shape
    if x_init is None:
        g = operator.pad(torch.rand((y.shape[0], c, h, w), generator=generator, dtype=y.dtype).to(y.device))
    else:
        g = operator.pad(x_init)
    inside = support_projection(torch.ones_like(g), operator.img_shape).bool()
    for i in range(iters):
        # 1. impose the measured Fourier magnitudes
        f = torch.fft.fft2(g, norm="ortho")
        g_prime = torch.fft.ifft2(y * torch.sgn(f), norm="ortho").real
        # 2. object-domain constraints: support and non-negativity
        ok = inside & (g_prime >= 0)
        er = beta == 0 or i == iters - 1 or (er_every > 0 and (i + 1) % er_every == 0)
        g = torch.where(ok, g_prime, torch.zeros_like(g) if er else g - beta * g_prime)
    return g[..., :h, :w]


def register_solutions(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """x moved by the trivial ambiguities of |F x| — a shift (circular on a 2× grid) and the
    180° rotation — to best match ``ref`` per sample (largest cross-correlation), for measuring
    phase-retrieval quality against the truth. Returns the crop of ``ref``'s size."""
    h, w = ref.shape[-2:]
    pad = (0, w, 0, h)
    r = torch.fft.fft2(torch.nn.functional.pad(ref, pad))
    best: torch.Tensor | None = None
    best_score: torch.Tensor | None = None
    for cand in (x, torch.flip(x, (-2, -1))):
        c = torch.nn.functional.pad(cand, pad)
        corr = torch.fft.ifft2(r * torch.fft.fft2(c).conj()).real.sum(1)  # (B, 2H, 2W)
        score, idx = corr.flatten(1).max(1)
        moved = torch.stack(
            [torch.roll(c[b], (int(i) // (2 * w), int(i) % (2 * w)), (-2, -1)) for b, i in enumerate(idx)]
        )[..., :h, :w]
        if best is None:
            best, best_score = moved, score
        else:
            assert best_score is not None  # set together with best
            take = (score > best_score).view(-1, 1, 1, 1)
            best, best_score = torch.where(take, moved, best), torch.maximum(score, best_score)
    assert best is not None  # the loop runs twice
    return best


def relative_residual(x: torch.Tensor, y: torch.Tensor, operator) -> torch.Tensor:
    """‖A(x) − y‖/‖y‖ per sample: the best-of-k selection criterion (no ground truth needed)."""
    return (operator.A(x) - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)
