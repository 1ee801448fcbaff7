"""Measure the shipped priors on the restoration quality bar: held-out images, two tasks.

Tasks (gray ``restorekit.data.held_out(size)``: camera, astronaut, coins, shepp_logan_phantom):
  - ``deblur``: Gaussian blur σ_b = 2 px (circular), Gaussian noise σ_y = 0.01;
  - ``sr4``: 4× super-resolution (bicubic filter), noise σ_y = 0.01.
Methods:
  - TV by Chambolle–Pock with the weight λ that is best on these very images (a log grid: an
    oracle choice, so TV gets its best case);
  - PnP-HQS (DPIR schedule, λ = 0.23, σ from 49/255 to σ_y; 24 iterations for deblurring, 40
    for SR as published) with the shipped denoisers ``denoiser-gray`` and ``dncnn``;
  - DDS (50 steps, defaults) with ``diffusion-gray``, one sample per image (seed 0).
Each image gets its own noise draw (seed = its index in HELD_OUT). Prints a markdown table and,
with ``--out``, writes the per-image PSNRs as JSON.

    python training/evaluate_restoration.py --out restoration.json
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import restorekit as rk  # noqa: E402
from restorekit import data, metrics  # noqa: E402
from restorekit.priors import TV  # noqa: E402
from restorekit.priors import load as load_prior  # noqa: E402

NOISE = 0.01
load = functools.cache(load_prior)
TV_GRID = tuple(float(w) for w in np.geomspace(1e-4, 0.1, 13))


def operator(task: str, size: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    if task == "deblur":
        return rk.operators.blur("gaussian", sigma=2.0, noise_sigma=NOISE, generator=g)
    if task == "sr4":
        return rk.operators.super_resolution(4, img_size=size, noise_sigma=NOISE, generator=g)
    raise ValueError(f"unknown task {task!r}")


def per_image(task: str, x: torch.Tensor, fn) -> torch.Tensor:
    """PSNR of ``fn(y, op)`` for each image, each with its own operator noise (seed = index)."""
    out = []
    for i, xi in enumerate(x.split(1)):
        op = operator(task, xi.shape[-1], i)
        out.append(metrics.psnr(fn(op(xi), op).clamp(0, 1), xi))
    return torch.cat(out)


def tv_oracle(task: str, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Chambolle–Pock TV with the grid weight of best mean PSNR: (per-image PSNR, weight)."""
    best = None
    for w in TV_GRID:
        p = per_image(task, x, lambda y, op: rk.solve(y, op, TV(w), solver="chambolle-pock", max_iter=300).x)
        if best is None or p.mean() > best[0].mean():
            best = (p, w)
    return best


def methods(task: str) -> dict:
    hqs_iter = 24 if task == "deblur" else 40
    return {
        "PnP-HQS denoiser-gray": lambda y, op: rk.solve(y, op, load("denoiser-gray"), solver="pnp-hqs",
                                                        max_iter=hqs_iter).x,
        "PnP-HQS dncnn": lambda y, op: rk.solve(y, op, load("dncnn"), solver="pnp-hqs", max_iter=hqs_iter).x,
        "DDS diffusion-gray": lambda y, op: rk.solve(y, op, load("diffusion-gray"), solver="dds",
                                                     generator=torch.Generator().manual_seed(0)).x,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--tasks", nargs="+", default=["deblur", "sr4"])
    ap.add_argument("--methods", nargs="+", default=None,
                    help="only the methods whose name contains one of these words (TV is always run)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    x = data.held_out(args.size)
    results = {"images": list(data.HELD_OUT), "size": args.size, "noise": NOISE, "tasks": {}}
    for task in args.tasks:
        p_tv, w = tv_oracle(task, x)
        rows = {f"TV + Chambolle-Pock (best λ = {w:.3g})": p_tv}
        for name, fn in methods(task).items():
            if args.methods is None or any(m in name for m in args.methods):
                rows[name] = per_image(task, x, fn)
        results["tasks"][task] = {k: [round(float(v), 2) for v in p] for k, p in rows.items()}
        print(f"\n{task} (held-out {args.size}², noise {NOISE})\n")
        print("| method | " + " | ".join(data.HELD_OUT) + " | mean | vs TV |")
        print("|---" * (len(data.HELD_OUT) + 3) + "|")
        for k, p in rows.items():
            print(f"| {k} | " + " | ".join(f"{v:.2f}" for v in p.tolist())
                  + f" | {p.mean():.2f} | {p.mean() - p_tv.mean():+.2f} |", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
