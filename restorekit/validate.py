"""Boundary checks: shapes, dtypes, devices, ranges. Raised on entry, never in inner loops."""
from __future__ import annotations

import torch


def operator_device(operator) -> torch.device | None:
    """The device of the first tensor an operator holds (mask, kernel, coil maps), if any."""
    for t in list(operator.buffers()) + list(operator.parameters()):
        return t.device
    return None


def check_image(x, name: str, *, in_range: bool = False) -> None:
    """x must be a finite floating (B, C, H, W) tensor; with ``in_range`` also within [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (e.g. float32), got {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be shaped (B, C, H, W), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    if in_range:
        lo, hi = x.min().item(), x.max().item()
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(f"{name} must have values in [0, 1], got range [{lo:.3g}, {hi:.3g}]"
                             " (convert e.g. uint8 images with x / 255)")


def check_problem(y, operator, *, x_init=None, x_true=None, generator=None) -> None:
    """Validate a solver's inputs: y, the operator, and the optional x_init / x_true."""
    from deepinv.physics import LinearPhysics, Physics

    nonlinear = isinstance(operator, Physics) and getattr(operator, "linear", True) is False
    if not isinstance(operator, LinearPhysics) and not nonlinear:
        raise TypeError("operator must be a deepinv LinearPhysics (e.g. from restorekit.operators), "
                        "or a non-linear deepinv Physics marked linear = False (see "
                        f"restorekit.operators.nonlinear), got {type(operator).__name__}")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if not y.is_floating_point():
        raise TypeError(f"y must be a floating-point tensor, got {y.dtype}")
    if not torch.isfinite(y).all():
        raise ValueError("y contains NaN or Inf values")
    dev = operator_device(operator)
    if dev is not None and dev != y.device:
        raise ValueError(f"y is on {y.device} but the operator is on {dev}; move one with .to()")
    for name, x in (("x_init", x_init), ("x_true", x_true)):
        if x is None:
            continue
        check_image(x, name, in_range=name == "x_true")
        if x.device != y.device:
            raise ValueError(f"{name} is on {x.device} but y is on {y.device}")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{name} has batch size {x.shape[0]} but y has {y.shape[0]}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
