"""Posterior statistics and conformal risk control (RCPS, K-RCPS), on the Gaussian oracle where
the posterior is exact, so that the guarantee can be checked over many independent trials."""

import math

import pytest
import torch

from restorekit.operators import blur
from restorekit.priors import GaussianPrior
from restorekit.uncertainty import (
    hoeffding_bentkus_ucb,
    krcps,
    pixel_risk,
    posterior_samples,
    rcps,
    sample_statistics,
)

SIZE, K = 16, 8
EPS, DELTA = 0.1, 0.1


def oracle_setup():
    prior = GaussianPrior.power_law(SIZE)
    op = blur(
        "gaussian",
        sigma=1.0,
        noise_sigma=0.05,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(0),
    )
    return prior, op


def exact_draws(prior, op, n, gen):
    """n truths, their measurements and K exact posterior samples each: (x, lower, upper)."""
    x = prior.sample(n, gen)
    y = op.A(x) + 0.05 * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    mean, var = prior.posterior(y, op)
    w = torch.randn((K, *x.shape), generator=gen, dtype=x.dtype)
    samples = mean + prior.filter(w, var.sqrt())
    stats = sample_statistics(samples, coverage=0.8)
    return x, stats.lower, stats.upper


def test_sample_statistics_match_the_exact_posterior():
    prior, op = oracle_setup()
    gen = torch.Generator().manual_seed(1)
    x = prior.sample(1, gen)
    y = op.A(x) + 0.05 * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    mean, var = prior.posterior(y, op)
    w = torch.randn((4000, *x.shape), generator=gen, dtype=x.dtype)
    stats = sample_statistics(mean + prior.filter(w, var.sqrt()), coverage=0.8)
    pixel_std = var.mean().sqrt()  # stationary: every pixel has the mean per-frequency variance
    assert (stats.mean - mean).abs().max() < 5 * pixel_std / math.sqrt(4000)
    assert (stats.std / pixel_std - 1).abs().max() < 0.1
    z = 1.2815515655446004  # Φ⁻¹(0.9)
    assert ((stats.upper - mean) / (z * pixel_std) - 1).abs().max() < 0.15


def test_hoeffding_bentkus_bound():
    """Above R̂, shrinking like 1/√n, and at least the exact binomial (Clopper–Pearson) bound."""
    from scipy.stats import beta

    for n, r in ((50, 0.05), (500, 0.05), (200, 0.2)):
        ucb = hoeffding_bentkus_ucb(r, n, DELTA)
        clopper = beta.ppf(1 - DELTA, n * r + 1, n - n * r)
        assert clopper <= ucb <= r + math.sqrt(math.log(1 / DELTA) / (2 * n)) + 1e-9
    assert hoeffding_bentkus_ucb(0.05, 5000, DELTA) - 0.05 < 0.3 * (
        hoeffding_bentkus_ucb(0.05, 50, DELTA) - 0.05
    )


@pytest.mark.parametrize("method", ["rcps", pytest.param("krcps", marks=pytest.mark.slow)])
def test_calibrated_risk_is_controlled_over_trials(method):
    """T = 40 calibrations on n = 100 fresh oracle images each; the true risk of each λ̂ is
    measured on 1000 other images. RCPS promises P(risk > ε) ≤ δ: with T = 40 at most
    δT + 2.5·√(Tδ(1 − δ)) ≈ 8.7 of the trials may exceed ε. The intervals must also not be
    trivially wide: the mean true risk stays above ε/4 (ε/8 for K-RCPS, whose final RCPS step
    sees half the images), while the raw 8-sample 80% quantile intervals miss far more than ε."""
    prior, op = oracle_setup()
    gen = torch.Generator().manual_seed(2)
    x_t, lo_t, hi_t = exact_draws(prior, op, 1000, gen)
    raw = pixel_risk(lo_t, hi_t, x_t).mean().item()
    assert raw > 2 * EPS
    trials, risks = 40, []
    for _ in range(trials):
        x_c, lo_c, hi_c = exact_draws(prior, op, 100, gen)
        if method == "rcps":
            cal = rcps(lo_c, hi_c, x_c, epsilon=EPS, delta=DELTA)
        else:
            cal = krcps(lo_c, hi_c, x_c, epsilon=EPS, delta=DELTA, k=4, generator=gen)
        lo, hi = cal.intervals(lo_t, hi_t)
        risks.append(pixel_risk(lo, hi, x_t).mean().item())
    exceed = sum(r > EPS for r in risks)
    assert exceed <= DELTA * trials + 2.5 * math.sqrt(trials * DELTA * (1 - DELTA))
    assert sum(risks) / trials > (EPS / 4 if method == "rcps" else EPS / 8)


def test_posterior_samples_batches_k_independent_draws():
    """K draws of a sampler in one call: distinct samples, grouped by measurement (the K
    samples of y_b sit nearer y_b's exact posterior mean than the other's)."""
    prior = GaussianPrior.power_law(SIZE)
    op = blur("gaussian", sigma=1.0, noise_sigma=0.05, generator=torch.Generator().manual_seed(0))
    x = prior.sample(2, torch.Generator().manual_seed(3), dtype=torch.float32)
    y = op(x)
    samples = posterior_samples(
        y, op, prior, 6, solver="dds", steps=20, generator=torch.Generator().manual_seed(4)
    )
    assert samples.shape == (6, *x.shape)
    assert (samples[0] - samples[1]).abs().mean() > 1e-3
    mean, _ = prior.posterior(y.double(), op)
    dist = (samples.mean(0)[:, None] - mean[None]).pow(2).flatten(2).mean(2)  # (b, b')
    assert dist[0, 0] < 0.5 * dist[0, 1] and dist[1, 1] < 0.5 * dist[1, 0]


def test_calibration_arguments_fail_clearly():
    x = torch.zeros(3, 1, 4, 4)
    with pytest.raises(ValueError, match="epsilon"):
        rcps(x, x, x, epsilon=1.5)
    with pytest.raises(ValueError, match="calibration images"):
        rcps(x - 0.1, x + 0.1, x + torch.rand(3, 1, 4, 4), epsilon=0.01, delta=0.01)
    with pytest.raises(ValueError, match="coverage"):
        sample_statistics(torch.zeros(4, 1, 1, 4, 4), coverage=0)
    with pytest.raises(ValueError, match="k must"):
        posterior_samples(x, None, None, 1)
