"""DDRM and DiffPIR against the exact Gaussian posterior, and their contract.

Certifying rule: the mean of 256 samples (Monte-Carlo error about one-sample error / 16) must
be at most half as far from the exact posterior mean E[x|y] as the best trivial estimate (the
measurement where it is an image, A†y, the truncated-CG start, the prior mean)."""

from __future__ import annotations

import deepinv as dinv
import pytest
import torch

from restorekit.operators import make, truncated_pinv
from restorekit.priors import DiffusionPrior, GaussianPrior
from restorekit.priors.diffusion import conv_unet
from restorekit.priors.schedule import linear_alphas_cumprod
from restorekit.solvers import solve
from restorekit.solvers.ddrm import spectral

BATCH = 256


def relative_error(estimate, post_mean, prior) -> float:
    """‖estimate − E[x|y]‖ / ‖E[x|y] − m‖: 0 is exact, 1 is the prior mean m."""
    return ((estimate - post_mean).norm() / (post_mean - prior.mean).norm()).item()


def best_trivial(y, op, post_mean, prior) -> float:
    """Relative error of the best of y (when image-shaped), A†y, truncated CG and the prior mean."""
    candidates = [op.A_dagger(y), truncated_pinv(op, y)]
    if y.shape == post_mean.shape:
        candidates.append(y)
    return min([1.0] + [relative_error(c, post_mean, prior) for c in candidates])


@pytest.fixture(scope="module")
def blur_problem():
    """16×16 oracle draw, circular Gaussian blur std 2 px, σ_y = 0.01: trivial best is y (0.47)."""
    prior = GaussianPrior.power_law(16)
    g = torch.Generator().manual_seed(1)
    x = prior.sample(1, g)
    op = make("gaussian-blur", 16, 1, noise_sigma=0.01, dtype=torch.float64)
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
    mean, _ = prior.posterior_dense(y, op)
    return prior, op, y, mean


def sample_mean(name, y, op, prior, **params):
    result = solve(
        y.expand(BATCH, -1, -1, -1).contiguous(),
        op,
        prior,
        name,
        generator=torch.Generator().manual_seed(0),
        clip_x0=False,
        **params,
    )
    return result


@pytest.mark.parametrize("name", ["ddrm", "diffpir"])
def test_blur_posterior_mean(blur_problem, name):
    prior, op, y, post_mean, post_var = blur_problem
    result = sample_mean(name, y, op, prior)
    err = relative_error(result.x.mean(0, keepdim=True), post_mean, prior)
    trivial = best_trivial(y, op, post_mean, prior)
    assert err <= 0.5 * trivial, f"{name}: error {err:.3f}, best trivial {trivial:.3f}"
    ratio = result.x.std(0).mean().item() / post_var.mean().sqrt().item()
    assert 0.5 < ratio < 2, f"{name}: sample std / posterior std = {ratio:.2f}"


@pytest.mark.parametrize("name", ["ddrm", "diffpir"])
def test_inpainting_posterior_mean(inpainting_problem, name):
    prior, op, y, post_mean = inpainting_problem
    result = sample_mean(name, y, op, prior)
    err = relative_error(result.x.mean(0, keepdim=True), post_mean, prior)
    trivial = best_trivial(y, op, post_mean, prior)
    assert err <= 0.5 * trivial, f"{name}: error {err:.3f}, best trivial {trivial:.3f}"
    # noiseless y: DDRM ends on the measurements, DiffPIR near them (its σ_y floor is 0.001)
    atol = 1e-6 if name == "ddrm" else 0.01
    torch.testing.assert_close(op.A(result.x), y.expand_as(result.x), rtol=0, atol=atol)


# ---- the SVD ----------------------------------------------------------------------------------
@pytest.mark.parametrize("op_name", ["gaussian-blur", "inpainting-random", "denoising", "mri"])
def test_spectral_decomposition(op_name):
    """V S ȳ reproduces Aᴴy's information: A V(ȳ on the observed part) = y (noiseless), and V is
    an isometry (V Vᴴ x = x)."""
    op = make(
        op_name,
        16,
        1,
        noise_sigma=0.0,
        **({} if op_name == "denoising" else {"generator": torch.Generator().manual_seed(0)}),
    )
    x = torch.rand(2, 1, 16, 16, dtype=torch.float32, generator=torch.Generator().manual_seed(1))
    y = op.A(x)
    sp = spectral(op, y)
    torch.testing.assert_close(sp.V(sp.V_adjoint(x)), x, rtol=0, atol=1e-5)
    xbar = torch.where(sp.s > 0, sp.ybar, sp.V_adjoint(x))
    torch.testing.assert_close(op.A(sp.V(xbar)), y, rtol=0, atol=1e-4)


def test_ddrm_refuses_operators_without_svd(tiny_prior):
    op = make("ct-sparse", 16, 1)
    y = op.A(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="diffpir"):
        solve(y, op, tiny_prior, "ddrm", steps=2)


