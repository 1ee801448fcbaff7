"""How the hyperparameters of the demo tables (``restorekit.demo.TASKS``) were chosen: each
search on TRAINING images, its grid and the mean PSNR it recorded, and the command to rerun it.

    python -m training.tune_demos                 # rerun every search, print measured vs recorded
    python -m training.tune_demos --only ct mri   # the searches of these tasks

A search varies one setting of one method of a task — ``"weight"`` (the TV λ) or a solver
parameter — and scores it by :func:`restorekit.evaluation.grid_search` (mean PSNR) on
:data:`restorekit.evaluation.TUNING_IMAGES` (training images of the task's kind) or on
synthetic phantoms; held-out images are refused. The chosen value is written into
``restorekit/demo.py`` by hand (it may differ from the best one; the note says why).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from types import MappingProxyType

import torch

from restorekit import data
from restorekit.demo import TASKS, Method, Task, degrade, run_method
from restorekit.evaluation import TUNING_IMAGES, GridSearch, grid_search, tuning_batch


def tune(
    task: Task,
    label: str,
    name: str,
    grid,
    *,
    images: tuple | None = None,
    size: int = 128,
    quick: bool = False,
) -> GridSearch:
    """Grid-search the setting ``name`` of the method ``label`` of ``task`` on training images.

    ``name`` is ``"weight"`` (the TV λ) or a solver parameter; ``images`` are names of training
    images (default :data:`TUNING_IMAGES` of the task's kind) or (1, C, H, W) tensors; ``quick``
    tunes the quick-mode settings. Each image is degraded as the demo degrades it (seed 0).
    """
    x = tuning_batch(TUNING_IMAGES[task.color] if images is None else images, size, task.color)
    method = next(m for m in task.methods if m.label == label)

    def trial(value) -> Method:
        if name == "weight":
            return replace(method, weight=value)
        return replace(method, params=MappingProxyType({**method.params, name: value}))

    def restore(value) -> torch.Tensor:
        out = []
        for xi in x.split(1):
            operator, y = degrade(task, xi)
            out.append(run_method(trial(value), y, operator, xi, quick=quick).x)
        return torch.cat(out)

    return grid_search(x, restore, grid)


@dataclass(frozen=True)
class Search:
    """One recorded search: what :func:`tune` was called with, the mean PSNR (dB) it measured per
    grid value, the value shipped in ``restorekit/demo.py`` and why."""

    task: str
    label: str
    name: str
    recorded: dict
    chosen: float
    size: int = 128
    quick: bool = False
    phantoms: int = 0  # > 0: tune on this many synthetic ellipse phantoms (seeds 0, 1, …)
    note: str = ""


TV = "TV + Chambolle-Pock"
SEARCHES = (
    Search(
        "deblurring",
        TV,
        "weight",
        {0.0005: 11.4, 0.001: 17.4, 0.002: 31.04, 0.004: 30.90, 0.007: 30.45, 0.01: 30.14},
        0.004,
        note="below 0.002 Chambolle–Pock does not converge in 500 iterations; 0.004 keeps a "
        "margin from that cliff for 0.14 dB",
    ),
    Search(
        "inpainting",
        TV,
        "weight",
        {0.002: 23.98, 0.005: 33.84, 0.01: 33.37, 0.02: 32.15, 0.04: 30.27},
        0.005,
        note="0.002 has not converged",
    ),
    Search("super_resolution", TV, "weight", {0.002: 32.88, 0.005: 32.18, 0.01: 30.98, 0.02: 29.17}, 0.002),
    Search("denoising", TV, "weight", {0.03: 24.38, 0.05: 27.05, 0.07: 28.90, 0.1: 29.55, 0.14: 28.72}, 0.1),
    Search(
        "ct",
        TV,
        "weight",
        {0.0005: 24.33, 0.001: 24.79, 0.002: 24.92, 0.005: 23.91},
        0.002,
        size=64,
        quick=True,
        phantoms=4,
    ),
    Search(
        "mri", TV, "weight", {0.0005: 30.27, 0.001: 30.85, 0.002: 31.75, 0.005: 32.54, 0.01: 32.20}, 0.005
    ),
    Search(
        "super_resolution",
        "our CNN + PnP-HQS",
        "sigma_max",
        {0.03: 32.72, 0.06: 32.59, 0.1: 32.50, 0.19: 32.54},
        0.03,
        quick=True,
        note="the first HQS level σ_1 for ×2 SR, instead of DPIR's 49/255",
    ),
)


def rerun(search: Search) -> GridSearch:
    """:func:`tune` with the arguments of a recorded search."""
    images = None
    if search.phantoms:
        images = tuple(
            data.ellipse_phantom(search.size, generator=torch.Generator().manual_seed(k))
            for k in range(search.phantoms)
        )
    return tune(
        TASKS[search.task],
        search.label,
        search.name,
        tuple(search.recorded),
        images=images,
        size=search.size,
        quick=search.quick,
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", default=None, help="tasks whose searches to rerun")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for search in SEARCHES:
        if args.only is not None and search.task not in args.only:
            continue
        found = rerun(search)
        print(
            f"{search.task} / {search.label} / {search.name}: best {found.value:g}, shipped {search.chosen:g}"
        )
        for value, score in found.scores.items():
            print(f"  {value:g}: {score:.2f} dB (recorded {search.recorded[value]:.2f})", flush=True)


if __name__ == "__main__":
    main()
