"""Variance-preserving (VP) diffusion maths: the one place where ā_t, Tweedie and steps live.

Notation (model space, u = 2x − 1 ∈ [−1, 1]): ā_t = ``alphas_cumprod[t]``, a_t = sqrt(ā_t),
s_t = sqrt(1 − ā_t), and a noisy sample is u_t = a_t·u0 + s_t·ε with ε ~ N(0, I).

| function            | formula                                                   |
|---------------------|-----------------------------------------------------------|
| ``tweedie_x0``      | û0 = (u_t − s_t·ε̂)/a_t                                     |
| ``eps_from_x0``     | ε̂ = (u_t − a_t·û0)/s_t                                      |
| ``eps_from_v``      | v = a_t·ε − s_t·u0  ⇒  ε̂ = s_t·u_t + a_t·v̂                  |
| ``sigma_of``        | σ(ā) = s/a, the variance-exploding noise level of u_t/a_t   |
| ``image_sigma``     | σ in image units = σ(ā)/2 (the noise of u is twice x's)     |
| ``q_sample``        | u_t = a_t·u0 + s_t·ε                                        |
| ``ddpm_step``       | ancestral step from q(u_prev | u_t, û0)                    |
| ``ddim_step``       | u_prev = a_prev·û0 + s_prev·(η·ξ + sqrt(1 − η²)·ε̂)          |
| ``to_model``        | u = 2x − 1 (image [0, 1] → model [−1, 1])                   |
| ``to_image``        | x = (u + 1)/2                                               |
| ``model_residual``  | 2·(y − A((u + 1)/2)): a data residual in model units        |

``abar`` arguments are floats or tensors broadcastable against the image (e.g. (B, 1, 1, 1));
:func:`abar_at` gathers them from a schedule. Every function is pure and differentiable.
This module is the only place where the factor 2 between image and model units appears
(``to_model``, ``to_image``, ``image_sigma``/``model_sigma`` and ``model_residual``).
"""

from __future__ import annotations

import math

import torch


