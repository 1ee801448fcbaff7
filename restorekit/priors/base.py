"""Capabilities a prior can have, and the one check solvers use to ask for them.

Every prior is a :class:`Denoiser`. Solvers ask for the capability they need with
:func:`require`, which raises a ``TypeError`` naming the prior, the solver and what is missing.

| capability | what it offers                                                   |
|------------|------------------------------------------------------------------|
| Denoiser   | ``denoise(x, sigma)`` → estimate of the clean image               |
| Proximal   | ``prox(x, gamma)`` → argmin_z ½‖z − x‖² + gamma·R(z)               |
|            | (``prox_gamma``: the one gamma it accepts, if it is fixed — an LPN) |
| Energy     | ``value(x)`` → R(x) per sample                                    |
| Diffusion  | ``alphas_cumprod``, ``predict(u_t, t, cond)`` → :class:`Prediction` |

Conventions: images ``x`` are (B, C, H, W) in [0, 1]; ``sigma`` is a noise standard deviation
in those units, a float or a (B,) tensor. Diffusion priors work on u = 2x − 1 internally and
expose exactly one conversion pair, ``to_model`` / ``to_image``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Denoiser(Protocol):
    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Proximal(Protocol):
    def prox(self, x: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Energy(Protocol):
    def value(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Prediction:
    """What a diffusion prior predicts from a noisy VP sample u_t = a_t·u0 + s_t·ε.

    Attributes (all in model space, u ∈ [−1, 1]):
        x0: Tweedie estimate û0 = (u_t − s_t·ε̂)/a_t.
        eps: the noise estimate ε̂ consistent with ``x0``.
        eps_renoise: the noise used to step to the next level (ε̂ itself, except for
            guidance rules such as CFG++ that renoise with the unconditional ε).
    """

    x0: torch.Tensor
    eps: torch.Tensor
    eps_renoise: torch.Tensor


@runtime_checkable
class Diffusion(Protocol):
    """A VP diffusion model: ``alphas_cumprod`` (ā_t, float64 (T,)) and ``predict``.

    ``predict(u_t, t, cond=None)`` takes the noisy sample in model space and an integer
    timestep in [0, T). ``to_model(x) = 2x − 1`` and ``to_image(u) = (u + 1)/2``.
    ``reset()`` clears any per-run state (guidance momentum); solvers call it on entry.
    """

    alphas_cumprod: torch.Tensor

    def predict(self, u_t: torch.Tensor, t: int, cond=None) -> Prediction: ...

    def to_model(self, x: torch.Tensor) -> torch.Tensor: ...

    def to_image(self, u: torch.Tensor) -> torch.Tensor: ...

    def reset(self) -> None: ...


def fixed_prox_weight(prior) -> float | None:
    """The one prox weight γ* a Proximal prior accepts (its ``prox_gamma`` attribute: an LPN is
    the prox of its R at the trained scale only), or None when ``prox(x, γ)`` works for every
    γ > 0 (TV) or the prior is not Proximal. Solvers keep such a prior's prox weight at γ* and
    move the balance between data and prior into the data term."""
    gamma = getattr(prior, "prox_gamma", None) if isinstance(prior, Proximal) else None
    return None if gamma is None else float(gamma)


def reset(prior) -> None:
    """Clear a prior's per-run state (guidance momentum) through its ``reset()``, if it has one:
    called once per solve by every solver (``Solver.__call__``) and by ``sample``."""
    clear = getattr(prior, "reset", None)
    if callable(clear):
        clear()


def require(prior, capability: type, solver: str) -> None:
    """Raise a TypeError unless ``prior`` has ``capability`` (one of the protocols above)."""
    if not isinstance(prior, capability):
        have = [c.__name__ for c in (Denoiser, Proximal, Energy, Diffusion) if isinstance(prior, c)]
        raise TypeError(
            f"solver {solver!r} needs a prior with the {capability.__name__} capability, but "
            f"{type(prior).__name__} has only: {', '.join(have) or 'none'}")
