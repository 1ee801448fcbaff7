"""PnP-HQS's first denoiser level σ_1 for inpainting, on the TRAINING images (where defaults are
chosen), from the harmonic-fill start: random (50 %) and box masks, σ_y = 0.01, three priors.

    python benchmarks/first_level.py [--size 64]

prints one PSNR (dB, mean over the nine gray training images) per mask × prior × σ_1; the numbers
quoted in :class:`restorekit.solvers.PnPHQS`'s docstring come from this script.
"""

from __future__ import annotations

import argparse

import defaults
import torch

from restorekit.solvers import solve

LEVELS = (49 / 255, 0.3, 0.5, 0.7)
PRIORS = ("dncnn", "denoiser-gray", "diffusion-gray")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for op_name in ("inpainting-random", "inpainting-box"):
        x, op, y = defaults.problem(op_name, args.size, False, training=True)
        for prior_name in PRIORS:
            prior = defaults.build_prior(prior_name)
            for level in LEVELS:
                r = solve(
                    y, op, prior, "pnp-hqs", sigma_max=level, generator=torch.Generator().manual_seed(0)
                )
                psnr = defaults.metrics(r.x, x)["psnr"]
                print(f"{op_name:18s} {prior_name:15s} σ_1 = {level:.3f}: {psnr:.2f} dB", flush=True)


if __name__ == "__main__":
    main()
