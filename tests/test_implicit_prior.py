"""The implicit-prior solver (Kadkhodaie & Simoncelli 2021) against the exact Gaussian posterior.

The oracle's denoiser is the exact MMSE denoiser at every σ, so the algorithm's samples can be
compared with the closed-form posterior mean: the mean of 16 samples must be within a stated cap
(about 1.3× what was measured when written, in brackets) and at most half the error of the best
trivial estimate (the prior mean, relative error 1 by definition, and A†y).
"""

from __future__ import annotations

import deepinv as dinv
import pytest
import torch
from deepinv.physics.functional.blur import gaussian_blur

from restorekit.priors import GaussianPrior
from restorekit.solvers import SOLVERS, solve
from restorekit.solvers.implicit_prior import injected_noise, step_size

BATCH = 16


def _relative(estimate, post_mean, prior):
    return ((estimate - post_mean).norm() / (post_mean - prior.mean).norm()).item()


def _samples(y, op, prior, **params):
    y = y.expand(BATCH, *y.shape[1:]).contiguous()
    return solve(y, op, prior, solver="implicit-prior", generator=torch.Generator().manual_seed(0), **params)


def test_registered():
    assert "implicit-prior" in SOLVERS


def test_schedule_matches_the_paper():
    """h_1 = h₀, h_t → 1; one step on pure noise of level σ leaves (1 − βh)σ: (1 − h)²σ² + γ² = (1 − βh)²σ²."""
    assert step_size(1, 0.01) == pytest.approx(0.01)
    assert step_size(10_000, 0.01) == pytest.approx(1.0, abs=0.01)
    h, beta, s = step_size(7, 0.01), 0.3, 0.4
    assert (1 - h) ** 2 * s**2 + injected_noise(h, beta, s) ** 2 == pytest.approx((1 - beta * h) ** 2 * s**2)


def test_noisy_deblurring_matches_the_posterior_mean():
    """16² oracle draw, circular blur (std 1 px), σ_y = 0.01, published h₀ = β = 0.01:
    relative error of the 16-sample mean ≤ 0.12 [0.088]; A†y is at 28, the prior mean at 1."""
    prior = GaussianPrior.power_law(16)
    g = torch.Generator().manual_seed(1)
    x = prior.sample(1, g)
    op = dinv.physics.BlurFFT(
        img_size=(1, 16, 16),
        filter=gaussian_blur(sigma=(1.0, 1.0)).double(),
        noise_model=dinv.physics.GaussianNoise(0.01),
    )
    y = op.A(x) + 0.01 * torch.randn(x.shape, generator=g, dtype=x.dtype)
    mean, _ = prior.posterior(y, op)
    res = _samples(y, op, prior)
    err = _relative(res.x.mean(0, keepdim=True), mean, prior)
    trivial = min(1.0, _relative(op.A_dagger(y), mean, prior))
    assert err <= 0.12 and err <= trivial / 2, f"relative error {err:.3f} (best trivial {trivial:.3f})"
    assert 50 < res.nfe < 5000


def test_noiseless_inpainting_matches_the_posterior_mean():
    """8² oracle draw, half the pixels observed exactly (projection with A†): relative error of
    the 16-sample mean ≤ 0.25 [0.187]; A†y (zero fill) is at 2.2, the prior mean at 1."""
    prior = GaussianPrior.power_law(8)
    g = torch.Generator().manual_seed(2)
    x = prior.sample(1, g)
    mask = (torch.rand((1, 8, 8), generator=g) > 0.5).double()
    op = dinv.physics.Inpainting(img_size=(1, 8, 8), mask=mask)
    y = op.A(x)
    mean, _ = prior.posterior_dense(y, op)
    res = _samples(y, op, prior)
    err = _relative(res.x.mean(0, keepdim=True), mean, prior)
    trivial = min(1.0, _relative(op.A_dagger(y), mean, prior))
    assert err <= 0.25 and err <= trivial / 2, f"relative error {err:.3f} (best trivial {trivial:.3f})"
    # every sample honours the exact measurements
    torch.testing.assert_close(op.A(res.x), y.expand(BATCH, -1, -1, -1), rtol=0, atol=1e-9)


def test_deterministic_given_the_generator():
    prior = GaussianPrior.power_law(8)
    op = dinv.physics.Denoising(dinv.physics.GaussianNoise(0.05))
    y = prior.sample(1, torch.Generator().manual_seed(3))
    a, b = (
        solve(y, op, prior, solver="implicit-prior", beta=0.5, generator=torch.Generator().manual_seed(4)).x
        for _ in range(2)
    )
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"h0": 0.0}, "h0"),
        ({"beta": 1.5}, "beta"),
        ({"sigma0": -1.0}, "sigma0"),
        ({"sigma_min": 2.0}, "sigma_min"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_arguments_are_checked(params, match):
    with pytest.raises(ValueError, match=match):
        SOLVERS["implicit-prior"](**params)
