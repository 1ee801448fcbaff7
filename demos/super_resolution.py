"""
Super-resolution ×4
===================

Super-resolution ×4 (bicubic antialiasing) plus noise σ = 0.01 on the held-out colour
image 'astronaut'.

Restores it with every prior × solver pair of ``restorekit.demo.TASKS["super_resolution"]`` (the table
of label, prior, solver and hyperparameters lives there, shared with ``restorekit demo``),
writes one comparison figure (A†y, each result with PSNR/SSIM, ground truth) and prints a
markdown table (method, PSNR, SSIM, seconds, nfe).

Run it from a checkout::

    python -m demos.super_resolution [--quick] [--device cuda] [--out DIR]
"""

from __future__ import annotations

from restorekit.demo import Report, script_main


def main(argv: list[str] | None = None) -> Report:
    return script_main("super_resolution", argv)


if __name__ == "__main__":
    main()