def linear_alphas_cumprod(
    num_train: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> torch.Tensor:
    """ā_t = Π_{k≤t}(1 − β_k) for the linear β schedule of DDPM (Ho et al. 2020), float64."""
    betas = torch.linspace(beta_start, beta_end, num_train, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def abar_at(alphas_cumprod: torch.Tensor, t, like: torch.Tensor) -> torch.Tensor:
    """ā at timestep ``t`` (int, or a (B,) LongTensor; −1 means "clean", ā = 1) as a tensor
    shaped to broadcast against ``like`` (B, C, H, W), on its device and dtype."""
    ac = torch.cat([alphas_cumprod.double().cpu(), torch.ones(1, dtype=torch.float64)])
    if isinstance(t, torch.Tensor):
        value = ac[t.detach().cpu().long()].reshape(-1, *([1] * (like.ndim - 1)))
    else:
        value = ac[int(t)].reshape(*([1] * like.ndim))
    return value.to(device=like.device, dtype=like.dtype)


def tweedie_x0(u_t: torch.Tensor, eps: torch.Tensor, abar_t) -> torch.Tensor:
    """û0 = (u_t − sqrt(1 − ā_t)·ε̂)/sqrt(ā_t)."""
    return (u_t - _sqrt(1 - abar_t) * eps) / _sqrt(abar_t)


def eps_from_x0(u_t: torch.Tensor, x0: torch.Tensor, abar_t) -> torch.Tensor:
    """ε̂ = (u_t − sqrt(ā_t)·û0)/sqrt(1 − ā_t)."""
    return (u_t - _sqrt(abar_t) * x0) / _sqrt(1 - abar_t)


def eps_from_v(u_t: torch.Tensor, v: torch.Tensor, abar_t) -> torch.Tensor:
    """ε̂ from a v-prediction (Salimans & Ho 2022): v = a·ε − s·u0 ⇒ ε̂ = s·u_t + a·v̂."""
    return _sqrt(1 - abar_t) * u_t + _sqrt(abar_t) * v


def v_from_eps(u_t: torch.Tensor, eps: torch.Tensor, abar_t) -> torch.Tensor:
    """v = a·ε − s·u0, with u0 given by Tweedie from (u_t, ε)."""
    return _sqrt(abar_t) * eps - _sqrt(1 - abar_t) * tweedie_x0(u_t, eps, abar_t)


def sigma_of(abar):
    """The VE noise level σ = s/a = sqrt((1 − ā)/ā) of u_t/a_t (model units)."""
    return _sqrt((1 - abar) / abar)


def image_sigma(abar):
    """σ(ā)/2: the VE noise level of u_t/a_t in image units (u = 2x − 1 doubles noise)."""
    return sigma_of(abar) / 2


def model_sigma(sigma):
    """2σ: a noise level in image units, in model units."""
    return 2 * sigma


def to_model(x: torch.Tensor) -> torch.Tensor:
    """u = 2x − 1: image [0, 1] → model space [−1, 1]."""
    return 2 * x - 1


def to_image(u: torch.Tensor) -> torch.Tensor:
    """x = (u + 1)/2: model space → image."""
    return (u + 1) / 2


def model_residual(y: torch.Tensor, operator, u: torch.Tensor) -> torch.Tensor:
    """2·(y − A((u + 1)/2)): the data residual of a model-space u in model units (twice the
    image-unit residual; A acts on images, so never A(u)). Published diffusion step sizes
    (DPS's ζ, MCG's α, RED-Diff's λ and lr) were tuned with residuals in these units."""
    return 2 * (y - operator.A(to_image(u)))


def q_sample(u0: torch.Tensor, abar, noise: torch.Tensor) -> torch.Tensor:
    """u_t = a_t·u0 + s_t·ε: u0 noised to level ā (the forward process q(u_t | u0))."""
    return _sqrt(abar) * u0 + _sqrt(1 - abar) * noise


def timestep_for_sigma(alphas_cumprod: torch.Tensor, sigma) -> torch.Tensor:
    """The timestep(s) whose σ_t = s_t/a_t is closest to ``sigma`` (model units) in log scale.

    ``sigma`` is a float or a tensor; returns a LongTensor of the same shape (0-dim for a float).
    """
    s = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu()
    if (s < 0).any():
        raise ValueError(f"sigma must be non-negative, got {s.min().item()}")
    sig = sigma_of(alphas_cumprod.double().cpu())
    dist = (torch.log(sig) - torch.log(s.clamp_min(1e-12)).unsqueeze(-1)).abs()
    return dist.argmin(dim=-1)


def timesteps(num_train: int, steps: int, kind: str = "leading") -> list[int]:
    """Decreasing timesteps for a sampler of ``steps`` steps over a ``num_train``-step model.

    ``"leading"`` (DDIM / DDS / RED-Diff): k·(num_train // steps) for k = steps − 1, …, 0,
    e.g. 980, 960, …, 0 for 50 of 1000. ``"uniform"``: ``steps`` values evenly spread from
    num_train − 1 to 0, rounded. Both give 999, …, 0 for steps = num_train.
    """
    if not isinstance(steps, int) or not 1 <= steps <= num_train:
        raise ValueError(f"steps must be an int in [1, {num_train}], got {steps!r}")
    if kind == "leading":
        stride = num_train // steps
        return [k * stride for k in range(steps - 1, -1, -1)]
    if kind == "uniform":
        if steps == 1:
            return [num_train - 1]
        return [round((num_train - 1) * (1 - k / (steps - 1))) for k in range(steps)]
    raise ValueError(f"kind must be 'leading' or 'uniform', got {kind!r}")


def ddpm_step(
    u_t: torch.Tensor,
    x0: torch.Tensor,
    abar_t,
    abar_prev,
    noise: torch.Tensor,
    eps_shift: torch.Tensor | None = None,
):
    """One ancestral step from the posterior q(u_prev | u_t, û0) (Ho et al. 2020, eq. 6–7),
    written for any pair of levels (strided schedules): with α = ā_t/ā_prev, β = 1 − α,

        mean = sqrt(ā_prev)·β/(1 − ā_t)·û0 + sqrt(α)·(1 − ā_prev)/(1 − ā_t)·u_t,
        var  = (1 − ā_prev)/(1 − ā_t)·β            ("fixed small" variance),

    u_prev = mean + sqrt(var)·noise. With ā_prev = 1 (the final step) it returns û0.

    In ε form the mean is a_prev·û0 + sqrt(1 − ā_prev − var)·ε with ε = (u_t − a_t·û0)/s_t
    the noise implied by (u_t, û0). ``eps_shift`` (ε_renoise − ε̂ of a
    :class:`~restorekit.priors.base.Prediction`: ε_u − ε_λ under CFG++, 0 otherwise) renoises
    with ε + eps_shift instead, i.e. adds sqrt(1 − ā_prev − var)·eps_shift.
    """
    alpha = abar_t / abar_prev
    beta = 1 - alpha
    mean = (_sqrt(abar_prev) * beta / (1 - abar_t)) * x0 + (
        _sqrt(alpha) * (1 - abar_prev) / (1 - abar_t)
    ) * u_t
    var = (1 - abar_prev) / (1 - abar_t) * beta
    if eps_shift is not None:
        mean = mean + _sqrt(alpha) * (1 - abar_prev) / _sqrt(1 - abar_t) * eps_shift
    return mean + _sqrt(var) * noise


def ddim_step(x0: torch.Tensor, eps: torch.Tensor, abar_next, eta: float, noise: torch.Tensor):
    """u_next = a_next·û0 + s_next·(η·ξ + sqrt(1 − η²)·ε̂) — the DDIM step with η read as the
    share of fresh noise ξ (the form of the DDS authors; η = 0 is deterministic DDIM; the
    textbook DDIM σ_t(η) injects far less noise for the same η)."""
    return _sqrt(abar_next) * x0 + _sqrt(1 - abar_next) * (eta * noise + math.sqrt(1 - eta**2) * eps)


def randn(shape, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Standard normal draw from ``generator`` with ``like``'s device and dtype."""
    return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)


def _sqrt(v):
    return torch.sqrt(v) if isinstance(v, torch.Tensor) else math.sqrt(v)
