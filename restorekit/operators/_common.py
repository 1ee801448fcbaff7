"""Argument checks and the noise model shared by every operator builder."""
from __future__ import annotations

import numbers

import torch
from deepinv.physics import GaussianNoise, PoissonGaussianNoise, PoissonNoise, ZeroNoise

_DTYPES = (torch.float32, torch.float64)


def image_size(img_size, name: str = "img_size") -> tuple[int, int]:
    """``img_size`` as (H, W): an int (square) or a pair of positive ints."""
    if isinstance(img_size, numbers.Integral) and not isinstance(img_size, bool):
        img_size = (int(img_size), int(img_size))
    if (not isinstance(img_size, (tuple, list)) or len(img_size) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in img_size)):
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


def real_number(value, name: str, *, low=None, high=None, low_open=False) -> float:
    """A real number in [low, high] (or (low, high] with ``low_open``)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high or value != value:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{name} must be in {'(' if low_open else '['}{lo}, {hi}], got {value:g}")
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
        raise TypeError(f"device must be a torch.device or a string like 'cpu' or 'cuda', got {device!r}") from None


def draw(fn, shape, generator, *, device, dtype, **kwargs) -> torch.Tensor:
    """A random tensor from ``fn`` (torch.rand, torch.randn...) drawn with ``generator``.

    Draws happen on the generator's device so that a seed gives the same result wherever the
    operator then lives; the result is moved to ``device``.
    """
    where = generator.device if generator is not None else torch.device("cpu")
    return fn(*shape, generator=generator, device=where, dtype=dtype, **kwargs).to(device)


def noise_model(noise_sigma, poisson, generator, device):
    """The deepinv noise model for Gaussian std ``noise_sigma`` and/or Poisson ``poisson`` gain.

    Gaussian: y = A x + noise_sigma·ε, ε ~ N(0, I).
    Poisson with gain g: y = g·P(A x / g) (so 1/g is the photon count of a unit intensity);
    both together: y = g·P(A x / g) + noise_sigma·ε. Negative A x is clipped to 0 before
    Poisson sampling (FFT-based operators give tiny negative values on non-negative images).
    Noise is drawn with ``generator`` (the global generator if None) at each forward call, on
    the operator's ``device``, so the generator must live on that device.
    """
    sigma = real_number(noise_sigma, "noise_sigma", low=0.0, high=1.0)
    random = sigma > 0 or poisson is not None
    if random and generator is not None and generator.device.type != torch.device(device).type:
        raise ValueError(f"generator is on {generator.device} but the operator is on {device}: the "
                         "measurement noise is drawn on the operator's device, pass "
                         f"torch.Generator(device={str(device)!r})")
    if poisson is not None:
        gain = real_number(poisson, "poisson", low=0.0, low_open=True)
        if sigma > 0:
            return PoissonGaussianNoise(gain=gain, sigma=sigma, clip_positive=True, rng=generator)
        return PoissonNoise(gain=gain, clip_positive=True, rng=generator)
    if sigma > 0:
        return GaussianNoise(sigma=sigma, rng=generator)
    return ZeroNoise()
