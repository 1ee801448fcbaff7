"""Figures: side-by-side comparisons (measurement, each result with its PSNR/SSIM, ground truth)
and per-pixel uncertainty (posterior mean, interval width, pixels outside)."""

from __future__ import annotations

from pathlib import Path

import torch

from .io import atomic_write


def _to_numpy_image(x: torch.Tensor):
    x = x.detach().float().cpu().clamp(0, 1)
    if x.ndim == 4:
        x = x[0]
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def _save(fig, path: str | Path, title: str | None) -> Path:
    """Title, lay out and write ``fig`` whole (temporary file, then rename)."""
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110)
    return path


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
    return _save(fig, path, title)


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


def uncertainty_figure(
    mean: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    path: str | Path,
    *,
    truth: torch.Tensor | None = None,
    title: str | None = None,
) -> Path:
    """Save one row per image: the posterior mean, the interval width u − l as a heat map, and
    (with ``truth``) the ground truth with the pixels outside [l, u] marked in red, titled with
    the fraction outside. ``mean``, ``lower``, ``upper`` (and ``truth``) are (B, C, H, W);
    colour widths and misses are averaged / or-ed over the channels. Written whole."""
    from matplotlib.figure import Figure

    from .metrics import psnr

    width = (upper - lower).detach().float().cpu().mean(1)
    outside = None if truth is None else ((truth < lower) | (truth > upper)).any(1).cpu()
    ncols = 2 if truth is None else 3
    fig = Figure(figsize=(2.9 * ncols, 2.8 * mean.shape[0]))
    axes = fig.subplots(mean.shape[0], ncols, squeeze=False)
    vmax = float(width.max()) or 1.0
    for i, row in enumerate(axes):
        for ax in row:
            ax.axis("off")
        arr = _to_numpy_image(mean[i])
        row[0].imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        label = "posterior mean"
        if truth is not None:
            label += f"\n{psnr(mean[i : i + 1].clamp(0, 1), truth[i : i + 1]).item():.2f} dB"
        row[0].set_title(label, fontsize=9)
        shown = row[1].imshow(width[i].numpy(), cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        row[1].set_title(f"interval width u − l\nmean {width[i].mean():.3f}", fontsize=9)
        fig.colorbar(shown, ax=row[1], fraction=0.046, pad=0.04)
        if truth is not None and outside is not None:
            gray = torch.as_tensor(_to_numpy_image(truth[i]))
            rgb = (gray[..., None].expand(*gray.shape, 3) if gray.ndim == 2 else gray).clone()
            rgb[outside[i]] = torch.tensor([1.0, 0.0, 0.0])
            row[2].imshow(rgb.numpy(), interpolation="nearest")
            row[2].set_title(f"truth, outside in red\n{outside[i].float().mean():.1%} of pixels", fontsize=9)
    return _save(fig, path, title)
