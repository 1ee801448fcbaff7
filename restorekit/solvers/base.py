"""The solver contract shared by every method: one call signature, one Result, one registry.

A solver is a small object holding its hyperparameters. Calling it runs

    solver(y, operator, prior, *, x_init=None, x_true=None, generator=None,
           callback=None, progress=None) -> Result

Subclasses set ``name`` and ``needs`` (the prior capability they use) and implement
``_run(y, operator, prior, x_init, loop)``; ``loop`` (a :class:`Loop`) gives them the
iteration range (with a tqdm bar), the generator, the operator's noise level σ_y (read once
per solve by :func:`~restorekit.operators.noise.noise_level`), the nfe counter
(:meth:`Loop.evaluate`), the logging that feeds ``Result.history`` and ``callback``
(:meth:`Loop.log`) and the relative-change stopping test (:meth:`Loop.settled`).

Once per solve, and for every solver, ``Solver.__call__`` checks the inputs, resets the
prior's per-run state (:func:`~restorekit.priors.base.reset`: guidance momentum) and runs
``_run`` under ``torch.no_grad()``: iterates never carry an autograd graph from one iteration
to the next. Solvers that differentiate (DPS, MCG, RED-Diff) enable gradients locally.

Options are keyword-only. Two names count iterations because they mean different things:
``max_iter`` (classical solvers) is an upper bound, the solver stops earlier once its iterate
settles (``tol``); ``steps`` (diffusion solvers) is the exact number of noise levels walked,
each costing one network evaluation, with no early stop.

Callback keys (a dict, always the same set): ``i`` (iteration), ``x`` (current iterate in
[0, 1]), ``x0_hat`` (current clean estimate, equal to ``x`` for non-diffusion solvers),
``sigma`` (current noise level in image units, or None), ``data_fit`` (½‖A x − y‖² per
sample, a (B,) tensor).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from tqdm.auto import tqdm

from ..checks import positive  # noqa: F401  (solver files import it from here)
from ..metrics import psnr, ssim
from ..validate import check_problem

SOLVERS: dict[str, type[Solver]] = {}


def register(cls):
    """Class decorator: make a solver reachable by its ``name`` in :func:`restorekit.solve`."""
    SOLVERS[cls.name] = cls
    return cls


@dataclass
class History:
    """Per-iteration records, batch means: ½‖Ax − y‖² and PSNR (when x_true was given)."""

    data_fit: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)


@dataclass
class Metrics:
    """Quality of the final estimate, clamped to [0, 1] (as saved and shown), against x_true,
    per sample ((B,) tensors)."""

    psnr: torch.Tensor
    ssim: torch.Tensor


@dataclass
class Result:
    x: torch.Tensor
    history: History
    seconds: float
    nfe: int
    metrics: Metrics | None = None


def data_fit(operator, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """½‖A x − y‖² per sample, a (B,) tensor."""
    r = operator.A(x) - y
    return 0.5 * r.flatten(1).pow(2).sum(1)


class Diverged(FloatingPointError):
    """A solver's iterate became NaN/Inf: ``iteration`` is the first bad one, ``last_finite``
    the last finite iterate (None if the first already failed)."""

    def __init__(self, iteration: int, last_finite: torch.Tensor | None, solver: str = "?"):
        super().__init__(
            f"solver {solver!r} diverged at iteration {iteration} (NaN/Inf iterate); "
            "the last finite iterate is in .last_finite; try a smaller step size"
        )
        self.iteration, self.last_finite, self.solver = iteration, last_finite, solver


def relative_change(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """‖new − old‖ / ‖new‖ per sample, the stopping test of the iterative solvers."""
    return (new - old).flatten(1).norm(dim=1) / new.flatten(1).norm(dim=1).clamp_min(1e-12)


class Loop:
    """Run-time state of one solver call: iteration range, nfe, history, callback."""

    def __init__(self, y, operator, x_true, generator, callback, progress, desc, sigma_y=0.0):
        self.y, self.operator, self.x_true = y, operator, x_true
        self.generator = generator
        self.callback, self.progress, self.desc = callback, progress, desc
        self.sigma_y = float(sigma_y)
        self.nfe = 0
        self.history = History()
        self.last_finite = None

    def evaluate(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, counted as one network (prior) evaluation in ``nfe``."""
        self.nfe += 1
        return fn(*args, **kwargs)

    def settled(self, i: int, new: torch.Tensor, old: torch.Tensor, tol: float, sigma=None) -> bool:
        """Log iteration ``i`` with iterate ``new``, and say whether every sample has settled:
        ‖new − old‖/‖new‖ < ``tol`` (the stopping test of the classical solvers)."""
        change = relative_change(new, old)
        self.log(i, new, sigma=sigma)
        return change.max().item() < tol

    def range(self, n: int):
        """range(n) with a tqdm bar (ETA) when ``progress`` is True, or when it is None (the
        default) and stderr is a terminal; shown only once a run passes 2 s, and kept at the end."""
        return progress_bar(range(n), self.desc, self.progress)

    def log(self, i: int, x: torch.Tensor, x0_hat: torch.Tensor | None = None, sigma=None):
        """Record iteration ``i`` (x in [0, 1]) and call the callback; raise :class:`Diverged`
        at the first non-finite iterate (the data fit, computed anyway, is non-finite then)."""
        with torch.no_grad():
            fit = data_fit(self.operator, x, self.y)
            if not math.isfinite(fit.sum().item()) or (i % 10 == 0 and not torch.isfinite(x).all()):
                raise Diverged(i, self.last_finite)
            self.last_finite = x.detach().clone()
            self.history.data_fit.append(fit.mean().item())
            if self.x_true is not None:
                self.history.psnr.append(psnr(x, self.x_true).mean().item())
        if self.callback is not None:
            self.callback(
                {"i": i, "x": x, "x0_hat": x if x0_hat is None else x0_hat, "sigma": sigma, "data_fit": fit}
            )


