"""Diffusion solvers (DPS, MCG, DDS, RED-Diff) against the exact Gaussian posterior, their
callback and parameter checks, and the deepinv adapter. The contract they share with every
solver (shape, finiteness, determinism, nfe, every operator) is tests/test_contract.py."""
from __future__ import annotations


import deepinv as dinv
import numpy as np
import pytest
import torch
from deepinv.physics.functional.blur import gaussian_blur

from restorekit.operators import make
from restorekit.priors import DiffusionPrior, GaussianPrior
from restorekit.priors.diffusion import conv_unet
from restorekit.priors.schedule import linear_alphas_cumprod
from restorekit.solvers import SOLVERS, solve

BATCH = 16  # posterior samples per test, drawn as one batch


def relative_error(estimate: torch.Tensor, post_mean: torch.Tensor, prior: GaussianPrior) -> float:
    """‖estimate − E[x|y]‖ / ‖E[x|y] − m‖: 0 is exact, 1 is as far as the prior mean m."""
    return ((estimate - post_mean).norm() / (post_mean - prior.mean).norm()).item()


@pytest.fixture(scope="module")
def blur_problem():
    """16×16 draw from the oracle, circular Gaussian blur (std 1 px), σ_y = 0.01."""
    prior = GaussianPrior.power_law(16)
    g = torch.Generator().manual_seed(1)
    x = prior.sample(1, g)
    op = dinv.physics.BlurFFT(img_size=(1, 16, 16), filter=gaussian_blur(sigma=(1.0, 1.0)).double(),
                              noise_model=dinv.physics.GaussianNoise(0.01))
    y = op.A(x) + 0.01 * torch.randn(x.shape, generator=g, dtype=x.dtype)
    mean, var = prior.posterior(y, op)
    return prior, op, y, mean, var


@pytest.fixture(scope="module")
def inpainting_problem():
    """8×8 draw, half the pixels observed without noise; posterior mean by a dense solve."""
    prior = GaussianPrior.power_law(8)
    g = torch.Generator().manual_seed(2)
    x = prior.sample(1, g)
    mask = (torch.rand((1, 8, 8), generator=g) > 0.5).double()
    op = dinv.physics.Inpainting(img_size=(1, 8, 8), mask=mask)
    y = op.A(x)
    Sig, m = prior.covariance().numpy(), prior.mean.numpy().ravel()
    obs = mask.numpy().ravel().astype(bool)
    # E[x | x_obs] = m + Σ[:, obs] Σ[obs, obs]⁻¹ (x_obs − m_obs)
    mean = m + Sig[:, obs] @ np.linalg.solve(Sig[np.ix_(obs, obs)], y.numpy().ravel()[obs] - m[obs])
    return prior, op, y, torch.from_numpy(mean).reshape(1, 1, 8, 8)


# ---- against the exact posterior -----------------------------------------------------------
# The error of the mean of 16 samples, relative to ‖E[x|y] − m‖, must be below a stated cap
# (about 1.3× what was measured when written, in brackets) and at least 2× (blur) / 2.5×
# (inpainting) below both trivial estimates, the prior mean (1 by definition) and A†y (blur 28,
# inpainting 2.4). The DPS cap catches a factor 2 on ζ (ζ/2 measured 0.46).
@pytest.mark.parametrize("name, params, cap", [
    ("dps", dict(steps=200), 0.4),                                 # [0.31]
    ("dds", dict(clip_x0=False), 0.12),                            # [0.079; 0.27 at γ = 1]
    ("red-diff", dict(steps=200, lr=0.05, init="adjoint"), 0.25),  # [0.17]
])
def test_blur_posterior_mean(blur_problem, name, params, cap):
    prior, op, y, post_mean, post_var = blur_problem
    result = solve(y.expand(BATCH, -1, -1, -1).contiguous(), op, prior, name,
                   generator=torch.Generator().manual_seed(0), **params)
    baseline = min(1.0, relative_error(op.A_dagger(y), post_mean, prior))
    err = relative_error(result.x.mean(0, keepdim=True), post_mean, prior)
    assert err < min(cap, 0.5 * baseline), f"{name}: error {err:.3f}, baseline {baseline:.3f}"
    if name == "red-diff":  # a point estimate: no spread to compare
        return
    # spread of the samples: the right order of the posterior standard deviation
    ratio = result.x.std(0).mean().item() / post_var.mean().sqrt().item()
    assert 0.5 < ratio < 2, f"{name}: sample std / posterior std = {ratio:.2f}"


