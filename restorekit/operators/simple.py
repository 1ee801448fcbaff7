"""Super-resolution (filtered decimation) and denoising (identity) operators."""

from __future__ import annotations

import torch
from deepinv.physics import Denoising, Downsampling
from deepinv.physics.functional import bicubic_filter, gaussian_blur

from ._common import as_device, check_dtype, check_generator, image_size, noise_model, positive_int

FACTORS = (2, 4)
FILTERS = ("bicubic", "gaussian")


def super_resolution(
    factor: int = 4,
    *,
    img_size,
    channels: int = 1,
    filter: str = "bicubic",
    noise_sigma: float = 0.0,
    poisson: float | None = None,
    generator: torch.Generator | None = None,
    device=None,
    dtype=torch.float32,
):
    r"""Super-resolution operator y = S(h ∗ x) + n (deepinv :class:`~deepinv.physics.Downsampling`).

    ``h`` is the antialiasing filter, ``"bicubic"`` (Keys' cubic kernel scaled by ``factor``)
    or ``"gaussian"`` (std = ``factor`` pixels), applied with periodic boundary; ``S`` keeps
    every ``factor``-th pixel in each direction, so y has size (H/factor, W/factor).

    Parameters
    ----------
    factor : 2 or 4.
    img_size : int or (H, W) of the high-resolution image, divisible by ``factor``.
    channels : number of image channels.
    noise_sigma, poisson : Gaussian noise std and Poisson gain.
    generator : draws the measurement noise.
    """
    check_generator(generator)
    device, dtype = as_device(device), check_dtype(dtype)
    if factor not in FACTORS or isinstance(factor, bool):
        raise ValueError(f"factor must be one of {FACTORS}, got {factor!r}")
    h, w = image_size(img_size)
    if h % factor or w % factor:
        raise ValueError(f"img_size must be divisible by factor={factor}, got {(h, w)}")
    channels = positive_int(channels, "channels")
    if filter == "bicubic":
        kernel = bicubic_filter(factor)
    elif filter == "gaussian":
        kernel = gaussian_blur(sigma=(float(factor), float(factor)), dtype=torch.float64)
    else:
        raise ValueError(f"filter must be one of {FILTERS}, got {filter!r}")
    noise = noise_model(noise_sigma, poisson, generator, device)
    return Downsampling(
        img_size=(channels, h, w),
        filter=kernel.to(device, dtype),
        factor=factor,
        padding="circular",
        noise_model=noise,
        device=device,
    )


def denoising(
    *,
    noise_sigma: float = 0.1,
    poisson: float | None = None,
    generator: torch.Generator | None = None,
    device=None,
):
    """Denoising operator y = x + n (deepinv :class:`~deepinv.physics.Denoising`), by default
    Gaussian noise of std 0.1."""
    check_generator(generator)
    device = as_device(device)
    return Denoising(noise_model=noise_model(noise_sigma, poisson, generator, device), device=device)