# ---- the contract, on a tiny random UNet ------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_prior():
    torch.manual_seed(0)  # test-only: a reproducible random network
    return DiffusionPrior(conv_unet(1, (8, 16), sample_size=16), linear_alphas_cumprod())


@pytest.mark.parametrize(
    "name, op_name",
    [
        ("ddrm", "gaussian-blur"),
        ("ddrm", "inpainting-box"),
        ("ddrm", "mri"),
        ("ddrm", "denoising"),
        ("diffpir", "gaussian-blur"),
        ("diffpir", "sr-x2"),
        ("diffpir", "ct-sparse"),
        ("diffpir", "mri-multicoil"),
        ("diffpir", "inpainting-random"),
    ],
)
def test_contract(tiny_prior, name, op_name):
    extra = {} if op_name == "denoising" else {"generator": torch.Generator().manual_seed(0)}
    op = make(op_name, 16, 1, noise_sigma=0.02, **extra)
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    y = op.A(x)
    runs = [
        solve(y, op, tiny_prior, name, steps=3, x_true=x, generator=torch.Generator().manual_seed(s))
        for s in (7, 7, 8)
    ]
    r = runs[0]
    assert r.x.shape == x.shape and torch.isfinite(r.x).all()
    assert r.nfe == 3 and len(r.history.psnr) == 3
    assert torch.equal(r.x, runs[1].x) and not torch.equal(r.x, runs[2].x)


def test_parameter_checks(tiny_prior):
    op = make("denoising", 8)
    y = torch.rand(1, 1, 8, 8)
    for name, bad in [
        ("ddrm", dict(eta=1.5)),
        ("ddrm", dict(eta_b=0.0)),
        ("diffpir", dict(zeta=2.0)),
        ("diffpir", dict(lam=-1.0)),
    ]:
        with pytest.raises(ValueError, match=next(iter(bad))):
            solve(y, op, tiny_prior, name, **bad)
    with pytest.raises(ValueError, match="x_init"):
        solve(y, op, tiny_prior, "diffpir", steps=2, x_init=y)


def test_ddrm_noise_temperature_per_task(tiny_prior):
    """DDRM's default noise temperature follows the operator's task: deepinv's 1/√2 for
    inpainting, 0.85 for blur (chosen on TRAINING images, see DDRM's docstring)."""
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(3))

    def run(op, **params):
        y = op.A(x)
        return solve(
            y, op, tiny_prior, "ddrm", steps=3, generator=torch.Generator().manual_seed(5), **params
        ).x

    for op_name, own, other in [("inpainting-random", 2**-0.5, 0.85), ("gaussian-blur", 0.85, 2**-0.5)]:
        op = make(op_name, 16, 1, noise_sigma=0.02, generator=torch.Generator().manual_seed(0))
        default = run(op)
        torch.testing.assert_close(default, run(op, noise_scale=own), rtol=0, atol=1e-6)
        assert (default - run(op, noise_scale=other)).abs().max() > 1e-3, op_name


# ---- against deepinv's DDRM on real images ------------------------------------------------------
#: TRAINING images (gray) on which deepinv's DDRM was 0.38 dB ahead of ours at the paper's noise.
PHOTOS = ("page", "text", "cell", "gravel", "microaneurysms", "coffee", "chelsea", "rocket")


def ddrm_vs_deepinv_psnr(**ours) -> tuple[float, float]:
    """Mean PSNR of our DDRM (``ours`` options) and deepinv's (η = 0.85, η_b = 1) on the same
    shipped ``diffusion-gray``, 20 steps, random 50% inpainting, σ_y = 0.01, over every
    gray TRAINING image outside ``TUNING_IMAGES`` at 64², twice each (never HELD_OUT)."""
    from restorekit.evaluation import tuning_batch
    from restorekit.metrics import psnr
    from restorekit.priors import load
    from restorekit.solvers.deepinv_adapter import run_deepinv

    prior = load("diffusion-gray")
    x = tuning_batch(PHOTOS, 64, False).repeat_interleave(2, 0)
    op = make("inpainting-random", 64, 1, noise_sigma=0.01, generator=torch.Generator().manual_seed(1))
    y = op(x)
    mine = solve(y, op, prior, "ddrm", steps=20, generator=torch.Generator().manual_seed(0), **ours)
    theirs = run_deepinv(
        "ddrm", y, op, prior, 20, generator=torch.Generator().manual_seed(0), eta=0.85, etab=1.0
    )
    return psnr(mine.x.clamp(0, 1), x).mean().item(), psnr(theirs.x.clamp(0, 1), x).mean().item()


@pytest.mark.slow
def test_ddrm_level_with_deepinv_on_inpainting():
    """At its defaults our DDRM is within 0.1 dB of deepinv's or better. With the paper's full
    noise (noise_scale = 1, the old default) it was 0.38 dB behind on these images (and 1.2 dB on
    HELD_OUT): deepinv draws its noise at 1/√2 of the stated std, which our inpainting default
    now shares."""
    ours, theirs = ddrm_vs_deepinv_psnr()
    assert ours >= theirs - 0.1, f"ours {ours:.2f} dB, deepinv {theirs:.2f} dB"
