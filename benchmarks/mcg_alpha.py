"""MCG's gradient step α on CT, on the TRAINING images (where defaults are chosen): sparse-view
and limited-angle CT, σ_y = 0.01, shipped diffusion-gray, 1000 steps.

    python benchmarks/mcg_alpha.py [--size 32] [--device cpu] [--alphas 1,0.3,0.1,0]

prints one PSNR (dB, mean over the nine gray training images) per operator × α, next to the
truncated-CG start; the numbers quoted in :class:`restorekit.solvers.MCG`'s docstring come from
this script (32², one CPU thread: about 12 minutes per solve).
"""

from __future__ import annotations

import argparse

import defaults
import torch

from restorekit.operators import truncated_pinv
from restorekit.solvers import solve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--alphas", default="1,0.3,0.1,0", help="comma-separated gradient steps")
    args = ap.parse_args()
    torch.set_num_threads(1)
    prior = defaults.build_prior("diffusion-gray", args.device)
    for op_name in ("ct-sparse", "ct-limited"):
        x, op, y = (t.to(args.device) for t in defaults.problem(op_name, args.size, False, training=True))
        start = defaults.metrics(truncated_pinv(op, y), x)["psnr"]
        for alpha in (float(a) for a in args.alphas.split(",")):
            generator = torch.Generator(args.device).manual_seed(0)
            r = solve(y, op, prior, "mcg", alpha=alpha, generator=generator)
            psnr = defaults.metrics(r.x, x)["psnr"]
            print(f"{op_name:10s} α = {alpha:g}: {psnr:.2f} dB (truncated-CG start {start:.2f})", flush=True)


if __name__ == "__main__":
    main()
