"""Denoising quality on the HELD_OUT images, shared by the denoiser training/conversion scripts.

Reports mean PSNR over ``restorekit.data.held_out(size)`` (grey) for Gaussian noise at a few
σ, for the noisy input, TV (skimage ``denoise_tv_chambolle`` at the best weight of a grid,
chosen per σ on these same images: an oracle, hence an upper bound for TV) and any number of
networks ``net(x, sigma)``. Noise is drawn from a seeded generator.
"""
from __future__ import annotations

import numpy as np
import torch

from restorekit.data import held_out
from restorekit.metrics import psnr

TV_WEIGHTS = (0.01, 0.02, 0.04, 0.06, 0.08, 0.12, 0.16, 0.24, 0.32)


def noisy_heldout(sigma: float, size: int = 128, seed: int = 0):
    """Clean held-out batch x (N, 1, size, size) and y = x + σ·n with a seeded n."""
    x = held_out(size)
    g = torch.Generator().manual_seed(seed)
    return x, x + sigma * torch.randn(x.shape, generator=g)


def tv_best(y: torch.Tensor, x: torch.Tensor) -> tuple[float, float]:
    """(mean PSNR, weight) of skimage TV denoising at the best weight of TV_WEIGHTS."""
    from skimage.restoration import denoise_tv_chambolle

    best = (-np.inf, None)
    for w in TV_WEIGHTS:
        z = torch.stack([torch.from_numpy(denoise_tv_chambolle(yi[0].double().numpy(), weight=w))
                         for yi in y])[:, None].float()
        best = max(best, (psnr(z, x).mean().item(), w), key=lambda t: t[0])
    return best


@torch.no_grad()
def heldout_table(nets: dict, sigmas=(0.05, 0.1, 0.2), size: int = 128, seed: int = 0) -> dict:
    """{σ: {"noisy": dB, "TV (w=…)": dB, name: dB, …}} of mean PSNR over the held-out batch."""
    table = {}
    for s in sigmas:
        x, y = noisy_heldout(s, size, seed)
        row = {"noisy": psnr(y, x).mean().item()}
        tv, w = tv_best(y, x)
        row["TV (best weight)"] = tv
        row["_tv_weight"] = w
        for name, net in nets.items():
            row[name] = psnr(net(y, torch.full((y.shape[0],), s)), x).mean().item()
        table[s] = row
    return table


def markdown_table(table: dict) -> str:
    cols = [c for c in next(iter(table.values())) if not c.startswith("_")]
    lines = ["| σ | " + " | ".join(cols) + " | TV weight |", "|---" * (len(cols) + 2) + "|"]
    for s, row in table.items():
        lines.append(f"| {s:g} | " + " | ".join(f"{row[c]:.2f}" for c in cols)
                     + f" | {row['_tv_weight']:g} |")
    return "\n".join(lines)
