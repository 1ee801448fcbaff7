"""
A large image through a small prior
===================================

Tiled, shifting-window DDS on a 512² held-out image.

The held-out ``camera`` image at 512² (the shipped ``diffusion-gray`` prior was trained on 32²
patches), 70% of the pixels missing (random mask), restored by ``dds`` (20 steps) with the
prior applied

- whole (one 512² network pass per step),
- by 128² windows with a 16-px overlap whose grid shifts at every step (``tile=128``),
- hierarchically: a 256² pass first, then the same windows anchored to it.

Prints PSNR/SSIM, seconds and the peak RSS growth of each run (each in a fresh process, so
the numbers do not mix), and writes ``docs/figures/large_image.png``: the whole image and a zoom
on the corner where four windows of the last step meet.

    python -m demos.large_image [--quick] [--size 512] [--steps 20] [--tile 128] [--out docs/figures]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

import restorekit as rk
from restorekit.tiling import hierarchical, tiled

MODES = ("whole", "tiled", "hierarchical")


def problem(size: int):
    x = rk.data.load_image("camera", size=size)
    op = rk.operators.inpainting(
        mask="random", img_size=size, fraction=0.3, generator=torch.Generator().manual_seed(0)
    )
    return x, op, op(x)


def restore(mode: str, size: int, steps: int, tile: int) -> dict:
    """One run in this process; saves the result beside the figure and returns its numbers."""
    torch.set_num_threads(1)
    x, op, y = problem(size)
    prior = rk.priors.load("diffusion-gray")
    rss = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20
    if mode == "hierarchical":
        res = hierarchical(y, op, prior, "dds", factor=2, tile=tile, x_true=x, steps=steps)
    else:
        res = rk.solve(y, op, prior, "dds", steps=steps, x_true=x, tile=None if mode == "whole" else tile)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss
    return {
        "x": res.x,
        "psnr": round(res.metrics.psnr.item(), 2),
        "ssim": round(res.metrics.ssim.item(), 3),
        "seconds": round(res.seconds, 1),
        "peak_rss_growth_mb": round(peak),
    }


def last_corner(size: int, steps: int, tile: int) -> tuple[int, int]:
    """Where four windows of the last step's (shifted) grid overlap: the centre of the blend
    zone between the 2nd and 3rd windows along each axis."""
    grid = tiled(rk.priors.DenoiserPrior(lambda z, s: z), tile=tile, overlap=max(8, tile // 8))
    grid.calls = steps - 1
    rows, cols = grid._grid(size, size)
    return rows[2] + grid.overlap // 2, cols[2] + grid.overlap // 2


def figure(x, y, results: dict, path: Path, tile: int, size: int, steps: int) -> None:
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    r, c = last_corner(size, steps, tile)
    half = min(40, size // 8)
    r, c = min(max(r, half), size - half), min(max(c, half), size - half)
    window = (slice(r - half, r + half), slice(c - half, c + half))
    panels = [
        ("measured (30% pixels)", y),
        *((f"{m}: {r['psnr']} dB", r["x"]) for m, r in results.items()),
        ("ground truth", x),
    ]
    fig = Figure(figsize=(2.4 * len(panels), 5), dpi=110)
    for j, (label, img) in enumerate(panels):
        ax = fig.add_subplot(2, len(panels), j + 1)
        ax.imshow(img[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.add_patch(Rectangle((c - half, r - half), 2 * half, 2 * half, fill=False, color="red", lw=0.8))
        ax.set_title(label, fontsize=8), ax.set_xticks([]), ax.set_yticks([])
        zoom = fig.add_subplot(2, len(panels), len(panels) + j + 1)
        zoom.imshow(img[0, 0][window].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        zoom.set_xticks([]), zoom.set_yticks([])
        if j == 0:
            zoom.set_ylabel("zoom: window corner", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        description="A large image through a small prior: tiled, shifting-window DDS on a held-out image"
    )
    p.add_argument(
        "--quick", action="store_true", help="256² image, 5 steps, 64-px windows, every mode in this process"
    )
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--tile", type=int, default=128)
    p.add_argument("--out", default="docs/figures")
    p.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one run in a child process
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.steps, args.tile = 256, 5, 64
    out = Path(args.out)
    if args.mode is not None:
        r = restore(args.mode, args.size, args.steps, args.tile)
        torch.save(r.pop("x"), out / f".large_image_{args.mode}.pt")
        print(json.dumps(r))
        return r
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for mode in MODES:
        if args.quick:  # in this process: no separate peak-memory figure per mode
            results[mode] = restore(mode, args.size, args.steps, args.tile)
            continue
        cmd = [
            sys.executable,
            "-m",
            "demos.large_image",
            "--mode",
            mode,
            "--size",
            str(args.size),
            "--steps",
            str(args.steps),
            "--tile",
            str(args.tile),
            "--out",
            str(out),
        ]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        saved = out / f".large_image_{mode}.pt"
        results[mode]["x"] = torch.load(saved, weights_only=True)
        saved.unlink()
        print(mode, {k: v for k, v in results[mode].items() if k != "x"}, flush=True)
    x, _, y = problem(args.size)
    figure(x, y, results, out / "large_image.png", args.tile, args.size, args.steps)
    summary = {m: {k: v for k, v in r.items() if k != "x"} for m, r in results.items()}
    (out / "large_image.json").write_text(
        json.dumps({"size": args.size, "steps": args.steps, "tile": args.tile, **summary}, indent=1)
    )
    return summary


if __name__ == "__main__":
    main()
