"""The diffusion priors shipped in restorekit/weights/ load, are documented, and denoise.

Quality is measured on HELD_OUT images only (never used in training).
"""

from __future__ import annotations

import functools
import json
import os
import re

import pytest
import torch

from restorekit import data, metrics
from restorekit.evaluation import SIGMAS, tv_denoise, tv_oracle_weight
from restorekit.priors import DiffusionPrior

WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "restorekit", "weights")
# name -> minimum one-step PSNR gain (dB) over the noisy input at σ = 0.1 on a 64×64 held-out
# crop; measured 8.3 dB for diffusion-gray-cond (camera, seed 0) and 5.0 dB for diffusion-rgb
# (astronaut, colour), threshold = that minus slack.
SHIPPED = {"diffusion-gray-cond": 6.5, "diffusion-rgb": 4.0}


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def shipped(request):
    path = os.path.join(WEIGHTS, request.param)
    prior = DiffusionPrior.from_pretrained(path, dtype=torch.float32)
    with open(os.path.join(path, "MODEL_CARD.md")) as f:
        card = f.read()
    return request.param, path, prior, card


def test_files_and_schedule(shipped):
    name, path, prior, card = shipped
    assert os.path.exists(os.path.join(path, "unet", "diffusion_pytorch_model.safetensors"))
    # DDPM linear schedule β ∈ [1e-4, 0.02], 1000 steps: ᾱ_T = Π(1 − β_t) in closed form
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    torch.testing.assert_close(prior.alphas_cumprod, torch.cumprod(1 - betas, 0), rtol=1e-4, atol=1e-6)
    # fully convolutional: no attention processors anywhere
    assert not any("Attention" in type(m).__name__ for m in prior.unet.modules())
    if name.endswith("-cond"):
        with open(os.path.join(path, "classes.json")) as f:
            classes = json.load(f)
        assert prior.num_classes == len(classes["classes"]) == 4
        assert prior.null_class == classes["null_class"] == 4


def test_model_card_states_params_and_psnr(shipped):
    name, path, prior, card = shipped
    n = sum(p.numel() for p in prior.unet.parameters())
    stated = re.search(r"Parameters:\s*\**\s*([\d,]+)", card)
    assert stated is not None, "model card must state 'Parameters: N'"
    assert int(stated.group(1).replace(",", "")) == n
    for sigma in SIGMAS:
        assert re.search(rf"\|\s*{sigma}\s*\|\s*[\d.]+\s*\|\s*[\d.]+\s*\|", card), (
            f"model card must have a PSNR table row for sigma={sigma}"
        )


def test_one_step_denoiser_beats_noisy_input(shipped):
    name, path, prior, card = shipped
    color = prior.unet.config.in_channels == 3
    x = data.load_image("astronaut" if color else "camera", size=64, color=color)
    g = torch.Generator().manual_seed(0)
    y = x + 0.1 * torch.randn(x.shape, generator=g)
    with torch.no_grad():
        gain = metrics.psnr(prior.denoise(y, 0.1).clamp(0, 1), x) - metrics.psnr(y, x)
    assert float(gain) > SHIPPED[name], f"{name}: gain {float(gain):.2f} dB"


@pytest.mark.slow
def test_quality_bar_vs_tv(shipped):
    """The quality bar: ≥ 1 dB over TV with its best weight at σ = 0.05, 0.1, 0.2 (held out)."""
    name, path, prior, card = shipped
    color = prior.unet.config.in_channels == 3
    x = data.held_out(128, color=color)
    g = torch.Generator().manual_seed(0)
    for sigma in SIGMAS:
        y = x + sigma * torch.randn(x.shape, generator=g)
        with torch.no_grad():
            p_dm = float(metrics.psnr(prior.denoise(y, sigma).clamp(0, 1), x).mean())
        p_tv = tv_oracle_weight(x, functools.partial(tv_denoise, y)).psnr.mean().item()
        assert p_dm >= p_tv + 1.0, f"{name} sigma={sigma}: diffusion {p_dm:.2f} dB vs TV {p_tv:.2f} dB"
