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
Each image gets its own noise draw (seed = its index in HELD_OUT). The definitions live in
``restorekit.evaluation`` (``bar_*``), shared with ``tests/test_quality_bar.py``. Prints a
markdown table and, with ``--out``, writes the per-image PSNRs as JSON.

    python -m training.evaluate_restoration --out restoration.json
"""

from __future__ import annotations

import argparse
import json

import torch

from restorekit import data, evaluation
from restorekit.metrics import psnr


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--tasks", nargs="+", default=list(evaluation.BAR_TASKS))
    ap.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="only the methods whose name contains one of these words (TV is always run)",
    )
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    x = data.held_out(args.size)
    results = {"images": list(data.HELD_OUT), "size": args.size, "noise": evaluation.BAR_NOISE, "tasks": {}}
    for task in args.tasks:
        tv = evaluation.bar_tv_oracle(task, x)
        rows = {f"TV + Chambolle-Pock (best λ = {tv.value:.3g})": tv.psnr}
        for name, restore in evaluation.bar_methods(task).items():
            if args.methods is None or any(m in name for m in args.methods):
                rows[name] = psnr(evaluation.bar_restore(task, x, restore), x)
        results["tasks"][task] = {k: [round(float(v), 2) for v in p] for k, p in rows.items()}
        print(f"\n{task} (held-out {args.size}², noise {evaluation.BAR_NOISE})\n")
        print("| method | " + " | ".join(data.HELD_OUT) + " | mean | vs TV |")
        print("|---" * (len(data.HELD_OUT) + 3) + "|")
        for k, p in rows.items():
            print(
                f"| {k} | "
                + " | ".join(f"{v:.2f}" for v in p.tolist())
                + f" | {p.mean():.2f} | {p.mean() - tv.psnr.mean():+.2f} |",
                flush=True,
            )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
