"""VP maths, the Gaussian oracle and DiffusionPrior (diffusers loading, conversions, padding)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from restorekit.priors import Diffusion, DiffusionPrior, GaussianPrior, require
from restorekit.priors import schedule as vp
from restorekit.priors.diffusion import conv_unet


def power_law_prior(h: int, w: int | None = None, channels: int = 1):
    return GaussianPrior.power_law((h, w or h), channels, variance=0.02)


def dense_covariance(prior: GaussianPrior) -> np.ndarray:
    """Σ as a dense matrix, built with numpy's FFT (independently of GaussianPrior.filter)."""
    c, h, w = prior.shape
    S = prior.spectrum.numpy()
    n = c * h * w
    cols = np.eye(n).reshape(n, c, h, w)
    return np.real(np.fft.ifft2(S * np.fft.fft2(cols, axes=(-2, -1)), axes=(-2, -1))).reshape(n, n).T


# ----- schedule -----------------------------------------------------------------------------
def test_timesteps_spacings():
    assert vp.timesteps(1000, 50) == list(range(980, -1, -20))
    assert vp.timesteps(1000, 1000) == list(range(999, -1, -1))
    assert vp.timesteps(1000, 1000, "uniform") == list(range(999, -1, -1))
    u = vp.timesteps(1000, 4, "uniform")
    assert u == [999, 666, 333, 0]
    with pytest.raises(ValueError, match="steps"):
        vp.timesteps(1000, 0)
    with pytest.raises(ValueError, match="kind"):
        vp.timesteps(1000, 10, "trailing")


def test_conversions_round_trip_float64():
    g = torch.Generator().manual_seed(0)
    u0 = torch.randn(3, 2, 5, 5, generator=g, dtype=torch.float64)
    eps = torch.randn(3, 2, 5, 5, generator=g, dtype=torch.float64)
    abar = torch.tensor([0.9, 0.3, 0.01], dtype=torch.float64).reshape(3, 1, 1, 1)
    u_t = abar.sqrt() * u0 + (1 - abar).sqrt() * eps
    torch.testing.assert_close(vp.tweedie_x0(u_t, eps, abar), u0, rtol=0, atol=1e-12)
    torch.testing.assert_close(vp.eps_from_x0(u_t, u0, abar), eps, rtol=0, atol=1e-12)
    v = abar.sqrt() * eps - (1 - abar).sqrt() * u0  # definition of v (Salimans & Ho 2022)
    torch.testing.assert_close(vp.v_from_eps(u_t, eps, abar), v, rtol=0, atol=1e-12)
    torch.testing.assert_close(vp.eps_from_v(u_t, v, abar), eps, rtol=0, atol=1e-12)
    assert vp.sigma_of(0.2) == pytest.approx(2.0)


def test_timestep_for_sigma_and_ddpm_last_step():
    ac = vp.linear_alphas_cumprod()
    sig = vp.sigma_of(ac)
    t = vp.timestep_for_sigma(ac, torch.stack([sig[0], sig[417], sig[999]]))
    assert t.tolist() == [0, 417, 999]
    x0, u = torch.randn(2, 1, 3, 3, dtype=torch.float64), torch.randn(2, 1, 3, 3, dtype=torch.float64)
    assert torch.equal(vp.ddpm_step(u, x0, 0.3, 1.0, torch.randn_like(u)), x0)
    # ddpm_step's mean and variance are those of q(u_prev | u_t, u0): check by moments
    g = torch.Generator().manual_seed(1)
    abar_t, abar_p = 0.4, 0.6
    u0 = torch.full((20000, 1, 1, 1), 0.3, dtype=torch.float64)
    u_p = abar_p**0.5 * u0 + (1 - abar_p) ** 0.5 * torch.randn(u0.shape, generator=g, dtype=torch.float64)
    u_t = (abar_t / abar_p) ** 0.5 * u_p + (1 - abar_t / abar_p) ** 0.5 * torch.randn(
        u0.shape, generator=g, dtype=torch.float64
    )
    # regress u_p on u_t: the posterior is linear-Gaussian, so residual moments must match
    step = vp.ddpm_step(u_t, u0, abar_t, abar_p, torch.zeros_like(u_t))
    resid = u_p - step
    var = (1 - abar_p) / (1 - abar_t) * (1 - abar_t / abar_p)
    assert abs(resid.mean().item()) < 0.01
    assert resid.var().item() == pytest.approx(var, rel=0.05)


