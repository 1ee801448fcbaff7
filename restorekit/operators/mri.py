"""Cartesian accelerated MRI (single or multi-coil) on real images."""

from __future__ import annotations

import math

import torch
from deepinv.physics import MRI, LinearPhysics, MultiCoilMRI

from ._common import (
    as_device,
    check_dtype,
    check_generator,
    draw,
    image_size,
    noise_model,
    positive_int,
    real_number,
)


class RealMRI(LinearPhysics):
    r"""A deepinv MRI operator restricted to real images: A x = MRI(x + 0i).

    restorekit images are real (B, 1, H, W); deepinv MRI takes complex images as two channels
    (real, imaginary) and returns k-space as two channels as well: (B, 2, H, W) single-coil,
    (B, 2, N, H, W) for N coils. As a map between real vector spaces, the restriction
    x ↦ MRI(x, 0) has adjoint y ↦ Re(MRIᴴ y), the first channel of deepinv's adjoint.

    ``A_dagger``: with one coil, the exact Moore–Penrose pseudo-inverse of this real operator.
    For real x the spectrum is Hermitian, X(−k) = conj X(k), so AᴴA = Re(Fᴴ M F) = Fᴴ D F with
    D = (M + M̃)/2, M̃ the mask mirrored k → −k (values 0, ½, 1), hence A† y = Fᴴ D⁺ F Aᴴ y:
    the zero-filled reconstruction with frequencies whose mirror is unsampled counted twice
    (A† = Aᴴ when the mask is conjugate-symmetric). ``x − A†(A x − y)`` is then the exact
    projection onto {x : A x = y}. With several coils (no such closed form) ``A_dagger`` is the
    zero-filled coil-combined image Re(Σ_c S̄_c Fᴴ M y_c), exact when k-space is fully sampled
    (Σ|S_c|² = 1); use :func:`~restorekit.operators.cg_solve` for least squares.

    Noise is added by the wrapped deepinv operator, i.e. only at sampled k-space locations.
    """

    def __init__(self, physics: LinearPhysics, noise, device):
        physics.noise_model = noise
        super().__init__(noise_model=noise, device=device)
        self.physics = physics

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        if x.shape[1] != 1:
            raise ValueError(f"MRI takes real gray images (B, 1, H, W), got shape {tuple(x.shape)}")
        return self.physics.A(torch.cat([x, torch.zeros_like(x)], dim=1))

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.physics.A_adjoint(y)[:, :1]

    def A_dagger(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        x = self.A_adjoint(y)
        if isinstance(self.physics, MultiCoilMRI):
            return x
        m = self.physics.mask[0, 0]
        d = (m + _mirror(m)) / 2
        d_pinv = torch.where(d > 0, 1 / d.clamp(min=0.5), 0.0)
        spectrum = MRI.fft(x[:, 0].to(torch.complex128 if x.dtype == torch.float64 else torch.complex64))
        return MRI.ifft(spectrum * d_pinv).real[:, None]

    def noise(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.physics.noise(y, **kwargs)

    @property
    def mask(self) -> torch.Tensor:
        """The k-space sampling mask, (1, 2, H, W) (both channels equal)."""
        return self.physics.mask


def _mirror(t: torch.Tensor) -> torch.Tensor:
    """t(−k) for a centred (fftshifted) 2D spectrum t(k): index c ↦ (2⌊n/2⌋ − c) mod n per axis."""
    h, w = t.shape[-2:]
    rows = (2 * (h // 2) - torch.arange(h, device=t.device)) % h
    cols = (2 * (w // 2) - torch.arange(w, device=t.device)) % w
    return t[..., rows[:, None], cols[None, :]]


def cartesian_mask(
    img_size,
    acceleration: float = 4.0,
    center_fraction: float = 0.08,
    *,
    generator: torch.Generator | None = None,
    dtype=torch.float32,
) -> torch.Tensor:
    """(H, W) Cartesian mask of sampled k-space columns (phase encodes), centred spectrum.

    The ⌈center_fraction·W⌉ central columns are all kept; the other columns are drawn at
    random without replacement until round(W/acceleration) columns are sampled in all (the
    random-offset masks of the fastMRI challenge, Zbontar et al. 2018, in spirit).
    """
    h, w = image_size(img_size)
    acceleration = real_number(acceleration, "acceleration", low=1.0)
    center_fraction = real_number(center_fraction, "center_fraction", low=0.0, high=1.0, low_open=True)
    check_generator(generator)
    n_keep = max(1, round(w / acceleration))
    n_center = min(w, math.ceil(center_fraction * w))
    if n_center > n_keep:
        raise ValueError(
            f"center_fraction must be at most 1/acceleration so that the centre fits in "
            f"the {n_keep} sampled columns, got center_fraction={center_fraction:g} with "
            f"acceleration={acceleration:g}"
        )
    keep = torch.zeros(w, dtype=torch.bool)
    start = w // 2 - n_center // 2
    keep[start : start + n_center] = True
    others = torch.nonzero(~keep).flatten()
    order = draw(torch.randperm, (len(others),), generator, device="cpu", dtype=torch.int64)
    keep[others[order[: n_keep - n_center]]] = True
    return keep.to(dtype).expand(h, w).clone()


def coil_maps(img_size, coils: int, *, dtype=torch.float32) -> torch.Tensor:
    r"""Smooth synthetic coil sensitivities (coils, H, W), complex, with Σ_c |S_c|² = 1.

    Coil c sits at angle φ_c = 2πc/coils on a circle of radius N/2 around the image centre
    (N = max(H, W)); its magnitude is a Gaussian bump of std 0.4·N centred there, its phase a
    gentle ramp φ_c + π·(r·u_c)/N along the direction u_c = (sin φ_c, cos φ_c). Every pixel is
    then divided by √(Σ_c |S_c|²), as ESPIRiT-normalised maps are.
    """
    h, w = image_size(img_size)
    coils = positive_int(coils, "coils")
    n = max(h, w)
    rows = torch.arange(h, dtype=torch.float64)[:, None] - (h - 1) / 2
    cols = torch.arange(w, dtype=torch.float64)[None, :] - (w - 1) / 2
    per_coil = []
    for c in range(coils):
        phi = 2 * math.pi * c / coils
        u = (math.sin(phi), math.cos(phi))
        dist2 = (rows - u[0] * n / 2) ** 2 + (cols - u[1] * n / 2) ** 2
        magnitude = torch.exp(-dist2 / (2 * (0.4 * n) ** 2))
        phase = phi + math.pi * (rows * u[0] + cols * u[1]) / n
        per_coil.append(magnitude * torch.exp(1j * phase))
    maps = torch.stack(per_coil)
    maps = maps / maps.abs().pow(2).sum(0, keepdim=True).sqrt()
    return maps.to(torch.complex128 if check_dtype(dtype) == torch.float64 else torch.complex64)


def mri(
    *,
    img_size,
    acceleration: float = 4.0,
    center_fraction: float = 0.08,
    coils: int = 1,
    noise_sigma: float = 0.0,
    generator: torch.Generator | None = None,
    device=None,
    dtype=torch.float32,
):
    r"""Accelerated Cartesian MRI on real gray images: y_c = M F (S_c x) + M n_c.

    F is the orthonormal centred 2D DFT, M the column mask of :func:`cartesian_mask`, S_c the
    coil maps of :func:`coil_maps` (coils > 1, deepinv :class:`~deepinv.physics.MultiCoilMRI`)
    or 1 (deepinv :class:`~deepinv.physics.MRI`). x is a real (B, 1, H, W) image; k-space y is
    (B, 2, H, W), or (B, 2, coils, H, W), real and imaginary parts as channels (see
    :class:`RealMRI` for the adjoint and ``A_dagger``).

    Parameters
    ----------
    img_size : int or (H, W).
    acceleration : undersampling factor R ≥ 1 (W/R columns kept).
    center_fraction : fraction of central columns always kept.
    coils : number of receiver coils.
    noise_sigma : Gaussian noise std per real and imaginary part of k-space (Poisson noise is
        not offered: k-space values are signed).
    generator : draws the mask and the measurement noise.
    """
    check_generator(generator)
    device, dtype = as_device(device), check_dtype(dtype)
    coils = positive_int(coils, "coils")
    mask = cartesian_mask(img_size, acceleration, center_fraction, generator=generator, dtype=dtype).to(
        device
    )
    if coils == 1:
        physics = MRI(mask=mask, device=device)
    else:
        physics = MultiCoilMRI(
            mask=mask, coil_maps=coil_maps(img_size, coils, dtype=dtype).to(device), device=device
        )
    return RealMRI(physics, noise_model(noise_sigma, None, generator, device), device)
