"""The one reader of an operator's noise model: how much noise is in y, in image units.

Every solver, the deepinv adapter and the Gaussian oracle read the noise through
:func:`noise_level`, once per solve (``Solver.__call__`` stores it on the loop). It knows the
deepinv models our builders make (:func:`~restorekit.operators._common.noise_model`):

| model                          | y                          | per-pixel variance of y      |
|--------------------------------|----------------------------|------------------------------|
| none / ``ZeroNoise``           | A x                        | 0                            |
| ``GaussianNoise(σ)``           | A x + σ·n                  | σ²                           |
| ``PoissonNoise(g)``            | g·P(A x / g)               | g·A x  (A x / g unnormalised) |
| ``PoissonGaussianNoise(g, σ)`` | g·P(A x / g) + σ·n         | g·A x + σ²                   |

A x is unknown, so the Poisson part is evaluated at y itself (clipped at 0): its mean is A x,
and a gain small enough for the reading to matter also makes y a good estimate of A x.
:func:`noise_level` returns the root mean square of the per-pixel standard deviation over the
pixels and the batch, √mean(var): the σ of the Gaussian noise with the same expected ‖noise‖²,
which is what a quadratic data term ½‖Ax − y‖² weighs. Other noise models raise a ValueError
naming the model (pass the solver's noise-dependent parameters by hand for them).
"""

from __future__ import annotations

from typing import Any

import torch


def _scalar(value) -> float:
    """A parameter of a deepinv noise model (float or tensor, possibly per sample) as a float:
    the largest value when it is given per sample."""
    return float(torch.as_tensor(value).detach().max())


def noise_variance(operator, y: torch.Tensor) -> torch.Tensor:
    """The per-pixel variance of the noise in ``y`` (shaped like y, or a 0-dim tensor for
    signal-independent noise), in y's units squared (see the module table)."""
    from deepinv.physics import GaussianNoise, PoissonGaussianNoise, PoissonNoise, ZeroNoise

    model = getattr(operator, "noise_model", None)
    like: dict[str, Any] = dict(dtype=y.real.dtype, device=y.device)
    if model is None or isinstance(model, ZeroNoise):
        return torch.zeros((), **like)
    if isinstance(model, GaussianNoise):
        return torch.tensor(_scalar(model.sigma) ** 2, **like)
    if isinstance(model, PoissonGaussianNoise):
        return _scalar(model.gain) * y.real.clamp_min(0) + _scalar(model.sigma) ** 2
    if isinstance(model, PoissonNoise):
        normalised = bool(torch.as_tensor(getattr(model, "normalize", True)))
        counts = y.real.clamp_min(0)
        return _scalar(model.gain) * counts if normalised else counts
    raise ValueError(
        f"noise model {type(model).__name__} of operator {type(operator).__name__} "
        "is not one restorekit can read (Gaussian, Poisson, Poisson-Gaussian or "
        "none); set the solver's noise-dependent parameters by hand"
    )


def noise_level(operator, y: torch.Tensor) -> float:
    """σ_y: the root-mean-square noise standard deviation in ``y`` (0 for noiseless data)."""
    return float(noise_variance(operator, y).mean().sqrt())


def is_gaussian(operator) -> bool:
    """Whether the operator's noise is Gaussian with a fixed σ (or absent): what exact Gaussian
    posteriors (the oracle) need."""
    from deepinv.physics import GaussianNoise, ZeroNoise

    model = getattr(operator, "noise_model", None)
    return model is None or isinstance(model, (GaussianNoise, ZeroNoise))
