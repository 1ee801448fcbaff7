"""Per-task demos on held-out sample images: every shipped prior × solver pair, side by side.

A :class:`Task` names an operator (from :data:`restorekit.operators.BUILDERS`), a held-out
image (:data:`restorekit.data.HELD_OUT`) and a table of :class:`Method` rows — (label, prior
name, solver, solver parameters). :func:`run_task` degrades the image, restores it with every
method, writes ONE comparison figure (the measurement, A†y where it is an image worth seeing,
each result with PSNR/SSIM, ground truth) and returns
a :class:`Report` whose :meth:`Report.markdown` is a small table (method, PSNR, SSIM, seconds,
nfe). The scripts in ``demos/`` and ``restorekit demo`` (:func:`run_demo`) wrap it.

Hyperparameters in :data:`TASKS` were chosen on TRAINING images only (the searches, their grids
and scores are recorded in ``training/tune_demos.py``); the held-out images are used for
reporting, never for tuning.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import torch

from . import data
from .figures import comparison_figure, measurement_panels
from .io import atomic_write
from .metrics import psnr, ssim
from .operators import make
from .solvers import solve


def _frozen(mapping: Mapping | None = None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Method:
    """One row of a task's table: a prior, a solver and its hyperparameters.

    ``prior`` is ``"tv"`` (total variation with ``weight`` λ) or the name of a shipped prior
    (:func:`restorekit.priors.registry.load`). ``params`` go to the solver; ``quick`` overrides some of
    them in quick mode (fewer iterations).
    """

    label: str
    prior: str
    solver: str
    params: Mapping = field(default_factory=_frozen)
    quick: Mapping = field(default_factory=_frozen)
    weight: float | None = None

    def solver_params(self, quick: bool) -> dict:
        return {**self.params, **(self.quick if quick else {})}


@dataclass(frozen=True)
class Task:
    """A degradation of one held-out image and the methods that restore it."""

    name: str
    title: str
    operator: str
    image: str
    methods: tuple[Method, ...]
    color: bool = False
    size: int = 256
    quick_size: int = 64
    noise_sigma: float = 0.01
    operator_params: Mapping = field(default_factory=_frozen)


@dataclass(frozen=True)
class Row:
    """Quality and cost of one method on one task."""

    method: str
    psnr: float
    ssim: float
    seconds: float
    nfe: int


@dataclass(frozen=True)
class Report:
    """What :func:`run_task` measured: the baselines (A†y, and the measurement y itself when it
    is an image of the same size and differs from A†y), one :class:`Row` per method, the figure."""

    task: Task
    baselines: tuple[Row, ...]
    rows: tuple[Row, ...]
    figure: Path
    size: int

    def markdown(self) -> str:
        lines = [
            f"**{self.task.title}** — {self.task.image} {self.size}², operator "
            f"`{self.task.operator}`, noise σ = {self.task.noise_sigma:g}",
            "",
            "| method | PSNR (dB) | SSIM | seconds | nfe |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in (*self.baselines, *self.rows):
            lines.append(f"| {r.method} | {r.psnr:.2f} | {r.ssim:.3f} | {r.seconds:.2f} | {r.nfe} |")
        return "\n".join(lines)


def build_prior(method: Method, device, channels: int = 1):
    """The prior of ``method`` on ``device``; a gray prior on colour images (``channels`` 3) runs
    per channel (:class:`~restorekit.priors.PerChannel`), the demo's stated choice."""
    from .priors import TV, PerChannel, registry
    from .validate import prior_channels

    if method.prior == "tv":
        return TV(weight=method.weight)  # None: the noise-scaled weight
    prior = registry.load(method.prior, device=device)
    return PerChannel(prior) if prior_channels(prior) == 1 and channels != 1 else prior


def degrade(task: Task, x: torch.Tensor, seed: int = 0):
    """(operator, y) for ``task`` on the image batch ``x``; mask, kernel and noise drawn from ``seed``."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    kwargs = {"noise_sigma": task.noise_sigma, "device": x.device, **task.operator_params}
    operator = make(task.operator, img_size=tuple(x.shape[-2:]), channels=x.shape[1], generator=gen, **kwargs)
    return operator, operator(x)


def run_method(method: Method, y, operator, x_true, *, quick: bool, seed: int = 0, prior=None):
    """Restore y with ``method``; returns the solver's :class:`~restorekit.solvers.Result`."""
    prior = build_prior(method, y.device, x_true.shape[1]) if prior is None else prior
    gen = torch.Generator(device=y.device).manual_seed(seed)
    return solve(
        y, operator, prior, solver=method.solver, x_true=x_true, generator=gen, **method.solver_params(quick)
    )


