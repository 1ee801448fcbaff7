"""The solver contract shared by every method: one call signature, one Result, one registry.

A solver is a small object holding its hyperparameters. Calling it runs

    solver(y, operator, prior, *, x_init=None, x_true=None, generator=None,
           callback=None, progress=False) -> Result

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

import time
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import torch
from tqdm.auto import tqdm

from ..metrics import psnr, ssim
from ..checks import positive  # noqa: F401  (solver files import it from here)
from ..validate import check_problem

SOLVERS: dict[str, type["Solver"]] = {}


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
    """Quality of the final estimate against x_true, per sample ((B,) tensors)."""

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


class Loop:
    """Run-time state of one solver call: iteration range, nfe, history, callback."""

    def __init__(self, y, operator, x_true, generator, callback, progress, desc, sigma_y=0.0):
        self.y, self.operator, self.x_true = y, operator, x_true
        self.generator = generator
        self.callback, self.progress, self.desc = callback, progress, desc
        self.sigma_y = float(sigma_y)
        self.nfe = 0
        self.history = History()

    def evaluate(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, counted as one network (prior) evaluation in ``nfe``."""
        self.nfe += 1
        return fn(*args, **kwargs)

    def settled(self, i: int, new: torch.Tensor, old: torch.Tensor, tol: float, sigma=None) -> bool:
        """Log iteration ``i`` with iterate ``new``, and say whether every sample has settled:
        ‖new − old‖/‖new‖ < ``tol`` (the stopping test of the classical solvers)."""
        change = (new - old).flatten(1).norm(dim=1) / new.flatten(1).norm(dim=1).clamp_min(1e-12)
        self.log(i, new, sigma=sigma)
        return change.max().item() < tol

    def range(self, n: int):
        return tqdm(range(n), desc=self.desc, disable=not self.progress, leave=False)

    def log(self, i: int, x: torch.Tensor, x0_hat: torch.Tensor | None = None, sigma=None):
        """Record iteration ``i`` (x in [0, 1]) and call the callback."""
        with torch.no_grad():
            fit = data_fit(self.operator, x, self.y)
            self.history.data_fit.append(fit.mean().item())
            if self.x_true is not None:
                self.history.psnr.append(psnr(x, self.x_true).mean().item())
        if self.callback is not None:
            self.callback({"i": i, "x": x, "x0_hat": x if x0_hat is None else x0_hat,
                           "sigma": sigma, "data_fit": fit})


class Solver:
    name: ClassVar[str]
    needs: ClassVar[type]

    def __call__(self, y: torch.Tensor, operator, prior, *, x_init: torch.Tensor | None = None,
                 x_true: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 callback: Callable[[dict], None] | None = None, progress: bool = False) -> Result:
        from ..operators.noise import noise_level
        from ..priors.base import require, reset

        require(prior, self.needs, self.name)
        check_problem(y, operator, x_init=x_init, x_true=x_true, generator=generator)
        if generator is None:
            generator = torch.Generator(device=y.device).manual_seed(0)
        loop = Loop(y, operator, x_true, generator, callback, progress, self.name,
                    noise_level(operator, y))
        reset(prior)
        start = time.perf_counter()
        with torch.no_grad():
            x = self._run(y, operator, prior, x_init, loop)
        seconds = time.perf_counter() - start
        if not torch.isfinite(x).all():
            raise FloatingPointError(f"solver {self.name!r} produced non-finite values; "
                                     "try a smaller step size")
        metrics = None
        if x_true is not None:
            with torch.no_grad():
                metrics = Metrics(psnr(x, x_true), ssim(x, x_true))
        return Result(x=x.detach(), history=loop.history, seconds=seconds, nfe=loop.nfe,
                      metrics=metrics)

    def _run(self, y, operator, prior, x_init, loop: Loop) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"
