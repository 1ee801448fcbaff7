"""Inpainting: keep the pixels of a binary mask, y = m ⊙ x + m ⊙ n."""

from __future__ import annotations

import torch
from deepinv.physics import Inpainting

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

MASKS = ("random", "box")


def random_mask(img_size, fraction: float = 0.5, *, generator=None, dtype=torch.float32) -> torch.Tensor:
    """(H, W) mask keeping each pixel independently with probability ``fraction``."""
    h, w = image_size(img_size)
    fraction = real_number(fraction, "fraction", low=0.0, high=1.0, low_open=True)
    check_generator(generator)
    return (draw(torch.rand, (h, w), generator, device="cpu", dtype=torch.float64) < fraction).to(dtype)


def box_mask(img_size, box_size=None, *, generator=None, dtype=torch.float32) -> torch.Tensor:
    """(H, W) mask of ones with a zero box of ``box_size`` (int or (h, w); default half of each
    side) at a uniformly drawn position, at least 1/8 of the side away from the border when the
    box leaves room (as in the box inpainting of DPS, Chung et al. ICLR 2023)."""
    h, w = image_size(img_size)
    bh, bw = (h // 2, w // 2) if box_size is None else image_size(box_size, "box_size")
    if bh > h or bw > w:
        raise ValueError(f"box_size must fit in img_size {(h, w)}, got {(bh, bw)}")
    check_generator(generator)
    corner = []
    for side, box in ((h, bh), (w, bw)):
        margin = min(side // 8, (side - box) // 2)
        span = side - box - 2 * margin + 1
        corner.append(
            margin + int(draw(torch.randint, (span, (1,)), generator, device="cpu", dtype=torch.int64).item())
        )
    mask = torch.ones(h, w, dtype=dtype)
    mask[corner[0] : corner[0] + bh, corner[1] : corner[1] + bw] = 0
    return mask


def check_mask(mask, img_size, channels: int, dtype=torch.float32) -> torch.Tensor:
    """A user mask: binary, shaped (H, W), (c, H, W) or (1, c, H, W) with c in {1, channels}."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be 'random', 'box' or a torch.Tensor, got {type(mask).__name__}")
    h, w = image_size(img_size)
    ok_shapes = [(h, w), (1, h, w), (channels, h, w), (1, 1, h, w), (1, channels, h, w)]
    if tuple(mask.shape) not in ok_shapes:
        raise ValueError(
            f"mask must have shape (H, W), (c, H, W) or (1, c, H, W) with H, W = {(h, w)} "
            f"and c in (1, {channels}), got {tuple(mask.shape)}"
        )
    mask = mask.to(dtype)
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError("mask must be binary (0 = missing pixel, 1 = observed pixel)")
    if not mask.any() or mask.all():
        raise ValueError(
            f"mask must keep some pixels and drop others, got all {int(mask.flatten()[0])}s "
            "(all zeros observe nothing; all ones is denoising: operators.denoising)"
        )
    return mask.reshape(-1, h, w)


def inpainting(
    mask="random",
    *,
    img_size,
    channels: int = 1,
    fraction: float = 0.5,
    box_size=None,
    noise_sigma: float = 0.0,
    poisson: float | None = None,
    generator: torch.Generator | None = None,
    device=None,
    dtype=torch.float32,
):
    r"""Inpainting operator y = m ⊙ (x + n) (deepinv :class:`~deepinv.physics.Inpainting`).

    Parameters
    ----------
    mask : ``"random"`` (each pixel kept with probability ``fraction``), ``"box"`` (a box of
        ``box_size`` removed, see :func:`box_mask`) or a binary tensor (1 = observed).
    img_size : int or (H, W) of the images.
    channels : number of image channels; drawn masks are shared by all channels.
    fraction : fraction of pixels kept by the random mask, in (0, 1].
    box_size : int or (h, w) of the missing box; default (H/2, W/2).
    noise_sigma, poisson : Gaussian noise std and Poisson gain, on observed pixels only.
    generator : draws the mask and the measurement noise.
    """
    check_generator(generator)
    device, dtype = as_device(device), check_dtype(dtype)
    channels = positive_int(channels, "channels")
    h, w = image_size(img_size)
    if isinstance(mask, str) and mask == "random":
        if box_size is not None:
            raise ValueError("box_size applies to mask='box' only")
        m = random_mask((h, w), fraction, generator=generator, dtype=dtype)[None]
    elif isinstance(mask, str) and mask == "box":
        m = box_mask((h, w), box_size, generator=generator, dtype=dtype)[None]
    elif isinstance(mask, torch.Tensor):
        if box_size is not None:
            raise ValueError("box_size applies to mask='box' only")
        m = check_mask(mask, (h, w), channels, dtype)
    else:
        raise ValueError(f"mask must be one of {MASKS} or a binary tensor, got {mask!r}")
    return Inpainting(
        img_size=(m.shape[0], h, w),
        mask=m.to(device),
        noise_model=noise_model(noise_sigma, poisson, generator, device),
        device=device,
    )