@pytest.mark.parametrize("name, params, cap", [
    ("dps", dict(steps=200, zeta=0.5), 0.17),         # [0.12]
    ("mcg", dict(steps=200), 0.27),                   # [0.20]
    ("dds", dict(clip_x0=False), 0.2),                # [0.15]
    ("red-diff", dict(steps=200, lr=0.05), 0.2),      # [0.14]
])
def test_inpainting_posterior_mean(inpainting_problem, name, params, cap):
    prior, op, y, post_mean = inpainting_problem
    result = solve(y.expand(BATCH, -1, -1, -1).contiguous(), op, prior, name,
                   generator=torch.Generator().manual_seed(0), **params)
    baseline = min(1.0, relative_error(op.A_dagger(y), post_mean, prior))
    err = relative_error(result.x.mean(0, keepdim=True), post_mean, prior)
    assert err < min(cap, baseline / 2.5), f"{name}: error {err:.3f}, baseline {baseline:.3f}"
    if name in ("mcg", "dds"):  # both end on the measurements exactly (noiseless y)
        torch.testing.assert_close(op.A(result.x), y.expand_as(result.x), rtol=0, atol=1e-6)


def test_red_diff_without_regulariser_fits_the_data(blur_problem):
    """λ = 0: Adam on the data term alone must drive the residual down from A†y's."""
    prior, op, y, _, _ = blur_problem
    x0 = op.A_adjoint(y)
    result = solve(y, op, prior, "red-diff", x_init=x0, lam=0.0, steps=100, lr=0.01)
    fit = lambda x: (op.A(x) - y).norm().item()  # noqa: E731
    assert fit(result.x) < 0.2 * fit(x0)


# ---- callback and parameter checks on a tiny random UNet ------------------------------------
@pytest.fixture(scope="module")
def tiny_prior():
    torch.manual_seed(0)  # test-only: a reproducible random network
    return DiffusionPrior(conv_unet(1, (8, 16), sample_size=16), linear_alphas_cumprod())


def test_callback_keys_and_levels(tiny_prior):
    op = make("inpainting-random", 16, 1, noise_sigma=0.02, generator=torch.Generator().manual_seed(0))
    y = op.A(torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)))
    seen = []
    solve(y, op, tiny_prior, "dds", steps=4, callback=seen.append)
    assert [s["i"] for s in seen] == [0, 1, 2, 3]
    assert set(seen[0]) == {"i", "x", "x0_hat", "sigma", "data_fit"}
    sigmas = [s["sigma"] for s in seen]
    assert sigmas[-1] is None and all(a > b for a, b in zip(sigmas[:-2], sigmas[1:-1]))


def test_parameter_checks(tiny_prior):
    assert {"dps", "mcg", "dds", "red-diff"} <= set(SOLVERS)
    op = dinv.physics.Denoising(noise_model=dinv.physics.GaussianNoise(0.1))
    y = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="x_init"):
        solve(y, op, tiny_prior, "dps", steps=2, x_init=y)
    with pytest.raises(TypeError, match="dds"):
        solve(y, op, tiny_prior, "dds", cg_iters=3)
    with pytest.raises(ValueError, match="eta"):
        solve(y, op, tiny_prior, "dds", eta=1.5)
    with pytest.raises(ValueError, match="weight"):
        solve(y, op, tiny_prior, "mcg", weight=0.0)


# ---- deepinv adapter ------------------------------------------------------------------------
def test_deepinv_adapter_sigma_convention(blur_problem):
    """deepinv's DiffPIR on the oracle: its samples must have the posterior's mean and spread.
    A σ convention off by 2 (e.g. passing [−1, 1] units) halves the spread (measured 0.53)."""
    from restorekit.solvers.deepinv_adapter import PriorDenoiser, run_deepinv

    prior, op, y, post_mean, post_var = blur_problem
    net = PriorDenoiser(prior)
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(net(x, torch.tensor([0.1, 0.2])), prior.denoise(x, torch.tensor([0.1, 0.2])))
    assert net.calls == 1
    result = run_deepinv("diffpir", y.expand(BATCH, -1, -1, -1).contiguous(), op, prior, 50,
                         generator=torch.Generator().manual_seed(0))
    assert result.nfe == 50 and result.x.shape == (BATCH, 1, 16, 16)
    err = relative_error(result.x.mean(0, keepdim=True), post_mean, prior)
    ratio = result.x.std(0).mean().item() / post_var.mean().sqrt().item()
    assert err < 0.25, f"DiffPIR error {err:.3f} (measured 0.11)"
    assert 0.75 < ratio < 1.33, f"DiffPIR sample std / posterior std = {ratio:.2f} (measured 0.97)"
    with pytest.raises(ValueError, match="method"):
        run_deepinv("ddim", y, op, prior, 10)
