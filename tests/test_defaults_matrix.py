"""A representative subset of the defaults matrix (benchmarks/defaults.py): each solver at its
defaults with a shipped prior must beat both the truncated-CG start and the measurement (where it
is an image) by at least 0.5 dB on the mean over the HELD_OUT images (64², gray, σ_y = 0.01,
denoising 0.1). Slow: run with ``pytest -m slow tests/test_defaults_matrix.py``."""
from __future__ import annotations

import pytest
import torch

import restorekit as rk
from restorekit.operators import make, truncated_pinv
from restorekit.solvers import solve

MARGIN_DB = 0.5
SIZE = 64

#: (solver, prior, operator): one per solver family and operator kind the defaults were fixed for
CELLS = [
    ("ddrm", "diffusion-gray", "gaussian-blur"),
    ("ddrm", "diffusion-gray", "inpainting-random"),
    ("diffpir", "diffusion-gray", "gaussian-blur"),
    ("diffpir", "diffusion-gray", "sr-x4"),
    ("dds", "diffusion-gray", "inpainting-random"),
    ("pnp-hqs", "dncnn", "gaussian-blur"),
    ("pnp-hqs", "dncnn", "sr-x4"),
    ("red", "dncnn", "denoising"),
    ("red-diff", "diffusion-gray", "gaussian-blur"),
]


def psnr(estimate, x) -> float:
    return rk.metrics.psnr(estimate.clamp(0, 1), x).mean().item()


@pytest.mark.slow
@pytest.mark.parametrize("solver, prior_name, op_name", CELLS)
def test_defaults_beat_the_trivial_answers(solver, prior_name, op_name):
    torch.set_num_threads(1)
    x = rk.data.held_out(SIZE)
    sigma = {} if op_name == "denoising" else {"noise_sigma": 0.01}
    op = make(op_name, SIZE, 1, generator=torch.Generator().manual_seed(0), **sigma)
    with torch.no_grad():
        y = op(x)
        trivial = psnr(truncated_pinv(op, y), x)
        if y.shape == x.shape:
            trivial = max(trivial, psnr(y, x))
    result = solve(y, op, rk.priors.load(prior_name), solver, generator=torch.Generator().manual_seed(0))
    got = psnr(result.x, x)
    assert got >= trivial + MARGIN_DB, f"{solver} + {prior_name} on {op_name}: {got:.2f} dB vs trivial {trivial:.2f}"
