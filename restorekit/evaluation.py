"""Measurements shared by the training scripts, the demos and the tests.

- :func:`grid_search` — the one search over a grid of hyperparameter values (best mean PSNR);
  :func:`tv_oracle_weight` — the same for a TV weight, with a default log grid.
- :func:`tv_denoise` — skimage's Chambolle TV denoiser on a batch (the TV reference of the
  denoising tables).
- :func:`heldout_table` / :func:`markdown_table` — denoising PSNR on :data:`~restorekit.data.HELD_OUT`
  for noisy input, oracle TV and any networks ``net(x, sigma)``.
- :func:`add_noise`, :func:`tv_prox_oracle` — the noisy batch and TV (prox) at its best weight
  of the peers' denoising tables (``benchmarks/peers.py``).
- ``bar_*`` — the restoration quality bar (held-out deblurring, 4× super-resolution and, for
  the peers' table, 50 % inpainting): operator, per-image restoration, the methods measured and
  the oracle TV they must beat; :func:`tv_cp`, :func:`dds` and :func:`composite_prior` are the
  restorations ``benchmarks/peers.py`` and the quality-bar tests share.
- :func:`tuning_batch` — the TRAINING images a setting is tuned on (refuses HELD_OUT ones).

Data discipline: on HELD_OUT images a grid search is an *oracle* — it picks the value with the
very images it is scored on, so it is an upper bound of what that method reaches there and may
only be reported as such (the TV rows of the tables). Settings a method ships with are chosen
by the same search on TRAINING images (``training/tune_demos.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from . import data
from .metrics import psnr

#: TV weights of the default oracle grid: 25 log-spaced values from 0.01 to 1 (skimage's
#: denoising weight; a Chambolle–Pock λ wants a grid of its own, e.g. :data:`BAR_TV_WEIGHTS`)
TV_WEIGHTS = tuple(float(w) for w in np.geomspace(0.01, 1.0, 25))


@dataclass(frozen=True)
class GridSearch:
    """What :func:`grid_search` found: the best ``value``, its per-image ``psnr`` (B,) and
    ``estimate``, and the mean PSNR of every grid value (``scores``)."""

    value: float
    psnr: torch.Tensor
    estimate: torch.Tensor
    scores: dict[float, float]


def grid_search(
    x: torch.Tensor, restore: Callable[[float], torch.Tensor], grid: Iterable[float], *, clip: bool = True
) -> GridSearch:
    """The grid value v whose ``restore(v)`` (clipped to [0, 1] unless ``clip=False``) has the
    best mean PSNR against the clean batch ``x`` (the first of equal ones).

    On HELD_OUT images this is an oracle choice: report the result only as an upper bound of the
    method (e.g. "TV at its best weight"); choose shipped settings on TRAINING images.
    """
    grid = tuple(grid)
    if not grid:
        raise ValueError("grid must hold at least one value, got an empty grid")
    best, scores = None, {}
    for value in grid:
        estimate = restore(value).clamp(0, 1) if clip else restore(value)
        per_image = psnr(estimate, x)
        scores[value] = per_image.mean().item()
        if best is None or scores[value] > scores[best[0]]:
            best = (value, per_image, estimate)
    assert best is not None  # the grid is not empty
    return GridSearch(best[0], best[1], best[2], scores)


def tv_oracle_weight(
    x: torch.Tensor,
    tv_restore: Callable[[float], torch.Tensor],
    weights: Iterable[float] = TV_WEIGHTS,
    *,
    clip: bool = True,
) -> GridSearch:
    """TV at its best weight: :func:`grid_search` of ``tv_restore(weight)`` over ``weights``.

    ``tv_restore(w)`` restores the batch whose clean images are ``x`` with TV weight ``w`` (e.g.
    ``lambda w: tv_denoise(y, w)`` or a Chambolle–Pock solve with ``TV(w)``). The weight is
    chosen on ``x`` itself: on HELD_OUT images this is an oracle upper bound of TV, for reporting
    only — never a setting to ship.
    """
    return grid_search(x, tv_restore, weights, clip=clip)


def tv_denoise(y: torch.Tensor, weight: float) -> torch.Tensor:
    """skimage's ``denoise_tv_chambolle`` (channels separately) on each image of the batch ``y``,
    in float64; returned in ``y``'s dtype."""
    from skimage.restoration import denoise_tv_chambolle

    out = [
        torch.from_numpy(denoise_tv_chambolle(yi.double().numpy(), weight=float(weight), channel_axis=0))
        for yi in y.cpu()
    ]
    return torch.stack(out).to(y.dtype)


