"""
Sparse-view CT
==============

Sparse-view CT: 30 parallel-beam views over 180°, noise σ = 0.01 on the normalised
sinogram, on the held-out Shepp–Logan phantom.

Restores it with every prior × solver pair of ``restorekit.demo.TASKS["ct"]`` (the table
of label, prior, solver and hyperparameters lives there, shared with ``restorekit demo``),
writes one comparison figure (A†y, each result with PSNR/SSIM, ground truth) and prints a
markdown table (method, PSNR, SSIM, seconds, nfe).

Run it from a checkout::

    python -m demos.ct [--quick] [--device cuda] [--out DIR]
"""

from __future__ import annotations

from restorekit.demo import Report, script_main


def main(argv: list[str] | None = None) -> Report:
    return script_main("ct", argv)


if __name__ == "__main__":
    main()