# ----- Gaussian oracle ----------------------------------------------------------------------
def test_oracle_denoise_is_the_wiener_filter():
    prior = power_law_prior(8, 6, channels=2)
    g = torch.Generator().manual_seed(0)
    x = prior.sample(3, g) + 0.1 * torch.randn(3, 2, 8, 6, generator=g, dtype=torch.float64)
    sig = torch.tensor([0.05, 0.1, 0.3], dtype=torch.float64)
    out = prior.denoise(x, sig)
    # numpy, dense: m + Σ(Σ + σ²I)⁻¹(x − m)
    Sig = dense_covariance(prior)
    m = prior.mean.numpy().ravel()
    for b in range(3):
        want = m + Sig @ np.linalg.solve(Sig + sig[b].item() ** 2 * np.eye(len(m)), x[b].numpy().ravel() - m)
        np.testing.assert_allclose(out[b].numpy().ravel(), want, rtol=0, atol=1e-10)


def test_oracle_eps_is_exact_tweedie():
    prior = power_law_prior(4, 4)
    Sig_u = 4 * dense_covariance(prior)  # u = 2x − 1 has covariance 4Σ
    mu = 2 * prior.mean.numpy().ravel() - 1
    g = torch.Generator().manual_seed(2)
    u_t = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    for t in (0, 250, 999):
        abar = prior.alphas_cumprod[t].item()
        a, s2 = abar**0.5, 1 - abar
        pred = prior.predict(u_t, t)
        for b in range(2):
            # E[u0 | u_t] = μ + aC(a²C + s²I)⁻¹(u_t − aμ)
            want = mu + a * Sig_u @ np.linalg.solve(
                abar * Sig_u + s2 * np.eye(16), u_t[b].numpy().ravel() - a * mu
            )
            np.testing.assert_allclose(pred.x0[b].numpy().ravel(), want, rtol=0, atol=1e-9)
        torch.testing.assert_close(pred.eps, (u_t - a * pred.x0) / s2**0.5, rtol=0, atol=1e-12)
        torch.testing.assert_close(prior.model_eps(u_t, t), pred.eps, rtol=0, atol=0)


def test_oracle_sample_value_and_posterior():
    prior = power_law_prior(8)
    x = prior.sample(4000, torch.Generator().manual_seed(3))
    cov = np.cov(x.reshape(4000, -1).numpy().T)
    assert np.abs(cov - dense_covariance(prior)).max() < 0.1 * prior.spectrum.mean().item() * 3
    # value is ½(x − m)ᵀΣ⁻¹(x − m)
    Sig = dense_covariance(prior)
    r = (x[:2] - prior.mean).reshape(2, -1).numpy()
    want = 0.5 * np.einsum("bi,bi->b", r, np.linalg.solve(Sig, r.T).T)
    np.testing.assert_allclose(prior.value(x[:2]).numpy(), want, rtol=1e-8)
    assert isinstance(prior, Diffusion)
    np.testing.assert_allclose(prior.covariance().numpy(), Sig, rtol=0, atol=1e-14)


