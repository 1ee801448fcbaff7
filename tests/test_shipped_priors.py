"""Every shipped prior (``restorekit.priors.available()``) loads, has a model card, and restores a
held-out image in a few solver steps (fast; the quality bars are in the ``slow`` tests)."""

import json

import pytest
import torch

import restorekit as rk
from restorekit.metrics import psnr
from restorekit.priors import Diffusion, available, load
from restorekit.priors.base import fixed_prox_weight
from restorekit.priors.registry import WEIGHTS

#: few-step settings per capability
FEW_STEPS = {"dds": {"steps": 10}, "pnp-admm": {"max_iter": 5}, "pnp-hqs": {"max_iter": 5}}


def solver_for(prior) -> str:
    if isinstance(prior, Diffusion):
        return "dds"
    return "pnp-admm" if fixed_prox_weight(prior) is not None else "pnp-hqs"


def channels(prior) -> int:
    unet = getattr(prior, "unet", None)
    return unet.config.in_channels if unet is not None else 1


@pytest.mark.parametrize("name", sorted(available()))
def test_shipped_prior_loads_and_restores(name):
    # an alias (prior.json "weights": another shipped directory) is documented by its source's card
    source = json.loads((WEIGHTS / name / "prior.json").read_text()).get("weights", name)
    assert (WEIGHTS / name / "MODEL_CARD.md").is_file()
    card = (WEIGHTS / source / "MODEL_CARD.md").read_text()
    assert "PSNR" in card and ("HELD_OUT" in card or "held_out" in card or "held-out" in card), name
    prior = load(name)
    color = channels(prior) == 3
    x = rk.data.load_image("astronaut" if color else "camera", size=32, color=color)
    op = rk.operators.blur(
        "gaussian", sigma=1.5, noise_sigma=0.01, generator=torch.Generator().manual_seed(0)
    )
    y = op(x)
    solver = solver_for(prior)
    r = rk.solve(y, op, prior, solver=solver, generator=torch.Generator().manual_seed(0), **FEW_STEPS[solver])
    gain = (psnr(r.x, x) - psnr(y.clamp(0, 1), x)).item()
    assert gain > 1.0, f"{name} with {solver}: {gain:.2f} dB over the blurred input"
