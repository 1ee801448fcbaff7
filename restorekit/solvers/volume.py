"""What the volume solvers share: the (B, C, D, H, W) call contract, metrics and ‖A‖.

A :class:`VolumeSolver` has the one solver signature of :mod:`.base` but checks volumes at the
boundary (y, x_init and x_true five-dimensional) and reports volume metrics: PSNR over the
whole volume, SSIM averaged over the axial slices, and the z-consistency error
:func:`z_error`. The prior capabilities and the :class:`~.base.Result` are the 2D ones.
"""

from __future__ import annotations

import torch

from ..metrics import psnr, ssim
from ..operators.linalg import operator_norm, power_iteration
from ..operators.volume import SliceWise, check_volume, to_slices
from ..priors.tv3d import dz
from ..validate import check_problem
from .base import Metrics, Solver


def z_error(x: torch.Tensor, x_true: torch.Tensor) -> torch.Tensor:
    """Inter-slice consistency error per volume, (B,): mean |∂_z x − ∂_z x_true| over the
    D − 1 slice pairs (x_{d+1} − x_d against the truth's)."""
    return (dz(x) - dz(x_true))[:, :, :-1].abs().flatten(1).mean(1)


def volume_metrics(x: torch.Tensor, x_true: torch.Tensor) -> Metrics:
    """PSNR over each whole volume and SSIM averaged over its axial slices, (B,) each."""
    b = x.shape[0]
    return Metrics(psnr(x, x_true), ssim(to_slices(x), to_slices(x_true)).reshape(b, -1).mean(1))


def volume_norm(operator, x: torch.Tensor) -> float:
    """‖A‖₂ on volumes shaped like x: the 2D operator's (cached) norm for a :class:`SliceWise`
    operator (block diagonal), else a seeded power iteration on one volume."""
    if isinstance(operator, SliceWise):
        return operator_norm(
            operator.slice_operator, (x.shape[1], *x.shape[3:]), dtype=x.dtype, device=x.device
        )
    return power_iteration(operator, x.shape[1:], max_iter=100, tol=1e-6, dtype=x.dtype, device=x.device)


class VolumeSolver(Solver):
    """A solver of y = A(x) + n for volumes x (B, C, D, H, W); subclasses implement ``_run``."""

    volumes = True

    def _check(self, y, operator, prior, x_init, x_true, generator) -> None:
        """y, x_init and x_true are volumes, one per batch member, on y's device."""
        check_problem(y, operator, generator=generator)
        check_volume(y, "y")
        for name, v in (("x_init", x_init), ("x_true", x_true)):
            if v is not None:
                check_volume(v, name)
                if v.shape[0] != y.shape[0] or v.device != y.device:
                    raise ValueError(
                        f"{name} must hold {y.shape[0]} volumes on {y.device} like y, got "
                        f"shape {tuple(v.shape)} on {v.device}"
                    )

    def _metrics(self, x: torch.Tensor, x_true: torch.Tensor) -> Metrics:
        return volume_metrics(x, x_true)