def test_oracle_posterior_matches_dense_solve():
    import deepinv as dinv
    from deepinv.physics.functional.blur import gaussian_blur

    prior = power_law_prior(8)
    op = dinv.physics.BlurFFT(
        img_size=(1, 8, 8),
        filter=gaussian_blur(sigma=(1.0, 1.0)).double(),
        noise_model=dinv.physics.GaussianNoise(0.05),
    )
    x = prior.sample(1, torch.Generator().manual_seed(4))
    y = op.A(x) + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=x.dtype)
    mean, var = prior.posterior(y, op)
    A = op.A(torch.eye(64, dtype=torch.float64).reshape(64, 1, 8, 8)).reshape(64, 64).T.numpy()
    Sig, m = dense_covariance(prior), prior.mean.numpy().ravel()
    want = m + Sig @ A.T @ np.linalg.solve(A @ Sig @ A.T + 0.05**2 * np.eye(64), y.numpy().ravel() - A @ m)
    np.testing.assert_allclose(
        mean.numpy().ravel(), want, rtol=0, atol=1e-8
    )  # BlurFFT keeps a float32 filter
    post_cov = Sig - Sig @ A.T @ np.linalg.solve(A @ Sig @ A.T + 0.05**2 * np.eye(64), A @ Sig)
    assert var.mean().item() == pytest.approx(np.trace(post_cov) / 64, rel=1e-6)
    mask_op = dinv.physics.Inpainting(img_size=(1, 8, 8), mask=0.5)
    with pytest.raises(ValueError, match="not diagonal in the Fourier"):
        prior.posterior(mask_op.A(x), mask_op)


# ----- DiffusionPrior -----------------------------------------------------------------------
class OracleNet(torch.nn.Module):
    """A 'UNet' that returns the Gaussian oracle's exact ε, v or x0 prediction."""

    def __init__(self, oracle: GaussianPrior, kind: str):
        super().__init__()
        self.oracle, self.kind = oracle, kind
        self.config = SimpleNamespace(down_block_types=("DownBlock2D",), num_class_embeds=None)

    def forward(self, u, t, class_labels=None):
        eps = self.oracle.model_eps(u, t)
        abar = vp.abar_at(self.oracle.alphas_cumprod, t, u)
        out = {
            "epsilon": eps,
            "v_prediction": vp.v_from_eps(u, eps, abar),
            "sample": vp.tweedie_x0(u, eps, abar),
        }[self.kind]
        return SimpleNamespace(sample=out)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_prediction_types_convert_to_the_exact_eps(kind):
    oracle = power_law_prior(8)
    prior = DiffusionPrior(OracleNet(oracle, kind), oracle.alphas_cumprod, prediction_type=kind)
    u = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.tensor([10, 500, 990])
    torch.testing.assert_close(prior.model_eps(u, t), oracle.model_eps(u, t), rtol=0, atol=1e-10)
    torch.testing.assert_close(prior.predict(u, 500).x0, oracle.predict(u, 500).x0, rtol=0, atol=1e-10)
    # as a denoiser at a level that is exactly on the schedule, it is the Wiener filter
    x = oracle.sample(2, torch.Generator().manual_seed(1))
    sigma = float(vp.sigma_of(oracle.alphas_cumprod[300])) / 2
    torch.testing.assert_close(prior.denoise(x, sigma), oracle.denoise(x, sigma), rtol=0, atol=1e-10)


def tiny_unet(channels: int = 1, num_class_embeds: int | None = None):
    torch.manual_seed(0)  # test-only: initialise the random network reproducibly
    return conv_unet(channels, (8, 16), num_class_embeds=num_class_embeds, sample_size=16)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("layout", ["pipeline", "flat"])
