"""Soak: 200 consecutive small solves, every solver in turn, in one process. Peak resident
memory after a warm-up round may grow by at most ``BOUND_MB`` (allocator noise; a leak of one
16×16 image per iteration would be far below it, but a leaked graph, history or network copy
per solve — tens of kB to MBs each — would cross it over 200 solves), and the number of live
Python objects by at most ``BOUND_OBJECTS``."""

from __future__ import annotations

import gc
import inspect
import resource

import pytest
import torch

import restorekit as rk
from restorekit.priors import TV, Diffusion
from restorekit.priors.diffusion import DiffusionPrior, conv_unet

BOUND_MB = 20
BOUND_OBJECTS = 2000
SOLVES = 200


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _setup():
    torch.manual_seed(0)
    diffusion = DiffusionPrior(
        conv_unet(1, (8, 16), sample_size=16), torch.linspace(0.999, 0.01, 50, dtype=torch.float64)
    )
    denoiser = rk.priors.DenoiserPrior(lambda x, s: 0.5 * x + 0.5 * x.mean())
    x = rk.data.load_image("brick", size=16)
    op = rk.operators.blur(
        "gaussian", sigma=1.0, img_size=16, noise_sigma=0.01, generator=torch.Generator().manual_seed(0)
    )
    y = op(x)
    runs = []
    for name, cls in sorted(rk.SOLVERS.items()):
        prior = TV(weight=0.01) if cls.needs is TV else diffusion if cls.needs is Diffusion else denoiser
        steps = {"steps": 4} if "steps" in inspect.signature(cls).parameters else {"max_iter": 4}
        runs.append((name, prior, steps))
    return x, op, y, runs


def _round(x, op, y, runs, k):
    for name, prior, steps in runs[:k] if k else runs:
        r = rk.solve(y, op, prior, solver=name, x_true=x, **steps)
        assert torch.isfinite(r.x).all()


@pytest.mark.slow
def test_200_solves_do_not_grow_memory():
    x, op, y, runs = _setup()
    _round(x, op, y, runs, 0)  # warm-up: every code path allocated once
    gc.collect()
    peak, objects = _peak_mb(), len(gc.get_objects())
    done = 0
    while done < SOLVES:
        k = min(len(runs), SOLVES - done)
        _round(x, op, y, runs, k)
        done += k
    gc.collect()
    growth, new_objects = _peak_mb() - peak, len(gc.get_objects()) - objects
    print(f"{SOLVES} solves: peak RSS +{growth:.1f} MB, live objects {new_objects:+d}")
    assert growth <= BOUND_MB, f"peak memory grew by {growth:.1f} MB over {SOLVES} solves"
    assert new_objects <= BOUND_OBJECTS, f"{new_objects} more live Python objects"
