"""A gray prior on colour images, one channel at a time — only when the user asks for it.

Solvers refuse a gray prior on colour images (see :func:`restorekit.validate.check_prior_channels`)
and list the choices: convert the image to luminance, use a colour prior, or wrap the gray prior
in :class:`PerChannel`, which restores each channel as an independent gray image (no coupling
between channels, so colour edges may misalign).
"""
from __future__ import annotations

import torch


def _fold(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B·C, 1, H, W)."""
    return x.reshape(-1, 1, *x.shape[-2:])


def _per_sample(value, batch: int, channels: int):
    """A per-sample σ/γ/t ((B,) tensor) repeated for each channel; scalars pass through."""
    if isinstance(value, torch.Tensor) and value.ndim > 0 and value.numel() == batch:
        return value.reshape(-1).repeat_interleave(channels)
    return value


class PerChannel:
    """``prior`` (gray) applied to each channel of a colour image separately.

    Offers exactly the capabilities of ``prior``: ``denoise``, ``prox`` (and ``prox_gamma``),
    ``value`` (summed over channels) and the diffusion interface (``predict`` on folded
    channels, ``alphas_cumprod``, ``to_model``, ``to_image``, ``reset``).
    """

    channels = None  # any number of channels

    def __init__(self, prior):
        from ..validate import prior_channels

        if prior_channels(prior) not in (1, None):
            raise ValueError(f"PerChannel wraps a gray prior, got one with {prior_channels(prior)} "
                             "channels")
        self.prior = prior
        self.name = f"per-channel {getattr(prior, 'name', type(prior).__name__)}"

    def _inner(self, attr: str):
        if not hasattr(self.prior, attr):
            raise AttributeError(attr)  # so capability checks see what the wrapped prior lacks
        return getattr(self.prior, attr)

    @property
    def denoise(self):
        inner = self._inner("denoise")

        def denoise(x, sigma, *args, **kwargs):
            b, c = x.shape[:2]
            return inner(_fold(x), _per_sample(sigma, b, c), *args, **kwargs).reshape(x.shape)
        return denoise

    @property
    def prox(self):
        inner = self._inner("prox")

        def prox(x, gamma=1.0):
            b, c = x.shape[:2]
            return inner(_fold(x), _per_sample(gamma, b, c)).reshape(x.shape)
        return prox

    @property
    def prox_gamma(self):
        return self._inner("prox_gamma")

    @property
    def value(self):
        inner = self._inner("value")

        def value(x):
            return inner(_fold(x)).reshape(x.shape[0], -1).sum(1)
        return value

    @property
    def alphas_cumprod(self):
        return self._inner("alphas_cumprod")

    @property
    def predict(self):
        inner = self._inner("predict")

        def predict(u_t, t, cond=None):
            from .base import Prediction

            b, c = u_t.shape[:2]
            p = inner(_fold(u_t), _per_sample(t, b, c), _per_sample(cond, b, c))
            return Prediction(*(z.reshape(u_t.shape) for z in (p.x0, p.eps, p.eps_renoise)))
        return predict

    @property
    def to_model(self):
        return self._inner("to_model")

    @property
    def to_image(self):
        return self._inner("to_image")

    @property
    def reset(self):
        return self._inner("reset")

    def __repr__(self):
        return f"PerChannel({self.prior!r})"
