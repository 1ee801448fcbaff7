"""Iterative solvers; each is reachable by name through :func:`solve`."""

from __future__ import annotations

import inspect

from .base import SOLVERS, Diverged, History, Loop, Metrics, Result, Solver, data_fit, register
from .chambolle_pock import ChambollePock
from .chambolle_pock3d import ChambollePock3D
from .ddrm import DDRM
from .dds import DDS
from .dds3d import DDS3D
from .diffpir import DiffPIR
from .dps import DPS
from .implicit_prior import ImplicitPrior
from .mcg import MCG
from .pnp import PnPADMM, PnPHQS, PnPPGD
from .red import RED
from .red_diff import REDDiff
from .spiral_tap import L1, SpiralTAP


def solve(
    y,
    operator,
    prior,
    solver: str | Solver = "chambolle-pock",
    *,
    x_true=None,
    x_init=None,
    generator=None,
    callback=None,
    progress: bool | None = None,
    tile="auto",
    **params,
) -> Result:
    """Solve y = A(x) + noise for x with ``prior``, by the solver named ``solver``.

    ``params`` are the solver's hyperparameters (see each solver class); an unknown name
    raises a TypeError listing the accepted ones.

    ``tile``: ``"auto"`` (default) runs a network prior by overlapping, shifting windows of
    256 px when the image's larger side exceeds 512 px; an int sets the window side; None
    never tiles (see :mod:`restorekit.tiling`).

    Examples
    --------
    >>> import torch, restorekit as rk
    >>> x = rk.data.load_image("camera", size=32)
    >>> op = rk.operators.blur("gaussian", sigma=1.0, noise_sigma=0.01,
    ...                        generator=torch.Generator().manual_seed(0))
    >>> y = op(x)
    >>> result = rk.solve(y, op, rk.priors.TV(weight=0.01), solver="chambolle-pock", x_true=x)
    >>> bool(result.metrics.psnr > rk.metrics.psnr(y, x))   # better than the measurement
    True
    >>> result.x.shape, result.nfe                          # TV needs no network
    (torch.Size([1, 1, 32, 32]), 0)
    """
    from ..tiling import for_solve

    prior = for_solve(prior, operator, y, tile)
    if isinstance(solver, Solver):
        if params:
            raise TypeError(
                "pass hyperparameters to the solver object, not to solve(), when "
                "solver is already constructed"
            )
        method = solver
    else:
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(sorted(SOLVERS))}")
        cls = SOLVERS[solver]
        accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")]
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise TypeError(
                f"solver {solver!r} has no hyperparameter {', '.join(unknown)}; "
                f"it accepts {', '.join(accepted)}"
            )
        method = cls(**params)
    return method(
        y,
        operator,
        prior,
        x_init=x_init,
        x_true=x_true,
        generator=generator,
        callback=callback,
        progress=progress,
    )


__all__ = [
    "ChambollePock",
    "DDS",
    "DPS",
    "ImplicitPrior",
    "MCG",
    "REDDiff",
    "PnPADMM",
    "PnPHQS",
    "PnPPGD",
    "RED",
    "SOLVERS",
    "History",
    "Loop",
    "Metrics",
    "Result",
    "Solver",
    "data_fit",
    "register",
    "solve",
    "DDS3D",
    "ChambollePock3D",
]
__all__ += ["L1", "SpiralTAP"]
__all__ += ["DDRM", "DiffPIR", "Diverged"]
