"""BM3D as a peer and as a prior, through the optional ``bm3d`` package (extra ``peers``).

BM3D (Dabov, Foi, Katkovnik & Egiazarian, "Image denoising by sparse 3-D transform-domain
collaborative filtering", IEEE TIP 16(8), 2007) groups similar patches into 3-D stacks, shrinks
them in a separable transform (hard thresholding, then an empirical Wiener filter with the
first estimate as pilot) and aggregates the overlapping estimates. CBM3D runs it in the
opponent colour space with the grouping decided on luminance; BM3D-deblurring (Dabov et al.,
"Image restoration by sparse 3D transform-domain collaborative filtering", SPIE 2008) denoises
a Tikhonov-regularised inverse and then a regularised Wiener inverse with coloured-noise BM3D.

The implementation is Tampere University's ``bm3d`` package (Mäkinen, Azzari & Foi 2020),
which is free for non-commercial use only; restorekit therefore never depends on it: install
it with ``pip install 'restorekit[peers]'``. Everything here imports it lazily and raises an
ImportError naming the extra when it is missing.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

EXTRA_HINT = (
    "BM3D needs the optional package 'bm3d' (free for non-commercial use only, "
    "Tampere University): pip install 'restorekit[peers]'"
)


def import_bm3d():
    """The ``bm3d`` module, or an ImportError naming the ``peers`` extra."""
    try:
        import bm3d
    except ImportError as err:
        raise ImportError(EXTRA_HINT) from err
    return bm3d


@contextlib.contextmanager
def _numpy_trapz():
    """``np.trapz`` for the duration of a bm3d call: NumPy 2 renamed it ``np.trapezoid`` and
    bm3d's coloured-noise path (via bm4d) still calls the old name. Restored on exit; nothing
    is changed when NumPy still has ``trapz``."""
    added = not hasattr(np, "trapz")
    if added:
        np.trapz = np.trapezoid  # noqa: NPY201 (restored for bm3d_deblurring only, see above)
    try:
        yield
    finally:
        if added:
            del np.trapz  # noqa: NPY201


def _per_sample(x: torch.Tensor, sigma, fn) -> torch.Tensor:
    """Apply ``fn(image (H, W, C) float64, σ)`` to every sample of x (B, C, H, W)."""
    s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(x.shape[0])
    out = [
        torch.from_numpy(
            np.ascontiguousarray(fn(xi.detach().cpu().double().permute(1, 2, 0).numpy(), float(si))).reshape(
                *xi.shape[1:], -1
            )
        ).permute(2, 0, 1)
        for xi, si in zip(x, s)
    ]
    return torch.stack(out).to(device=x.device, dtype=x.dtype)


def bm3d_denoise(x: torch.Tensor, sigma) -> torch.Tensor:
    """BM3D (one channel) or CBM3D (three channels, opponent space) of x (B, C, H, W) at noise
    standard deviation σ (float or (B,)), in the units of x."""
    lib = import_bm3d()
    if x.shape[1] not in (1, 3):
        raise ValueError(f"BM3D takes 1 (grey) or 3 (RGB) channels, got {x.shape[1]}")
    if x.shape[1] == 3:
        return _per_sample(x, sigma, lambda z, s: lib.bm3d_rgb(z, s))
    return _per_sample(x, sigma, lambda z, s: lib.bm3d(z[..., 0], s))


def bm3d_deblur(y: torch.Tensor, psf: torch.Tensor, sigma: float) -> torch.Tensor:
    """BM3D-deblurring of a circularly blurred grey image y (B, 1, H, W) with point-spread
    function ``psf`` (h, w), centred, and noise standard deviation σ."""
    lib = import_bm3d()
    if y.shape[1] != 1:
        raise ValueError(f"bm3d_deblur takes grey images (B, 1, H, W), got {tuple(y.shape)}")
    k = psf.detach().cpu().double().reshape(psf.shape[-2:]).numpy()
    with _numpy_trapz():
        return _per_sample(y, sigma, lambda z, s: lib.bm3d_deblurring(z, s, k))


class BM3DPrior:
    """BM3D as a Denoiser prior (the denoiser of the original plug-and-play paper, Venkatakrishnan,
    Bouman & Wohlberg 2013): ``denoise(x, σ)`` is BM3D for grey and CBM3D for RGB images.

    Runs on the CPU in numpy, one image at a time (a few seconds per 128² image).
    Needs the optional package ``bm3d`` (``pip install 'restorekit[peers]'``).
    """

    name = "bm3d"

    def __init__(self):
        import_bm3d()

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """BM3D estimate of the clean image, same device and dtype as ``x``."""
        return bm3d_denoise(x, sigma)

    def __repr__(self):
        return "BM3DPrior()"
