"""Any denoiser is a diffusion prior over its noise range: a diffusion prior whose low-noise
levels are served by another denoiser.

A VP diffusion model is a family of MMSE denoisers indexed by the noise level (Tweedie): with
u_t = a_t·u0 + s_t·ε and u = 2x − 1,

    x_t = (u_t/a_t + 1)/2 = x0 + σ_t·ε,   σ_t = s_t/(2a_t)   (image units),
    E[x0 | u_t] = E[x0 | x_t] = D(x_t, σ_t),

so any Gaussian denoiser D(·, σ) defines û0 = 2·D(x_t, σ_t) − 1 and ε̂ = (u_t − a_t·û0)/s_t at
every level it covers. :func:`composite` asks the ``low`` denoiser for x̂0 at the levels
σ_t ≤ ``switch_sigma`` (where detail is decided, and where a CNN denoiser trained on many
patches is strongest) and the diffusion network ``high`` above, so every diffusion solver
(DDS, DPS, RED-Diff, MCG, DDRM, DiffPIR) uses both. A composite of two exact MMSE denoisers of
the same distribution is the exact diffusion model of that distribution.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Denoiser, Diffusion, Prediction
from .schedule import abar_at, eps_from_x0, sigma_of


class CompositePrior:
    """A Diffusion prior: ``high`` at image-unit levels σ_t > ``switch_sigma``, ``low`` at or below.

    Capabilities: Diffusion and Denoiser (``denoise(x, σ)`` also switches at ``switch_sigma``).

    Parameters
    ----------
    high : a Diffusion prior (its schedule ``alphas_cumprod``, its ``to_model``/``to_image``).
    low : any Denoiser ``denoise(x, σ)`` on images in [0, 1] with σ in the same units.
    switch_sigma : the largest image-unit noise level σ = s_t/(2a_t) handed to ``low``.
    """

    def __init__(self, high, low, switch_sigma: float):
        if not isinstance(high, Diffusion):
            raise TypeError(
                f"high must be a Diffusion prior (alphas_cumprod, predict, to_model, "
                f"to_image, reset), got {type(high).__name__}"
            )
        if not isinstance(low, Denoiser):
            raise TypeError(f"low must be a Denoiser (denoise(x, sigma)), got {type(low).__name__}")
        if not isinstance(switch_sigma, (int, float)) or not switch_sigma > 0:
            raise ValueError(f"switch_sigma must be a positive float (image units), got {switch_sigma!r}")
        self.high, self.low, self.switch_sigma = high, low, float(switch_sigma)
        self.alphas_cumprod = high.alphas_cumprod
        self.num_classes = getattr(high, "num_classes", None)
        self.null_class = getattr(high, "null_class", None)

    @property
    def num_train_timesteps(self) -> int:
        return self.alphas_cumprod.numel()

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        return self.high.to_model(x)

    def to_image(self, u: torch.Tensor) -> torch.Tensor:
        return self.high.to_image(u)

    def reset(self) -> None:
        """Reset both priors' per-run state."""
        self.high.reset()
        if hasattr(self.low, "reset"):
            self.low.reset()

    def level(self, t, like: torch.Tensor) -> torch.Tensor:
        """σ_t = s_t/(2a_t) in image units, shaped to broadcast against ``like``."""
        return sigma_of(abar_at(self.alphas_cumprod, t, like)) / 2

    def _low_x0(self, u_t: torch.Tensor, t) -> Prediction:
        """1. x_t = to_image(u_t/a_t); 2. x̂0 = low(x_t, σ_t); 3. û0, ε̂ consistent with u_t."""
        abar = abar_at(self.alphas_cumprod, t, u_t)
        sigma = self.level(t, u_t).reshape(-1).expand(u_t.shape[0])
        x0 = self.to_model(self.low.denoise(self.to_image(u_t / abar.sqrt()), sigma))
        eps = eps_from_x0(u_t, x0, abar)
        return Prediction(x0=x0, eps=eps, eps_renoise=eps)

    def predict(self, u_t: torch.Tensor, t, cond=None) -> Prediction:
        """û0 and ε̂ from ``low`` where σ_t ≤ switch_sigma, from ``high`` elsewhere (per sample)."""
        use_low = (self.level(t, u_t).reshape(-1) <= self.switch_sigma).expand(u_t.shape[0])
        if not use_low.any():
            return self.high.predict(u_t, t, cond)
        if cond is not None and self.num_classes is None:
            raise ValueError(f"cond must be None for an unconditional composite prior, got {cond!r}")
        low = self._low_x0(u_t, t)
        if use_low.all():
            return low
        high = self.high.predict(u_t, t, cond)
        m = use_low.to(u_t.device).reshape(-1, *([1] * (u_t.ndim - 1)))
        return Prediction(
            **{f: torch.where(m, getattr(low, f), getattr(high, f)) for f in ("x0", "eps", "eps_renoise")}
        )

    def denoise(self, x: torch.Tensor, sigma, cond=None) -> torch.Tensor:
        """D(x, σ) from ``low`` for σ ≤ switch_sigma, from ``high`` above (per sample)."""
        # compared in sigma's own precision: a float32 0.1 is the same level as the float 0.1
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1).expand(x.shape[0])
        use_low = (s <= self.switch_sigma).to(x.device).reshape(-1, 1, 1, 1)
        if use_low.all():
            return self.low.denoise(x, sigma)
        # denoise(x, σ, cond) is the diffusion prior's own method, not part of the Diffusion protocol
        net: Any = self.high
        high = net.denoise(x, sigma, cond) if cond is not None else net.denoise(x, sigma)
        return high if not use_low.any() else torch.where(use_low, self.low.denoise(x, sigma), high)

    def __repr__(self):
        return f"CompositePrior(high={self.high!r}, low={self.low!r}, switch_sigma={self.switch_sigma:g})"


def composite(high, low, switch_sigma: float) -> CompositePrior:
    """``high`` diffusion prior above image-unit noise level ``switch_sigma``, ``low`` denoiser at
    or below it: see :class:`CompositePrior`."""
    return CompositePrior(high, low, switch_sigma)