def test_from_pretrained_round_trip(tmp_path, channels, layout):
    from diffusers import DDPMScheduler

    unet = tiny_unet(channels)
    sched = DDPMScheduler(num_train_timesteps=1000, prediction_type="v_prediction")
    if layout == "pipeline":
        unet.save_pretrained(tmp_path / "unet")
        sched.save_pretrained(tmp_path / "scheduler")
    else:
        unet.save_pretrained(tmp_path)
        sched.save_pretrained(tmp_path)
    loaded = DiffusionPrior.from_pretrained(str(tmp_path))
    original = DiffusionPrior(unet, sched)
    assert loaded.prediction_type == "v_prediction"
    torch.testing.assert_close(loaded.alphas_cumprod, sched.alphas_cumprod.double(), rtol=0, atol=0)
    u = torch.randn(2, channels, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.model_eps(u, 700), original.model_eps(u, 700), rtol=0, atol=0)
    # v_prediction: ε̂ = s·u + a·v̂ from the raw network output
    raw = unet(u, torch.tensor([700, 700])).sample
    abar = sched.alphas_cumprod[700].item()
    torch.testing.assert_close(loaded.model_eps(u, 700), (1 - abar) ** 0.5 * u + abar**0.5 * raw)
    x = torch.rand(2, channels, 16, 16, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(loaded.denoise(x, 0.1)).all()


def test_odd_sizes_are_padded_and_cropped():
    prior = DiffusionPrior(tiny_unet(1), vp.linear_alphas_cumprod())
    assert prior.size_multiple == 2
    u = torch.randn(2, 1, 13, 17, generator=torch.Generator().manual_seed(0))
    eps = prior.model_eps(u, 400)
    assert eps.shape == u.shape
    padded = torch.nn.functional.pad(u, (0, 1, 0, 1), mode="reflect")
    want = prior.unet(padded, torch.tensor([400, 400])).sample[..., :13, :17]
    torch.testing.assert_close(eps, want, rtol=0, atol=0)
    x = torch.rand(1, 1, 13, 17, generator=torch.Generator().manual_seed(1))
    assert prior.denoise(x, 0.05).shape == x.shape


def test_class_conditional_convention(tmp_path):
    from diffusers import DDPMScheduler

    unet = tiny_unet(1, num_class_embeds=4)
    with torch.no_grad():  # random init could make labels indistinguishable; spread the embeddings
        unet.class_embedding.weight.mul_(10)
    unet.save_pretrained(tmp_path / "unet")
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(tmp_path / "scheduler")
    prior = DiffusionPrior.from_pretrained(str(tmp_path))
    assert (prior.num_classes, prior.null_class) == (3, 3)
    u = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    null = prior.predict(u, 500).eps
    torch.testing.assert_close(null, prior.predict(u, 500, cond=3).eps, rtol=0, atol=0)
    c0 = prior.predict(u, 500, cond=0).eps
    assert (c0 - null).abs().max() > 1e-3
    mixed = prior.predict(u, 500, cond=torch.tensor([0, 3])).eps
    torch.testing.assert_close(mixed, torch.cat([c0[:1], null[1:]]), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="class labels"):
        prior.predict(u, 500, cond=4)
    unconditional = DiffusionPrior(tiny_unet(1), vp.linear_alphas_cumprod())
    assert unconditional.num_classes is None and unconditional.null_class is None
    with pytest.raises(ValueError, match="cond must be None"):
        unconditional.predict(u, 500, cond=1)


def test_keeps_input_dtype_and_grad_only_when_needed():
    prior = DiffusionPrior(tiny_unet(1).to(torch.bfloat16), vp.linear_alphas_cumprod())
    u = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    ref = DiffusionPrior(tiny_unet(1), vp.linear_alphas_cumprod()).model_eps(u, 300)
    out = prior.model_eps(u, 300)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.1 * ref.abs().max()  # bf16 is close, not equal
    assert not prior.model_eps(u, 300).requires_grad  # no graph without a grad-requiring input
    ug = u.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(
        DiffusionPrior(tiny_unet(1), vp.linear_alphas_cumprod()).predict(ug, 300).x0.sum(), ug
    )
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_capabilities():
    prior = DiffusionPrior(tiny_unet(1), vp.linear_alphas_cumprod())
    require(prior, Diffusion, "dps")
    assert prior.num_train_timesteps == 1000
    x = torch.rand(1, 1, 8, 8)
    torch.testing.assert_close(prior.to_image(prior.to_model(x)), x)
    with pytest.raises(ValueError, match="prediction_type"):
        DiffusionPrior(tiny_unet(1), vp.linear_alphas_cumprod(), prediction_type="flow")
