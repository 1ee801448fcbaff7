"""BM3D as a peer and a prior, through the optional ``bm3d`` package (extra ``peers``).

The tests that run BM3D skip, with the reason, when the package is absent; the error a user gets
without it is tested either way.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

import restorekit as rk
from restorekit.data import load_image
from restorekit.metrics import psnr
from restorekit.priors.bm3d import BM3DPrior, bm3d_deblur, bm3d_denoise

needs_bm3d = pytest.mark.skipif(
    importlib.util.find_spec("bm3d") is None,
    reason="the optional package bm3d is not installed (pip install 'restorekit[peers]'; non-commercial licence)",
)


def _noisy(x, sigma, seed=0):
    return x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` raise ImportError
    with pytest.raises(ImportError, match=r"restorekit\[peers\]"):
        BM3DPrior()
    with pytest.raises(ImportError, match="peers"):
        bm3d_denoise(torch.zeros(1, 1, 8, 8), 0.1)


@needs_bm3d
def test_bm3d_prior_denoises_grey():
    """Grey camera at σ = 0.1 (48²): BM3D gains ≥ 7 dB over the noisy input."""
    x = load_image("camera", size=48)
    y = _noisy(x, 0.1)
    out = BM3DPrior().denoise(y, 0.1)
    assert out.shape == y.shape and out.dtype == y.dtype
    assert (psnr(out, x) - psnr(y, x)).item() >= 7.0


@pytest.mark.slow
@needs_bm3d
def test_cbm3d_beats_bm3d_per_channel():
    """Colour astronaut at σ = 0.1 (64²): CBM3D beats grey BM3D run on each RGB channel (it shares
    the grouping and works in the opponent space)."""
    prior = BM3DPrior()
    xc = load_image("astronaut", size=64, color=True)
    yc = _noisy(xc, 0.1)
    cbm3d = psnr(prior.denoise(yc, 0.1).clamp(0, 1), xc).item()
    per_channel = psnr(
        bm3d_denoise(yc.reshape(3, 1, 64, 64), 0.1).reshape(1, 3, 64, 64).clamp(0, 1), xc
    ).item()
    assert cbm3d >= per_channel + 0.5, f"CBM3D {cbm3d:.2f} dB vs per-channel BM3D {per_channel:.2f} dB"


@needs_bm3d
def test_bm3d_deblurring_restores_without_leaving_trapz_behind():
    """BM3D-deblurring (needs np.trapz, gone in NumPy 2, only during the call) on a Gaussian blur
    (σ_b = 2, noise 0.01, 64² camera) beats the blurred input by ≥ 2 dB."""
    had_trapz = hasattr(np, "trapz")
    x = load_image("camera", size=64)
    op = rk.operators.blur(
        "gaussian", sigma=2.0, noise_sigma=0.01, generator=torch.Generator().manual_seed(0)
    )
    y = op(x)
    out = bm3d_deblur(y, op.filter, 0.01)
    assert (psnr(out.clamp(0, 1), x) - psnr(y.clamp(0, 1), x)).item() >= 2.0
    assert hasattr(np, "trapz") == had_trapz


@pytest.mark.slow
@needs_bm3d
def test_bm3d_prior_in_plug_and_play():
    """PnP-HQS with BM3D as its denoiser (the original plug-and-play pairing) deblurs."""
    x = load_image("camera", size=32)
    op = rk.operators.blur(
        "gaussian", sigma=1.5, noise_sigma=0.01, generator=torch.Generator().manual_seed(0)
    )
    y = op(x)
    r = rk.solve(y, op, BM3DPrior(), solver="pnp-hqs", max_iter=4)
    assert (psnr(r.x, x) - psnr(y.clamp(0, 1), x)).item() >= 1.0
