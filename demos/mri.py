"""
Accelerated MRI
===============

MRI: single-coil Cartesian k-space, ×4 acceleration (8% of the centre kept), noise
σ = 0.01, on the held-out image 'coins'.

Restores it with every prior × solver pair of ``restorekit.demo.TASKS["mri"]`` (the table
of label, prior, solver and hyperparameters lives there, shared with ``restorekit demo``),
writes one comparison figure (A†y, each result with PSNR/SSIM, ground truth) and prints a
markdown table (method, PSNR, SSIM, seconds, nfe).

Run it from a checkout::

    python -m demos.mri [--quick] [--device cuda] [--out DIR]
"""

from __future__ import annotations

from restorekit.demo import Report, script_main


def main(argv: list[str] | None = None) -> Report:
    return script_main("mri", argv)


if __name__ == "__main__":
    main()
