"""A gray prior on colour images, one channel at a time — only when the user asks for it.

Solvers refuse a gray prior on colour images (see :func:`restorekit.validate.check_prior_channels`)
and list the choices: convert the image to luminance, use a colour prior, or wrap the gray prior
in :class:`PerChannel`, which restores each channel as an independent gray image (no coupling
between channels, so colour edges may misalign).
"""

from __future__ import annotations

from typing import ClassVar

import torch


def _fold(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B·C, 1, H, W)."""
    return x.reshape(-1, 1, *x.shape[-2:])


def _per_sample(value, batch: int, channels: int):
    """A per-sample σ/γ/t ((B,) tensor) repeated for each channel; scalars pass through."""
    if isinstance(value, torch.Tensor) and value.ndim > 0 and value.numel() == batch:
        return value.reshape(-1).repeat_interleave(channels)
    return value


class _Denoise:
    def denoise(self, x, sigma, *args, **kwargs):
        b, c = x.shape[:2]
        return self.prior.denoise(_fold(x), _per_sample(sigma, b, c), *args, **kwargs).reshape(x.shape)


class _Prox:
    def prox(self, x, gamma=1.0):
        b, c = x.shape[:2]
        return self.prior.prox(_fold(x), _per_sample(gamma, b, c)).reshape(x.shape)

    @property
    def prox_gamma(self):
        return getattr(self.prior, "prox_gamma", None)


class _Value:
    def value(self, x):
        return self.prior.value(_fold(x)).reshape(x.shape[0], -1).sum(1)


class _Diffusion:
    @property
    def alphas_cumprod(self):
        return self.prior.alphas_cumprod

    def predict(self, u_t, t, cond=None):
        from .base import Prediction

        b, c = u_t.shape[:2]
        p = self.prior.predict(_fold(u_t), _per_sample(t, b, c), _per_sample(cond, b, c))
        return Prediction(*(z.reshape(u_t.shape) for z in (p.x0, p.eps, p.eps_renoise)))

    def to_model(self, x):
        return self.prior.to_model(x)

    def to_image(self, u):
        return self.prior.to_image(u)

    def reset(self):
        self.prior.reset()


class PerChannel:
    """``prior`` (gray) applied to each channel of a colour image separately.

    Has exactly the capabilities of ``prior`` (the instance is of a subclass holding only
    those): ``denoise``, ``prox`` (and ``prox_gamma``), ``value`` (summed over channels) and
    the diffusion interface (``predict`` on folded channels, ``alphas_cumprod``, ``to_model``,
    ``to_image``, ``reset``).
    """

    channels = None  # any number of channels
    _classes: ClassVar[dict] = {}  # one subclass per set of capabilities

    def __new__(cls, prior):
        from .base import Denoiser, Diffusion, Energy, Proximal

        parts = tuple(
            mixin
            for cap, mixin in (
                (Denoiser, _Denoise),
                (Proximal, _Prox),
                (Energy, _Value),
                (Diffusion, _Diffusion),
            )
            if isinstance(prior, cap)
        )
        if parts not in cls._classes:
            cls._classes[parts] = type(cls.__name__, (cls, *parts), {})
        return super().__new__(cls._classes[parts])

    def __init__(self, prior):
        from ..validate import prior_channels

        if prior_channels(prior) not in (1, None):
            raise ValueError(f"PerChannel wraps a gray prior, got one with {prior_channels(prior)} channels")
        self.prior = prior
        self.name = f"per-channel {getattr(prior, 'name', type(prior).__name__)}"

    def __repr__(self):
        return f"PerChannel({self.prior!r})"
