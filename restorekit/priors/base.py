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
| GradientSparse | ``gradient``, ``divergence``, ``grad_norm_sq``, ``lam``, ``project``: |
|            | R(x) = Σ_i λ_i‖(∇x)_i‖ with its structure exposed (TV; Chambolle–Pock) |
| ClassConditional | ``model_eps(u_t, t, class_labels)``, ``num_classes``, ``null_class`` |
|            | (what the guidance wrappers CFG, CFG++ and APG wrap)                 |

Conventions a prior may declare without a method:

- fixed prox weight: a Proximal prior whose ``prox(x, γ)`` exists for one γ* only (an LPN) sets
  ``prox_gamma = γ*`` and, if it was trained as a MAP denoiser at noise σ₀, ``sigma = σ₀``;
  solvers read them through :func:`fixed_prox_weight` (and ``data_weight`` in
  :mod:`restorekit.solvers.steps`);
- per-run state: a prior with state across the steps of one solve (APG momentum) clears it in
  ``reset()``; :func:`reset` calls it once per solve;
- strength from the data: a prior whose default strength follows the noise of y (TV's
  noise-scaled weight) offers ``for_noise(sigma_y, family)`` → the prior fixed for one solve;
  :func:`for_data` calls it once per solve.

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


@runtime_checkable
class ClassConditional(Protocol):
    """A class-conditional ε-model: ``model_eps(u_t, t, class_labels)`` with labels a (B,)
    LongTensor in [0, num_classes) or ``null_class`` (the "no class" label of classifier-free
    guidance training); ``num_classes`` is None for an unconditional model."""

    num_classes: int | None
    null_class: int | None

    def model_eps(self, u_t: torch.Tensor, t, class_labels: torch.Tensor | None = None) -> torch.Tensor: ...


@runtime_checkable
class GradientSparse(Protocol):
    """R(x) = Σ_i λ_i‖(∇x)_i‖₂ with its structure exposed, for primal–dual solvers:
    ``gradient`` (B, C, H, W) → (B, C, 2, H, W), ``divergence`` = −∇ᴴ, ``grad_norm_sq`` ≥ ‖∇‖²,
    ``lam(x)`` the weights λ_i broadcastable to the gradient, ``project(q, lam)`` the projection
    onto {‖q_i‖ ≤ λ_i}. Total variation (:class:`~restorekit.priors.tv.TV`) has it."""

    grad_norm_sq: float

    def gradient(self, x: torch.Tensor) -> torch.Tensor: ...

    def divergence(self, p: torch.Tensor) -> torch.Tensor: ...

    def lam(self, x: torch.Tensor, gamma=1.0): ...

    def project(self, q: torch.Tensor, lam) -> torch.Tensor: ...


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


def for_data(prior, sigma_y: float, family: str):
    """The prior as one solve uses it: ``prior.for_noise(sigma_y, family)`` for a prior whose
    strength follows the noise level σ_y of the data and the operator ``family`` (TV with its
    default weight), else ``prior`` itself; called once per solve by ``Solver.__call__``."""
    fix = getattr(prior, "for_noise", None)
    return fix(sigma_y, family) if callable(fix) else prior


def require(prior, capability: type, solver: str) -> None:
    """Raise a TypeError unless ``prior`` has ``capability`` (one of the protocols above)."""
    if not isinstance(prior, capability):
        have = [
            c.__name__
            for c in (Denoiser, Proximal, Energy, Diffusion, GradientSparse)
            if isinstance(prior, c)
        ]
        examples: dict[type, str] = {GradientSparse: " (total variation, restorekit.priors.TV)"}
        example = examples.get(capability, "")
        raise TypeError(
            f"solver {solver!r} needs a prior with the {capability.__name__} capability{example}, "
            f"but {type(prior).__name__} has only: {', '.join(have) or 'none'}"
        )
