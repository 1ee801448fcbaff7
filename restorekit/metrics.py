"""Batched image quality metrics on (B, C, H, W) tensors in [0, 1]; each returns a (B,) tensor."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(x: torch.Tensor, ref: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio 10·log10(range² / MSE) per sample, in dB.

    >>> import torch
    >>> ref = torch.zeros(2, 1, 4, 4)
    >>> [round(v, 3) for v in psnr(ref + 0.1, ref).tolist()]   # MSE = 0.01 → 20 dB per sample
    [20.0, 20.0]
    """
    if x.shape != ref.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(x.shape)} vs {tuple(ref.shape)}")
    mse = (x - ref).flatten(1).pow(2).mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-20))


def _gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    r = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    x: torch.Tensor,
    ref: torch.Tensor,
    data_range: float = 1.0,
    win_size: int = 7,
    gaussian: bool = False,
    sigma: float = 1.5,
) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per sample, averaged over channels and pixels.

    Defaults match ``skimage.metrics.structural_similarity`` (7×7 uniform window, K1 = 0.01,
    K2 = 0.03, sample covariances with N − 1, statistics over the fully covered ('valid')
    region); ``gaussian=True`` uses an 11×11 Gaussian window with σ = 1.5 as in the paper.

    >>> import torch
    >>> x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> ssim(x, x)
    tensor([1.])
    >>> bool(ssim(x, 0.5 * x) < 1)
    True
    """
    if x.shape != ref.shape:
        raise ValueError(f"ssim: shapes differ, {tuple(x.shape)} vs {tuple(ref.shape)}")
    C = x.shape[1]
    if gaussian:
        win_size = 11
        g = _gaussian_window(win_size, sigma, x.dtype, x.device)
        w = g[:, None] * g[None, :]
    else:
        w = torch.full((win_size, win_size), 1.0 / win_size**2, dtype=x.dtype, device=x.device)
    w = w.expand(C, 1, win_size, win_size)

    def filt(z):
        return F.conv2d(z, w, groups=C)

    n = win_size**2
    cov_norm = 1.0 if gaussian else n / (n - 1)
    mx, my = filt(x), filt(ref)
    vx = cov_norm * (filt(x * x) - mx * mx)
    vy = cov_norm * (filt(ref * ref) - my * my)
    vxy = cov_norm * (filt(x * ref) - mx * my)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)
