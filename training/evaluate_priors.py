"""Measure a shipped diffusion prior: one-step Tweedie denoising PSNR on HELD_OUT images vs TV,
and an unconditional DDIM sample grid.

Tweedie denoiser (one network call). With u = 2x − 1 the observation y = x + σn becomes
u0 + 2σn; pick the timestep t whose noise-to-signal ratio √((1 − ᾱ_t)/ᾱ_t) is closest to 2σ,
scale u_t = √ᾱ_t·(2y − 1) (≈ the forward process at t), and take the posterior mean
û0 = (u_t − √(1 − ᾱ_t)·ε̂(u_t, t)) / √ᾱ_t, x̂ = (û0 + 1)/2 (Efron 2011; Kadkhodaie & Simoncelli 2021).

TV reference: ``skimage.restoration.denoise_tv_chambolle`` with the weight that maximises the
mean PSNR over the same images, from a log grid (``restorekit.evaluation.tv_oracle_weight``:
an oracle choice, so TV gets its best case).

Samples: ``restorekit.sample`` (deterministic DDIM, 50 steps, û0 clipped to [−1, 1]).

Usage::

    python -m training.evaluate_priors restorekit/weights/diffusion-gray-cond --samples
"""

from __future__ import annotations

import argparse
import functools
import json
import os

import torch

from restorekit import data, metrics, sample
from restorekit.evaluation import SIGMAS, tv_denoise, tv_oracle_weight
from restorekit.priors.diffusion import DiffusionPrior


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

    prior = DiffusionPrior.from_pretrained(args.model, dtype=torch.float32)
    color = prior.unet.config.in_channels == 3
    x = data.held_out(args.size, color=color)
    gen = torch.Generator().manual_seed(args.seed)
    results = {"images": list(data.HELD_OUT), "size": args.size, "color": color, "sigmas": {}}
    for sigma in SIGMAS:
        y = x + sigma * torch.randn(x.shape, generator=gen)
        p_noisy = metrics.psnr(y.clamp(0, 1), x)
        with torch.no_grad():
            p_dm = metrics.psnr(prior.denoise(y, sigma).clamp(0, 1), x)
        tv = tv_oracle_weight(x, functools.partial(tv_denoise, y))
        p_tv, w_tv = tv.psnr.mean().item(), tv.value
        results["sigmas"][str(sigma)] = {
            "noisy": float(p_noisy.mean()),
            "tweedie": float(p_dm.mean()),
            "tweedie_per_image": [round(float(v), 2) for v in p_dm],
            "tv_best": p_tv,
            "tv_weight": w_tv,
        }
        print(
            f"sigma={sigma}: noisy {p_noisy.mean():.2f}  tweedie {p_dm.mean():.2f} "
            f"({', '.join(f'{v:.2f}' for v in p_dm)})  TV {p_tv:.2f} (weight {w_tv:.3f})",
            flush=True,
        )
    with open(os.path.join(args.model, "eval.json"), "w") as f:
        json.dump(results, f, indent=2)
    if args.samples:
        g = torch.Generator().manual_seed(args.seed)
        c = prior.unet.config.in_channels
        rows = [sample(prior, (8, c, 64, 64), steps=50, generator=g)]
        if prior.num_classes is not None:  # second row: two samples per class
            rows.append(
                sample(
                    prior,
                    (2 * prior.num_classes, c, 64, 64),
                    steps=50,
                    generator=g,
                    cond=torch.arange(prior.num_classes).repeat_interleave(2),
                )
            )
        save_grid(rows, os.path.join(args.model, "samples.png"))


if __name__ == "__main__":
    main()