# ---- denoising on the held-out images ------------------------------------------------------
#: noise levels σ of the denoising tables (and of the model cards that quote them)
SIGMAS = (0.05, 0.1, 0.2)
#: TV weights of the denoising table (skimage convention)
DENOISE_TV_WEIGHTS = (0.01, 0.02, 0.04, 0.06, 0.08, 0.12, 0.16, 0.24, 0.32)


def add_noise(x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """y = x + σ·n, n ~ N(0, I) drawn on the CPU from ``seed``."""
    return x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


def noisy_heldout(sigma: float, size: int = 128, seed: int = 0, color: bool = False):
    """Clean held-out batch x (N, C, size, size) and y = x + σ·n with n drawn from ``seed``."""
    x = data.held_out(size, color=color)
    return x, add_noise(x, sigma, seed)


def tv_prox_oracle(y: torch.Tensor, x: torch.Tensor, *, coupled: bool) -> GridSearch:
    """TV denoising by the prox of weight·TV (:class:`~restorekit.priors.TV`, channels coupled
    or not) at its best weight of :data:`DENOISE_TV_WEIGHTS` on the clean ``x`` (an oracle)."""
    from .priors import TV

    return tv_oracle_weight(x, lambda w: TV(w, channel_coupled=coupled).prox(y, 1.0), DENOISE_TV_WEIGHTS)


@torch.no_grad()
def heldout_table(nets: dict, sigmas=SIGMAS, size: int = 128, seed: int = 0) -> dict:
    """{σ: {"noisy": dB, "TV (best weight)": dB, name: dB, …, "_tv_weight": w}}: mean PSNR over
    the grey held-out batch of the noisy input, oracle TV (:func:`tv_oracle_weight` of
    :func:`tv_denoise` over :data:`DENOISE_TV_WEIGHTS`) and each ``net(y, sigma)``, none of
    them clipped to [0, 1] (as the model cards quote them)."""
    table = {}
    for s in sigmas:
        x, y = noisy_heldout(s, size, seed)
        tv = tv_oracle_weight(x, functools.partial(tv_denoise, y), DENOISE_TV_WEIGHTS, clip=False)
        row = {
            "noisy": psnr(y, x).mean().item(),
            "TV (best weight)": tv.psnr.mean().item(),
            "_tv_weight": tv.value,
        }
        for name, net in nets.items():
            row[name] = psnr(net(y, torch.full((y.shape[0],), s)), x).mean().item()
        table[s] = row
    return table


def markdown_table(table: dict) -> str:
    """:func:`heldout_table` as a markdown table (one row per σ, the TV weight last)."""
    cols = [c for c in next(iter(table.values())) if not c.startswith("_")]
    lines = ["| σ | " + " | ".join(cols) + " | TV weight |", "|---" * (len(cols) + 2) + "|"]
    for s, row in table.items():
        lines.append(
            f"| {s:g} | " + " | ".join(f"{row[c]:.2f}" for c in cols) + f" | {row['_tv_weight']:g} |"
        )
    return "\n".join(lines)


# ---- the restoration quality bar -----------------------------------------------------------
#: tasks of the bar: Gaussian blur σ_b = 2 px (circular) and 4× super-resolution (bicubic)
BAR_TASKS = ("deblur", "sr4")
#: the bar's tasks and 50 % random inpainting (the peers' restoration table)
RESTORE_TASKS = (*BAR_TASKS, "inpaint")
BAR_NOISE = 0.01
#: the TV weights of the bar's oracle (Chambolle–Pock, 300 iterations)
BAR_TV_WEIGHTS = tuple(float(w) for w in np.geomspace(1e-4, 0.1, 13))
#: the coarser TV grid of the peers' restoration table (``benchmarks/peers.py``) and its test
PEERS_TV_WEIGHTS = tuple(float(w) for w in np.geomspace(3e-4, 3e-2, 7))
#: image-unit level below which the composite prior asks dncnn (denoising crossover on TRAINING
#: images moon/brick/grass/clock/cell/page at 64²: dncnn − diffusion-gray = +0.39 dB at σ = 0.15,
#: −0.20 dB at σ = 0.2)
SWITCH_SIGMA = 0.15
#: DDS settings for the composite prior, chosen on TRAINING images (moon, clock, chelsea at 64²,
#: deblurring; mean PSNR): (η, γ) = (0.85, 10) 31.36 dB (the defaults), (0.3, 10) 26.69,
#: (1, 10) 31.90, (0.85, 30) 31.10, (1, 30) 31.82; TV at its best weight 33.54
DDS_COMPOSITE = {"eta": 1.0}


def bar_operator(task: str, size: int, seed: int):
    """The operator of a bar task on size² grey images, its noise drawn from ``seed``."""
    from . import operators

    g = torch.Generator().manual_seed(seed)
    if task == "deblur":
        return operators.blur("gaussian", sigma=2.0, noise_sigma=BAR_NOISE, generator=g)
    if task == "sr4":
        return operators.super_resolution(4, img_size=size, noise_sigma=BAR_NOISE, generator=g)
    if task == "inpaint":
        return operators.inpainting("random", img_size=size, fraction=0.5, noise_sigma=BAR_NOISE, generator=g)
    raise ValueError(f"task must be one of {RESTORE_TASKS}, got {task!r}")


def bar_restore(task: str, x: torch.Tensor, restore: Callable) -> torch.Tensor:
    """``restore(y, operator)`` for each image of ``x``, each degraded with its own operator
    noise (seed = its index in the batch); the results, clipped to [0, 1], as one batch."""
    out = []
    for i, xi in enumerate(x.split(1)):
        op = bar_operator(task, xi.shape[-1], i)
        out.append(restore(op(xi), op))
    return torch.cat(out).clamp(0, 1)


@functools.cache
def shipped_prior(name: str):
    """The shipped prior ``name`` (:func:`restorekit.priors.load`), loaded once per process."""
    from .priors import load

    return load(name)


def composite_prior():
    """``composite(high=diffusion-gray, low=dncnn, switch_sigma=SWITCH_SIGMA)``."""
    from .priors import composite

    return composite(
        high=shipped_prior("diffusion-gray"), low=shipped_prior("dncnn"), switch_sigma=SWITCH_SIGMA
    )


def tv_cp(weight: float | None) -> Callable:
    """``restore(y, operator)``: TV(weight) by Chambolle–Pock, 300 iterations (None: TV's
    noise-scaled default weight)."""
    from .priors import TV
    from .solvers import solve

    return lambda y, op: solve(y, op, TV(weight), "chambolle-pock", max_iter=300).x


def dds(prior_fn: Callable, **params) -> Callable:
    """``restore(y, operator)``: DDS (seed 0, ``params`` over its defaults) with ``prior_fn()``."""
    from .solvers import solve

    return lambda y, op: (
        solve(y, op, prior_fn(), "dds", generator=torch.Generator().manual_seed(0), **params).x
    )


def bar_methods(task: str) -> dict[str, Callable]:
    """The learned methods of the bar, name → ``restore(y, operator)``: PnP-HQS (DPIR schedule;
    24 iterations for deblurring, 40 for SR as published) with ``denoiser-gray`` and ``dncnn``,
    and DDS (defaults, seed 0) with ``diffusion-gray``."""
    from .solvers import solve

    hqs_iter = 24 if task == "deblur" else 40

    def hqs(name):
        return lambda y, op: solve(y, op, shipped_prior(name), "pnp-hqs", max_iter=hqs_iter).x

    return {
        "PnP-HQS denoiser-gray": hqs("denoiser-gray"),
        "PnP-HQS dncnn": hqs("dncnn"),
        "DDS diffusion-gray": dds(functools.partial(shipped_prior, "diffusion-gray")),
    }


def bar_tv_oracle(task: str, x: torch.Tensor, weights: Iterable[float] = BAR_TV_WEIGHTS) -> GridSearch:
    """TV by Chambolle–Pock (:func:`tv_cp`) at its best weight of ``weights`` on ``x`` itself
    (:func:`tv_oracle_weight`: an oracle bound, as the bar intends)."""
    return tv_oracle_weight(x, lambda w: bar_restore(task, x, tv_cp(w)), weights)


# ---- tuning on training images -------------------------------------------------------------
#: training images that stand in for the held-out ones when tuning (gray, colour)
TUNING_IMAGES = {False: ("brick", "grass", "clock", "moon"), True: ("coffee", "chelsea", "rocket")}


def tuning_batch(images, size: int, color: bool) -> torch.Tensor:
    """The images to tune on as one (N, C, size, size) batch: names of TRAINING images (loaded
    at ``size``) or (1, C, H, W) tensors such as synthetic phantoms. Refuses HELD_OUT names."""
    bad = sorted(n for n in images if isinstance(n, str) and n in data.HELD_OUT)
    if bad:
        raise ValueError(
            f"images {bad} are held out and may not be used for tuning; "
            f"use training images such as {TUNING_IMAGES[color]}"
        )
    return torch.cat(
        [data.load_image(n, size=size, color=color) if isinstance(n, str) else n for n in images]
    )
