"""The noise model and random draws shared by every operator builder; their argument checks
come from :mod:`restorekit.checks` (imported here for the builders)."""

from __future__ import annotations

import torch
from deepinv.physics import GaussianNoise, PoissonGaussianNoise, PoissonNoise, ZeroNoise

from ..checks import as_device, check_dtype, check_generator, image_size, positive_int, real_number

__all__ = [
    "as_device",
    "check_dtype",
    "check_generator",
    "draw",
    "image_size",
    "noise_model",
    "positive_int",
    "real_number",
]


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
        raise ValueError(
            f"generator is on {generator.device} but the operator is on {device}: the "
            "measurement noise is drawn on the operator's device, pass "
            f"torch.Generator(device={str(device)!r})"
        )
    if poisson is not None:
        gain = real_number(poisson, "poisson", low=0.0, low_open=True)
        if sigma > 0:
            return PoissonGaussianNoise(gain=gain, sigma=sigma, clip_positive=True, rng=generator)
        return PoissonNoise(gain=gain, clip_positive=True, rng=generator)
    if sigma > 0:
        return GaussianNoise(sigma=sigma, rng=generator)
    return ZeroNoise()
