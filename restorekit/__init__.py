"""restorekit: imaging inverse problems on torch tensors.

import restorekit as rk
x = rk.data.load_image("camera", size=256)
op = rk.operators.blur("gaussian", sigma=2.0, noise_sigma=0.01)
y = op(x)
result = rk.solve(y, op, rk.priors.TV(weight=0.01), solver="chambolle-pock", x_true=x)
"""

from . import batch, data, io, metrics, operators, priors, solvers, tiling, uncertainty
from .sampling import sample
from .solvers import SOLVERS, Result, solve

__all__ = [
    "data",
    "metrics",
    "operators",
    "priors",
    "solvers",
    "solve",
    "sample",
    "Result",
    "SOLVERS",
    "batch",
    "io",
    "tiling",
    "uncertainty",
]
__version__ = "0.1.0"