def run_task(
    task: Task,
    out: str | Path,
    *,
    quick: bool = False,
    device="cpu",
    seed: int = 0,
    methods: tuple[Method, ...] | None = None,
) -> Report:
    """Degrade ``task.image``, restore it with each method, write ``out/<task.name>.png``."""
    size = task.quick_size if quick else task.size
    x = data.load_image(task.image, size=size, color=task.color, device=device)
    operator, y = degrade(task, x, seed)
    panels = measurement_panels(operator, y, x)  # the figure shows A†y only where meaningful
    pinv = operator.A_dagger(y).clamp(0, 1)  # the table always has it, as a number
    table = (
        [("measurement y", y.clamp(0, 1))]
        if y.shape == x.shape and not torch.allclose(y.clamp(0, 1), pinv)
        else []
    )
    baselines = tuple(
        Row(label, psnr(img, x).item(), ssim(img, x).item(), 0.0, 0)
        for label, img in (*table, ("A†y (pseudo-inverse)", pinv))
    )
    rows = []
    for method in task.methods if methods is None else methods:
        result = run_method(method, y, operator, x, quick=quick, seed=seed)
        rows.append(
            Row(
                method.label,
                result.metrics.psnr.item(),
                result.metrics.ssim.item(),
                result.seconds,
                result.nfe,
            )
        )
        panels.append((method.label, result.x))
    panels.append(("ground truth", x))
    figure = comparison_figure(
        panels,
        Path(out) / f"{task.name}.png",
        reference=x,
        title=f"{task.title}: {task.image} {size}², {task.operator}, noise σ = {task.noise_sigma:g}",
        ncols=len(panels) if len(panels) <= 6 else (len(panels) + 1) // 2,
    )
    return Report(task, baselines, tuple(rows), figure, size)


# TV weights λ, chosen on TRAINING images (never on held-out ones) by the searches recorded,
# with their grids and scores, in training/tune_demos.py (``python -m training.tune_demos``).
TV_WEIGHT_DEBLUR = 0.004
TV_WEIGHT_INPAINT = 0.005
TV_WEIGHT_SR = 0.002
TV_WEIGHT_DENOISE = 0.1
TV_WEIGHT_CT = 0.002  # on synthetic ellipse phantoms
TV_WEIGHT_MRI = 0.005


def _tv(weight: float) -> Method:
    """TV by Chambolle–Pock with its defaults (500 iterations or relative change 1e-5), in
    quick mode too: it starts from A†y, which for deblurring is mostly amplified noise, and
    fewer iterations leave much of it."""
    return Method("TV + Chambolle-Pock", "tv", "chambolle-pock", weight=weight)


