"""The one home of argument checks: every public function and class validates its arguments
with these, and raises a TypeError (wrong kind) or a ValueError (wrong value) that names the
argument, the value received and what is accepted."""

from __future__ import annotations

import math
import numbers

import torch

_DTYPES = (torch.float32, torch.float64)


def image_size(img_size, name: str = "img_size") -> tuple[int, int]:
    """``img_size`` as (H, W): an int (square) or a pair of positive ints."""
    if isinstance(img_size, numbers.Integral) and not isinstance(img_size, bool):
        img_size = (int(img_size), int(img_size))
    if (
        not isinstance(img_size, (tuple, list))
        or len(img_size) != 2
        or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in img_size)
    ):
        raise TypeError(f"{name} must be an int or a pair (H, W) of ints, got {img_size!r}")
    if min(img_size) < 1:
        raise ValueError(f"{name} must be positive, got {tuple(img_size)}")
    return int(img_size[0]), int(img_size[1])


def positive_int(value, name: str, minimum: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def real_number(value, name: str, *, low=None, high=None, low_open=False, high_open=False) -> float:
    """A finite real number in [low, high] (open at an end with ``low_open`` / ``high_open``):
    a TypeError for a non-number, a ValueError naming the interval otherwise."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high or math.isnan(value):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(
            f"{name} must be in {'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}, "
            f"got {value:g}"
        )
    return value


def positive(value, name: str, *, integer: bool = False, allow_none: bool = False):
    """``value`` if it is a positive finite number (an int with ``integer``; None allowed with
    ``allow_none``), else a ValueError naming ``name``: the hyperparameter check of every solver."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not value > 0 or not math.isfinite(value):
        kind = "a positive int" if integer else "a positive number"
        raise ValueError(f"{name} must be {kind}{' or None' if allow_none else ''}, got {value!r}")
    return value


def check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def check_dtype(dtype) -> torch.dtype:
    if dtype not in _DTYPES:
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def as_device(device) -> torch.device:
    try:
        return torch.device("cpu" if device is None else device)
    except (TypeError, RuntimeError):
        raise TypeError(
            f"device must be a torch.device or a string like 'cpu' or 'cuda', got {device!r}"
        ) from None


def batch_shape(shape) -> tuple[int, int, int, int]:
    """``shape`` as a (B, C, H, W) tuple of positive ints."""
    if (
        not isinstance(shape, (tuple, list, torch.Size))
        or len(shape) != 4
        or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
    ):
        raise ValueError(f"shape must be (B, C, H, W) with positive ints, got {shape!r}")
    return tuple(shape)
