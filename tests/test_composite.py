"""The composite prior (a diffusion prior at high noise, a denoiser at low noise) on the Gaussian
oracle, where every piece is exact: a composite of two exact MMSE denoisers of one distribution
is that distribution's exact diffusion model."""

from __future__ import annotations

import deepinv as dinv
import pytest
import torch
from deepinv.physics.functional.blur import gaussian_blur

from restorekit.priors import GaussianPrior, composite
from restorekit.priors.base import Diffusion
from restorekit.priors.schedule import abar_at, sigma_of
from restorekit.solvers import solve


class OnlyDenoiser:
    """Hides every capability but ``denoise`` (so the composite must map levels itself)."""

    def __init__(self, prior):
        self.prior, self.calls = prior, 0

    def denoise(self, x, sigma):
        self.calls += 1
        return self.prior.denoise(x, sigma)


@pytest.fixture(scope="module")
def oracle():
    return GaussianPrior.power_law(16)


def _u_t(prior, t, n=3, seed=0):
    """A noisy VP sample u_t = a_t·u0 + s_t·ε of n draws from the prior (float64)."""
    g = torch.Generator().manual_seed(seed)
    u0 = prior.to_model(prior.sample(n, g))
    abar = abar_at(prior.alphas_cumprod, t, u0)
    return abar.sqrt() * u0 + (1 - abar).sqrt() * torch.randn(u0.shape, generator=g, dtype=u0.dtype)


def _t_at(prior, sigma):
    """The first timestep whose image-unit level s_t/(2a_t) exceeds ``sigma``."""
    return int((sigma_of(prior.alphas_cumprod) / 2 > sigma).nonzero()[0])


def test_composite_of_exact_denoisers_is_the_exact_diffusion_model(oracle):
    low = OnlyDenoiser(oracle)
    prior = composite(high=oracle, low=low, switch_sigma=0.1)
    assert isinstance(prior, Diffusion)
    t_switch = _t_at(oracle, 0.1)
    for t in (0, 50, t_switch - 1, t_switch, 600, 999):
        u = _u_t(oracle, t)
        got, ref = prior.predict(u, t), oracle.predict(u, t)
        torch.testing.assert_close(got.x0, ref.x0, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(got.eps, ref.eps, rtol=1e-9, atol=1e-9)
    assert low.calls == 3  # t = 0, 50, t_switch − 1 only


def test_routing_and_level_map_with_a_different_low_prior(oracle):
    """With a different Gaussian as ``low``, predictions at σ_t ≤ switch are exactly that
    Gaussian's diffusion model (so the level is σ = s_t/(2a_t), not s_t/a_t) and above the
    switch exactly ``high``'s; a mixed batch of timesteps is split per sample."""
    other = GaussianPrior.power_law(16, mean=0.3, variance=0.05, corner=0.2)
    prior = composite(high=oracle, low=OnlyDenoiser(other), switch_sigma=0.05)
    t_lo, t_hi = _t_at(oracle, 0.05) - 1, _t_at(oracle, 0.05) + 20
    u = _u_t(oracle, t_lo, n=2)
    torch.testing.assert_close(prior.predict(u, t_lo).x0, other.predict(u, t_lo).x0, rtol=1e-9, atol=1e-9)
    assert (prior.predict(u, t_lo).x0 - oracle.predict(u, t_lo).x0).abs().max() > 1e-2
    t = torch.tensor([t_lo, t_hi])
    mixed = prior.predict(u, t)
    torch.testing.assert_close(mixed.x0[:1], other.predict(u[:1], t_lo).x0, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(mixed.x0[1:], oracle.predict(u[1:], t_hi).x0, rtol=1e-9, atol=1e-9)
    x = oracle.sample(2, torch.Generator().manual_seed(3))
    torch.testing.assert_close(
        prior.denoise(x, torch.tensor([0.04, 0.2])),
        torch.cat([other.denoise(x[:1], 0.04), oracle.denoise(x[1:], 0.2)]),
    )


def test_dds_with_the_composite_oracle_is_dds_with_the_oracle(oracle):
    """DDS is the same sampler whichever exact denoiser serves each level (same seed)."""
    g = torch.Generator().manual_seed(1)
    x = oracle.sample(1, g)
    op = dinv.physics.BlurFFT(
        img_size=(1, 16, 16),
        filter=gaussian_blur(sigma=(1.0, 1.0)).double(),
        noise_model=dinv.physics.GaussianNoise(0.01),
    )
    y = op.A(x) + 0.01 * torch.randn(x.shape, generator=g, dtype=x.dtype)
    prior = composite(high=oracle, low=OnlyDenoiser(oracle), switch_sigma=0.2)

    def run(p):
        return solve(
            y, op, p, solver="dds", steps=20, clip_x0=False, generator=torch.Generator().manual_seed(0)
        ).x

    torch.testing.assert_close(run(prior), run(oracle), rtol=1e-7, atol=1e-7)


def test_gradient_flows_through_the_low_denoiser(oracle):
    """DPS differentiates x̂0 with respect to u_t: the low path must keep the graph."""
    from restorekit.priors import DenoiserPrior

    prior = composite(high=oracle, low=DenoiserPrior(lambda x, s: 0.5 * x), switch_sigma=1.0)
    u = _u_t(oracle, 10).requires_grad_(True)
    prior.predict(u, 10).x0.sum().backward()
    assert u.grad is not None and u.grad.abs().sum() > 0


def test_arguments_are_checked(oracle):
    with pytest.raises(TypeError, match="high must be a Diffusion"):
        composite(high=OnlyDenoiser(oracle), low=oracle, switch_sigma=0.1)
    with pytest.raises(TypeError, match="low must be a Denoiser"):
        composite(high=oracle, low=object(), switch_sigma=0.1)
    with pytest.raises(ValueError, match="switch_sigma must be a positive"):
        composite(high=oracle, low=oracle, switch_sigma=0.0)
