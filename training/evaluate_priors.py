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
from restorekit.priors.diffusion import DiffusionPrior  # noqa: E402
from restorekit.priors.schedule import ddim_step, eps_from_x0, timesteps  # noqa: E402

SIGMAS = (0.05, 0.1, 0.2)


def load(path: str) -> DiffusionPrior:
    """The saved model directory (``unet/`` + ``scheduler/``) as a float32 DiffusionPrior."""
    return DiffusionPrior.from_pretrained(path, dtype=torch.float32)


@torch.no_grad()
def denoise(prior: DiffusionPrior, y: torch.Tensor, sigma: float, cond=None) -> torch.Tensor:
    """One-step Tweedie denoiser (``DiffusionPrior.denoise``), clipped to [0, 1]."""
    return prior.denoise(y, sigma, cond).clamp(0, 1)


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
def ddim_samples(prior: DiffusionPrior, n: int, size: int, steps: int, generator: torch.Generator,
                 cond=None) -> torch.Tensor:
    """Deterministic DDIM (η = 0, Song et al. 2021 eq. 12) from pure noise; returns x in [0, 1].

    û0 is clipped to [−1, 1] and ε̂ recomputed from the clipped û0 before each step.
    """
    c = prior.unet.config.in_channels
    ts = timesteps(prior.num_train_timesteps, steps)
    u = torch.randn(n, c, size, size, generator=generator)
    for i, t in enumerate(ts):
        # 1. Tweedie û0 at t, clipped; 2. the ε consistent with it; 3. DDIM step to the next level
        abar = float(prior.alphas_cumprod[t])
        u0 = prior.predict(u, t, cond).x0.clamp(-1, 1)
        eps = eps_from_x0(u, u0, abar)
        abar_next = float(prior.alphas_cumprod[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        u = ddim_step(u0, eps, abar_next, 0.0, torch.zeros_like(u))
    return prior.to_image(u).clamp(0, 1)


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

    prior = load(args.model)
    color = prior.unet.config.in_channels == 3
    x = data.held_out(args.size, color=color)
    gen = torch.Generator().manual_seed(args.seed)
    results = {"images": list(data.HELD_OUT), "size": args.size, "color": color, "sigmas": {}}
    for sigma in SIGMAS:
        y = x + sigma * torch.randn(x.shape, generator=gen)
        p_noisy = metrics.psnr(y.clamp(0, 1), x)
        p_dm = metrics.psnr(denoise(prior, y, sigma), x)
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
        rows = [ddim_samples(prior, 8, 64, 50, g)]
        if prior.num_classes is not None:  # second row: two samples per class
            rows.append(ddim_samples(prior, 2 * prior.num_classes, 64, 50, g,
                                     torch.arange(prior.num_classes).repeat_interleave(2)))
        save_grid(rows, os.path.join(args.model, "samples.png"))


if __name__ == "__main__":
    main()
