"""Side-by-side comparison figures: measurement, each result with its PSNR/SSIM, ground truth."""

from __future__ import annotations

from pathlib import Path

import torch

from .io import atomic_write


def _to_numpy_image(x: torch.Tensor):
    x = x.detach().float().cpu().clamp(0, 1)
    if x.ndim == 4:
        x = x[0]
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def comparison_figure(
    panels: list[tuple[str, torch.Tensor]],
    path: str | Path,
    *,
    reference: torch.Tensor | None = None,
    title: str | None = None,
    ncols: int | None = None,
) -> Path:
    """Save a row (or grid) of images, each titled; with ``reference`` the titles get PSNR/SSIM.

    ``panels`` is a list of (label, image) with images (1, C, H, W) or (C, H, W). Every image
    is clamped to [0, 1] before it is shown and measured, so the titles give the PSNR/SSIM of
    what is drawn (and of :class:`restorekit.Result` ``metrics``, measured the same way).
    Panels whose shape differs from the reference (e.g. a low-resolution measurement) are
    shown without metrics. The file is written whole (temporary file, then rename).
    """
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend alone

    from .metrics import psnr, ssim

    n = len(panels)
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    fig = Figure(figsize=(2.6 * ncols, 2.9 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, img) in zip(axes.flat, panels):
        img4 = (img if img.ndim == 4 else img[None]).detach().clamp(0, 1)
        text = label
        if reference is not None and img4.shape == reference.shape and img is not reference:
            p = psnr(img4, reference).item()
            s = ssim(img4, reference).item()
            text = f"{label}\n{p:.2f} dB / SSIM {s:.3f}"
        arr = _to_numpy_image(img4)
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(text, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110)
    return path


def measurement_panels(operator, y, x) -> list:
    """Figure panels of the input: the measurement y when it is an image (same size as x, or a
    low-resolution / sinogram image, scaled to [0, 1] for display when outside it), and A†y only
    where y is not already an image of x's size (super-resolution, CT, MRI): for blur, masks
    and noise A†y is y itself or amplified noise."""
    panels = []
    if y.ndim == 4 and y.shape[1] == x.shape[1]:
        shown = y if y.shape == x.shape else (y - y.min()) / (y.max() - y.min()).clamp_min(1e-12)
        panels.append(("measurement y", shown.clamp(0, 1)))
    if y.shape != x.shape:
        panels.append(("A†y (pseudo-inverse)", operator.A_dagger(y).clamp(0, 1)))
    return panels
