"""Iterative solvers; each is reachable by name through :func:`solve`."""
from __future__ import annotations

from .base import SOLVERS, History, Loop, Metrics, Result, Solver, data_fit, register
from .chambolle_pock import ChambollePock
from .ddrm import DDRM
from .dds import DDS
from .diffpir import DiffPIR
from .dps import DPS
from .mcg import MCG
from .pnp import PnPADMM, PnPHQS, PnPPGD
from .red import RED
from .red_diff import REDDiff


def solve(y, operator, prior, solver: str | Solver = "chambolle-pock", *, x_true=None, x_init=None,
          generator=None, callback=None, progress: bool = False, **params) -> Result:
    """Solve y = A(x) + noise for x with ``prior``, by the solver named ``solver``.

    ``params`` are the solver's hyperparameters (see each solver class); an unknown name
    raises a TypeError listing the accepted ones.
    """
    if isinstance(solver, Solver):
        if params:
            raise TypeError("pass hyperparameters to the solver object, not to solve(), when "
                            "solver is already constructed")
        method = solver
    else:
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(sorted(SOLVERS))}")
        cls = SOLVERS[solver]
        try:
            method = cls(**params)
        except TypeError as e:
            raise TypeError(f"solver {solver!r}: {e}") from None
    return method(y, operator, prior, x_init=x_init, x_true=x_true, generator=generator,
                  callback=callback, progress=progress)


__all__ = ["ChambollePock", "DDS", "DDRM", "DiffPIR", "DPS", "MCG", "REDDiff", "PnPADMM", "PnPHQS", "PnPPGD", "RED", "SOLVERS", "History", "Loop", "Metrics", "Result", "Solver", "data_fit", "register", "solve"]
