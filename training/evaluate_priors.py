"""Measure a shipped diffusion prior: one-step Tweedie denoising PSNR on HELD_OUT images vs TV,
and an unconditional DDIM sample grid.

Tweedie denoiser (one network call). With u = 2x − 1 the observation y = x + σn becomes
u0 + 2σn; pick the timestep t whose noise-to-signal ratio √((1 − ᾱ_t)/ᾱ_t) is closest to 2σ,
scale u_t = √ᾱ_t·(2y − 1) (≈ the forward process at t), and take the posterior mean
û0 = (u_t − √(1 − ᾱ_t)·ε̂(u_t, t)) / √ᾱ_t, x̂ = (û0 + 1)/2 (Efron 2011; Kadkhodaie & Simoncelli 2021).

TV reference: ``skimage.restoration.denoise_tv_chambolle`` with the weight that maximises the
mean PSNR over the same images, from a log grid (an oracle choice, so TV gets its best case).

Usage::

    python training/evaluate_priors.py restorekit/weights/diffusion-gray-cond --samples
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from restorekit import data, metrics  # noqa: E402

SIGMAS = (0.05, 0.1, 0.2)


def load(path: str):
    """(unet, alphas_cumprod float64, null_class or None) from a saved model directory."""
    from diffusers import DDPMScheduler, UNet2DModel

    unet = UNet2DModel.from_pretrained(os.path.join(path, "unet")).float().eval()
    abar = DDPMScheduler.from_pretrained(os.path.join(path, "scheduler")).alphas_cumprod.double()
    n = unet.config.num_class_embeds
    return unet, abar, (None if n is None else n - 1)


@torch.no_grad()
def tweedie_denoise(unet, abar: torch.Tensor, y: torch.Tensor, sigma: float,
                    class_label: int | None = None) -> torch.Tensor:
    """One-step Tweedie denoiser of y = x + σn (images in [0, 1]); see the module docstring."""
    ratio = ((1 - abar) / abar).sqrt()
    t = int((ratio - 2 * sigma).abs().argmin())
    a = float(abar[t])
    u_t = a ** 0.5 * (2 * y - 1)
    labels = None if class_label is None else torch.full((y.shape[0],), class_label, dtype=torch.long)
    eps = unet(u_t, torch.full((y.shape[0],), t), class_labels=labels).sample
    u0 = (u_t - (1 - a) ** 0.5 * eps) / a ** 0.5
    return ((u0 + 1) / 2).clamp(0, 1)


def tv_best(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(best mean PSNR, its weight) of skimage's Chambolle TV over a log grid of weights."""
    from skimage.restoration import denoise_tv_chambolle

    best = (-1.0, 0.0)
    for w in np.geomspace(0.01, 1.0, 25):
        xh = torch.stack([torch.from_numpy(denoise_tv_chambolle(
            yi.permute(1, 2, 0).numpy().astype(np.float64), weight=float(w), channel_axis=-1))
            .permute(2, 0, 1).float() for yi in y])
        p = float(metrics.psnr(xh.clamp(0, 1), x).mean())
        best = max(best, (p, float(w)))
    return best


@torch.no_grad()
def ddim_samples(unet, abar: torch.Tensor, n: int, size: int, steps: int, generator: torch.Generator,
                 class_label: int | None) -> torch.Tensor:
    """Deterministic DDIM (η = 0, Song et al. 2021 eq. 12) from pure noise; returns x in [0, 1]."""
    c = unet.config.in_channels
    ts = torch.linspace(len(abar) - 1, 0, steps).round().long()
    u = torch.randn(n, c, size, size, generator=generator)
    labels = None if class_label is None else torch.full((n,), class_label, dtype=torch.long)
    for i, t in enumerate(ts):
        a = float(abar[t])
        a_next = float(abar[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        eps = unet(u, t.expand(n), class_labels=labels).sample
        # 1. predicted u0, 2. step to the next noise level along the same ε
        u0 = ((u - (1 - a) ** 0.5 * eps) / a ** 0.5).clamp(-1, 1)
        u = a_next ** 0.5 * u0 + (1 - a_next) ** 0.5 * eps
    return ((u + 1) / 2).clamp(0, 1)


def save_grid(rows: list[torch.Tensor], path: str) -> None:
    import matplotlib.pyplot as plt

    grid = torch.cat([torch.cat(list(r), dim=-1) for r in rows], dim=-2)  # (C, H, W)
    img = grid.permute(1, 2, 0).numpy()
    plt.imsave(path, img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="model directory (unet/ and scheduler/ subfolders)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", action="store_true", help="also write samples.png (DDIM, 50 steps)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    unet, abar, null = load(args.model)
    color = unet.config.in_channels == 3
    x = data.held_out(args.size, color=color)
    gen = torch.Generator().manual_seed(args.seed)
    results = {"images": list(data.HELD_OUT), "size": args.size, "color": color, "sigmas": {}}
    for sigma in SIGMAS:
        y = x + sigma * torch.randn(x.shape, generator=gen)
        p_noisy = metrics.psnr(y.clamp(0, 1), x)
        p_dm = metrics.psnr(tweedie_denoise(unet, abar, y, sigma, null), x)
        p_tv, w_tv = tv_best(x, y)
        results["sigmas"][str(sigma)] = {
            "noisy": float(p_noisy.mean()), "tweedie": float(p_dm.mean()),
            "tweedie_per_image": [round(float(v), 2) for v in p_dm],
            "tv_best": p_tv, "tv_weight": w_tv}
        print(f"sigma={sigma}: noisy {p_noisy.mean():.2f}  tweedie {p_dm.mean():.2f} "
              f"({', '.join(f'{v:.2f}' for v in p_dm)})  TV {p_tv:.2f} (weight {w_tv:.3f})", flush=True)
    with open(os.path.join(args.model, "eval.json"), "w") as f:
        json.dump(results, f, indent=2)
    if args.samples:
        g = torch.Generator().manual_seed(args.seed)
        rows = [ddim_samples(unet, abar, 8, 64, 50, g, null)]
        if null is not None:
            rows += [ddim_samples(unet, abar, 8, 64, 50, g, k) for k in range(null)]
        save_grid(rows, os.path.join(args.model, "samples.png"))


if __name__ == "__main__":
    main()