#: DnCNN (scico, gray) in plug-and-play HQS with the solver's defaults (DPIR schedule,
#: 24 iterations); for denoising quick mode takes DPIR's own 8 (deblurring and inpainting
#: need the 24: they start from A†y, amplified noise or holes).
DNCNN_HQS = Method("DnCNN + PnP-HQS", "dncnn", "pnp-hqs")
DNCNN_HQS_8 = replace(DNCNN_HQS, quick=_frozen({"max_iter": 8}))
#: restorekit's own bias-free CNN (denoiser-gray; colour images per channel), same solver.
#: Not on deblurring: started from A†y (amplified noise) it ends below the blurred y.
CNN_HQS = Method("our CNN + PnP-HQS", "denoiser-gray", "pnp-hqs")
CNN_HQS_8 = replace(CNN_HQS, quick=_frozen({"max_iter": 8}))
#: for ×2 super-resolution the first level σ_1 = 0.03 (instead of DPIR's 49/255), chosen on
#: training images (training/tune_demos.py).
CNN_HQS_SR = replace(CNN_HQS_8, params=_frozen({"sigma_max": 0.03}))
#: the shipped grey diffusion prior (unconditional) with DDS at its published settings.
DDS = Method("diffusion + DDS", "diffusion-gray", "dds", quick=_frozen({"steps": 20}))
#: the learned proximal network is the exact prox at its training noise σ = 0.1: PnP-ADMM with ρ = 1.
LPN_ADMM = Method("LPN + PnP-ADMM", "lpn-gray", "pnp-admm", _frozen({}), _frozen({"max_iter": 20}))

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("deblurring", "Deblurring", "gaussian-blur", "camera", (_tv(TV_WEIGHT_DEBLUR), DNCNN_HQS, DDS)),
        Task(
            "inpainting",
            "Inpainting",
            "inpainting-random",
            "camera",
            (_tv(TV_WEIGHT_INPAINT), DNCNN_HQS, CNN_HQS, DDS),
        ),
        Task(
            "super_resolution",
            "Super-resolution",
            "sr-x2",
            "astronaut",
            (_tv(TV_WEIGHT_SR), CNN_HQS_SR),
            color=True,
        ),
        Task(
            "denoising",
            "Denoising",
            "denoising",
            "coins",
            (_tv(TV_WEIGHT_DENOISE), DNCNN_HQS_8, CNN_HQS_8, LPN_ADMM),
            noise_sigma=0.1,
        ),
        Task(
            "ct",
            "Sparse-view CT",
            "ct-sparse",
            "shepp_logan_phantom",
            (replace(_tv(TV_WEIGHT_CT), quick=_frozen({"max_iter": 100})),),
            size=128,
        ),
        Task("mri", "MRI ×4", "mri", "coins", (_tv(TV_WEIGHT_MRI), DNCNN_HQS, CNN_HQS)),
    )
}


def script_main(task_name: str, argv: list[str] | None = None) -> Report:
    """The command line of a ``demos/<task>.py`` script: ``--quick``, ``--device``, ``--out``."""
    task = TASKS[task_name]
    p = argparse.ArgumentParser(description=f"{task.title} demo on the held-out image {task.image}")
    p.add_argument("--quick", action="store_true", help=f"{task.quick_size}² image, few iterations")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("--out", default="demo-output", help="folder for the figure")
    p.add_argument("--seed", type=int, default=0, help="seed of the mask, kernel, noise and sampler")
    args = p.parse_args(argv)
    report = run_task(task, args.out, quick=args.quick, device=args.device, seed=args.seed)
    print(report.markdown())
    print(f"\nwrote {report.figure}")
    return report


#: Wall-clock seconds of the whole demo on 2 shared CPU cores: quick 135 s (35 / 26 / 28 / 13 /
#: 9 / 24 s per task, measured with this code), full 757 s (12:37, measured for issue 18, 3.4 GB
#: peak memory); ``restorekit demo`` states it before it starts.
EXPECTED_SECONDS = {"quick": 135, "full": 757}


def run_demo(out: Path, quick: bool, device: str) -> list[Report]:
    """``restorekit demo``: every task of :data:`TASKS`, one figure each, tables in ``out/README.md``.

    States the expected time first and prints one line per task as it starts and ends; every
    file is written whole (an interrupted demo leaves only the figures of finished tasks).
    """
    import time

    out = Path(out)
    total = EXPECTED_SECONDS["quick" if quick else "full"]
    print(
        f"restorekit demo: {len(TASKS)} tasks, about {_duration(total)} on 2 CPU cores "
        f"({'quick: 64² images, few steps' if quick else 'full size, up to 3.4 GB of memory; --quick takes about 2 min'}); "
        f"figures go to {out}/",
        flush=True,
    )
    reports = []
    for k, task in enumerate(TASKS.values(), 1):
        start = time.perf_counter()
        print(f"[{k}/{len(TASKS)}] {task.title} ({task.image}, {len(task.methods)} methods)…", flush=True)
        report = run_task(task, out, quick=quick, device=device)
        print(report.markdown(), end="\n", flush=True)
        print(
            f"[{k}/{len(TASKS)}] {task.title} done in {_duration(time.perf_counter() - start)}\n", flush=True
        )
        reports.append(report)
    text = "\n\n".join(f"{r.markdown()}\n\n![{r.task.name}]({r.figure.name})" for r in reports)
    with atomic_write(out / "README.md") as tmp:
        tmp.write_text(f"# restorekit demo\n\n{text}\n")
    print(f"wrote {len(reports)} figures and {out / 'README.md'}")
    return reports


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