def progress_bar(iterable, desc: str, progress: bool | None = None, **kwargs):
    """The one tqdm bar of the project: on when ``progress`` is True, or None and stderr is a
    terminal (quiet in tests and pipes); appears after 2 s, so short runs print nothing."""
    on = sys.stderr.isatty() if progress is None else bool(progress)
    return tqdm(iterable, desc=desc, disable=not on, delay=2.0, leave=True, dynamic_ncols=True, **kwargs)


class Solver:
    name: ClassVar[str]
    needs: ClassVar[type]

    def __call__(
        self,
        y: torch.Tensor,
        operator,
        prior,
        *,
        x_init: torch.Tensor | None = None,
        x_true: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        callback: Callable[[dict], None] | None = None,
        progress: bool | None = None,
    ) -> Result:
        from ..operators.noise import noise_level
        from ..priors.base import for_data, require, reset
        from .steps import operator_family, warn_weak_default

        require(prior, self.needs, self.name)
        self._check(y, operator, prior, x_init, x_true, generator)
        warn_weak_default(self.name, operator, prior)
        if generator is None:
            generator = torch.Generator(device=y.device).manual_seed(0)
        loop = Loop(y, operator, x_true, generator, callback, progress, self.name, noise_level(operator, y))
        prior = for_data(prior, loop.sigma_y, operator_family(operator))
        reset(prior)
        start = time.perf_counter()
        with torch.no_grad():
            try:
                x = self._run(y, operator, prior, x_init, loop)
            except Diverged as e:
                raise Diverged(e.iteration, e.last_finite, self.name) from None
        seconds = time.perf_counter() - start
        if not torch.isfinite(x).all():
            raise Diverged(len(loop.history.data_fit), loop.last_finite, self.name)
        metrics = None
        if x_true is not None:
            with torch.no_grad():
                metrics = self._metrics(x, x_true)
        return Result(x=x.detach(), history=loop.history, seconds=seconds, nfe=loop.nfe, metrics=metrics)

    def _check(self, y, operator, prior, x_init, x_true, generator) -> None:
        """The boundary checks of one call (images (B, C, H, W); volume solvers override it)."""
        check_problem(y, operator, x_init=x_init, x_true=x_true, generator=generator, prior=prior)

    def _metrics(self, x: torch.Tensor, x_true: torch.Tensor) -> Metrics:
        """Quality against x_true, of the image as saved and shown: clamped to [0, 1]."""
        return Metrics(psnr(x.clamp(0, 1), x_true), ssim(x.clamp(0, 1), x_true))

    def _run(self, y, operator, prior, x_init, loop: Loop) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"
