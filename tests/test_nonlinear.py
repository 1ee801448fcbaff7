"""Non-linear operators: the phase-retrieval forward model, its contract with the solvers, and
Fienup's HIO/ER."""

import pytest
import torch

import restorekit as rk
from restorekit.operators import PhaseRetrieval, SpatiallyVaryingBlur, fienup, linear_ramp_weights
from restorekit.operators.blur import gaussian_kernel
from restorekit.operators.nonlinear import register_solutions, relative_residual
from restorekit.priors import TV, GaussianPrior


def test_forward_is_the_oversampled_fourier_magnitude_and_differentiable():
    op = PhaseRetrieval(6, oversampling=2.0)
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    padded = torch.zeros(2, 1, 12, 12, dtype=torch.float64)
    padded[..., :6, :6] = x
    torch.testing.assert_close(op.A(x), torch.fft.fft2(padded).abs() / 12)
    # Parseval: the orthonormal DFT keeps the energy
    torch.testing.assert_close(op.A(x).pow(2).sum((1, 2, 3)), x.pow(2).sum((1, 2, 3)))
    assert torch.autograd.gradcheck(lambda v: op.A(v + 0.1), (x.requires_grad_(True),))
    # |F x| cannot tell x from its 180° rotation on the support
    torch.testing.assert_close(op.A(torch.flip(x, (-2, -1))), op.A(x))


def test_linear_solvers_refuse_and_dps_runs():
    op = PhaseRetrieval(16, oversampling=2.0)
    x = GaussianPrior.power_law(16).sample(1, torch.Generator().manual_seed(0), dtype=torch.float32)
    y = op.A(x.clamp(0, 1))
    with pytest.raises(TypeError, match="non-linear"):
        rk.solve(y, op, TV(0.01), "pnp-admm", max_iter=2)
    with pytest.raises(TypeError, match="non-linear"):
        rk.solve(y, op, GaussianPrior.power_law(16), "dds", steps=2)
    res = rk.solve(y, op, GaussianPrior.power_law(16), "dps", steps=5, zeta=1.0)
    assert res.x.shape == x.shape and torch.isfinite(res.x).all()


def test_auto_tiling_reads_a_nonlinear_operators_image_shape():
    """solve's ``tile="auto"`` sizes the image of a non-linear operator from ``img_shape`` (it
    has no Aᴴ): a network prior stays whole at 32² and is tiled above 512 px."""
    from restorekit.tiling import TiledDiffusion, for_solve

    prior = rk.priors.load("diffusion-gray")
    small, large = PhaseRetrieval(32, oversampling=2.0), PhaseRetrieval(520, oversampling=1.0)
    assert for_solve(prior, small, torch.zeros(1, 1, 64, 64), "auto") is prior
    assert isinstance(for_solve(prior, large, torch.zeros(1, 1, 520, 520), "auto"), TiledDiffusion)


def test_hio_then_er_retrieves_a_simple_image():
    """Noiseless, oversampling 2, a 16² phantom: HIO (β = 0.9) with an ER step every 20
    iterations, best of 4 random starts by measurement residual; the selected one fits the
    magnitudes to 1e-2 and (up to the 180° rotation) matches the image to 25 dB, while the
    random starts themselves fit to no better than 0.3."""
    x = rk.data.load_image("shepp_logan_phantom", size=16).double()
    op = PhaseRetrieval(16, oversampling=2.0)
    y = op.A(x).expand(4, -1, -1, -1)
    gen = torch.Generator().manual_seed(0)
    start = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert relative_residual(start, y, op).min() > 0.3
    est = fienup(y, op, iters=600, beta=0.9, er_every=20, generator=gen)
    res = relative_residual(est, y, op)
    best = est[res.argmin()][None]
    assert res.min() < 1e-2
    assert rk.metrics.psnr(register_solutions(best.clamp(0, 1), x), x).item() > 25


def test_spatially_varying_blur_adjoint_and_limits():
    """Dot test ⟨Au, v⟩ = ⟨u, Aᴴv⟩; one kernel is a plain (zero-padded) blur; at the left edge
    the ramp weights select the first kernel only; and PnP-ADMM restores through it."""
    ks = torch.stack([gaussian_kernel(s, 9) for s in (0.5, 1.5, 3.0)]).double()
    op = SpatiallyVaryingBlur(ks, linear_ramp_weights(3, 16).double())
    gen = torch.Generator().manual_seed(0)
    u, v = (torch.randn(2, 1, 16, 16, generator=gen, dtype=torch.float64) for _ in range(2))
    lhs, rhs = (op.A(u) * v).sum(), (u * op.A_adjoint(v)).sum()
    assert abs(lhs - rhs) < 1e-12 * abs(lhs)
    single = SpatiallyVaryingBlur(ks[1:2], torch.ones(1, 16, 16, dtype=torch.float64))
    plain = torch.nn.functional.conv2d(u, ks[1][None, None], padding=4)
    torch.testing.assert_close(single.A(u), plain)
    first = torch.nn.functional.conv2d(u, ks[0][None, None], padding=4)
    torch.testing.assert_close(op.A(u)[..., 0], first[..., 0])
    x = rk.data.load_image("camera", size=32)
    op32 = SpatiallyVaryingBlur(
        ks.float(), linear_ramp_weights(3, 32), noise_sigma=0.01, generator=torch.Generator().manual_seed(1)
    )
    y = op32(x)
    res = rk.solve(y, op32, TV(0.005, max_iter=100, tol=1e-4), "pnp-admm", max_iter=30, x_true=x)
    assert res.metrics.psnr.item() > rk.metrics.psnr(y.clamp(0, 1), x).item() + 1
