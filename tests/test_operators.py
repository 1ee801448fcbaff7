"""Operators: adjointness of every builder, CG against dense solves, ‖A‖₂, noise, validation."""

from __future__ import annotations

import deepinv as dinv
import numpy as np
import pytest
import torch

from restorekit import operators as O

F64, F32 = torch.float64, torch.float32
SIZE = (16, 24)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def dot_test(op, x_shape, dtype, seed=0) -> float:
    """PyLops-style dot test: |<Au, v> − <u, Aᴴv>| / max(|<Au, v>|, |<u, Aᴴv>|) for random u, v."""
    g = gen(seed)
    u = torch.randn(x_shape, generator=g, dtype=dtype)
    Au = op.A(u)
    assert Au.dtype == dtype, f"operator computed in {Au.dtype}, not {dtype}"
    v = torch.randn(Au.shape, generator=g, dtype=dtype)
    Ahv = op.A_adjoint(v)
    assert Ahv.shape == u.shape
    lhs, rhs = torch.vdot(Au.flatten(), v.flatten()), torch.vdot(u.flatten(), Ahv.flatten())
    return ((lhs - rhs).abs() / torch.maximum(lhs.abs(), rhs.abs())).item()


def user_kernel(dtype=F64) -> torch.Tensor:
    k = torch.rand(5, 7, generator=gen(3), dtype=dtype)
    return k / k.sum()


# (id, builder taking dtype, image shape (B, C, H, W), float64 supported)
CASES = [
    ("gaussian-circular", lambda dt: O.blur("gaussian", sigma=1.5, dtype=dt), (2, 3) + SIZE, True),
    ("gaussian-circular-sized", lambda dt: O.blur("gaussian", img_size=SIZE, dtype=dt), (2, 1) + SIZE, True),
    ("gaussian-reflect", lambda dt: O.blur("gaussian", circular=False, dtype=dt), (2, 3) + SIZE, True),
    ("motion-circular", lambda dt: O.blur("motion", generator=gen(1), dtype=dt), (2, 1) + SIZE, True),
    (
        "motion-reflect",
        lambda dt: O.blur("motion", size=9, circular=False, generator=gen(1), dtype=dt),
        (2, 1) + SIZE,
        True,
    ),
    ("kernel-circular", lambda dt: O.blur(user_kernel(dt), dtype=dt), (2, 1) + SIZE, True),
    ("kernel-reflect", lambda dt: O.blur(user_kernel(dt), circular=False, dtype=dt), (2, 2) + SIZE, True),
    (
        "inpainting-random",
        lambda dt: O.inpainting("random", img_size=SIZE, generator=gen(), dtype=dt),
        (2, 3) + SIZE,
        True,
    ),
    (
        "inpainting-box",
        lambda dt: O.inpainting("box", img_size=SIZE, generator=gen(), dtype=dt),
        (2, 1) + SIZE,
        True,
    ),
    (
        "inpainting-tensor",
        lambda dt: O.inpainting(torch.rand(SIZE, generator=gen(2)) > 0.3, img_size=SIZE, dtype=dt),
        (2, 1) + SIZE,
        True,
    ),
    (
        "sr-x2-bicubic",
        lambda dt: O.super_resolution(2, img_size=SIZE, channels=3, dtype=dt),
        (2, 3) + SIZE,
        True,
    ),
    ("sr-x4-bicubic", lambda dt: O.super_resolution(4, img_size=SIZE, dtype=dt), (2, 1) + SIZE, True),
    (
        "sr-x2-gaussian",
        lambda dt: O.super_resolution(2, img_size=SIZE, filter="gaussian", dtype=dt),
        (2, 1) + SIZE,
        True,
    ),
    ("denoising", lambda dt: O.denoising(), (2, 1) + SIZE, True),
    ("ct-full", lambda dt: O.ct(img_size=16, dtype=dt), (2, 1, 16, 16), True),
    ("ct-sparse", lambda dt: O.ct(img_size=16, views=6, dtype=dt), (2, 1, 16, 16), True),
    ("ct-limited", lambda dt: O.ct(img_size=16, angle_range=90.0, dtype=dt), (2, 1, 16, 16), True),
    (
        "ct-disc",
        lambda dt: O.ct(img_size=16, views=6, field_of_view="disc", dtype=dt),
        (2, 1, 16, 16),
        True,
    ),
    ("mri-1coil", lambda dt: O.mri(img_size=SIZE, generator=gen(), dtype=dt), (2, 1) + SIZE, True),
    ("mri-4coils", lambda dt: O.mri(img_size=SIZE, coils=4, generator=gen(), dtype=dt), (2, 1) + SIZE, True),
    ("mri-4coils-float32", lambda dt: O.mri(img_size=SIZE, coils=4, generator=gen()), (2, 1) + SIZE, False),
]


@pytest.mark.parametrize("build, shape, f64", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_adjoint(build, shape, f64):
    dtype, tol = (F64, 1e-5) if f64 else (F32, 1e-4)
    assert dot_test(build(dtype), shape, dtype) < tol


@pytest.mark.parametrize("name", list(O.BUILDERS))
def test_registry_defaults_are_adjoint(name):
    op = O.make(name, 16, noise_sigma=0.01, generator=gen())
    assert isinstance(op, dinv.physics.LinearPhysics)
    assert dot_test(op, (2, 1, 16, 16), F32) < 1e-4
    assert O.BUILDERS[name].description


def test_dot_test_catches_a_wrong_adjoint():
    op = O.blur("motion", generator=gen(1), dtype=F64)
    op.A_adjoint = op.A  # a motion kernel is not symmetric, so A is not self-adjoint
    assert dot_test(op, (1, 1) + SIZE, F64) > 1e-3


def test_circular_blur_matches_direct_circular_convolution_at_any_size():
    k = user_kernel(F64)
    fft_op = O.blur(k, dtype=F64)
    direct = dinv.physics.Blur(filter=k[None, None], padding="circular")
    for shape in [(1, 1, 16, 16), (2, 3, 12, 20), (1, 1, 16, 16)]:
        x = torch.rand(shape, generator=gen(), dtype=F64)
        assert torch.allclose(fft_op.A(x), direct.A(x), atol=1e-12)
        assert torch.allclose(fft_op.A_adjoint(x), direct.A_adjoint(x), atol=1e-12)


def test_gaussian_kernel_is_the_sampled_gaussian():
    k = O.gaussian_kernel(2.0, dtype=F64)
    assert k.shape == (13, 13)
    r2 = torch.arange(-6, 7, dtype=F64)[:, None] ** 2 + torch.arange(-6, 7, dtype=F64)[None] ** 2
    ref = torch.exp(-r2 / 8)
    assert torch.allclose(k, ref / ref.sum(), atol=1e-12)


def test_motion_kernel_is_a_normalised_seeded_path():
    k1 = O.motion_kernel(15, generator=gen(5))
    assert k1.shape == (15, 15) and (k1 >= 0).all()
    assert abs(k1.sum().item() - 1) < 1e-6
    # a thin path, not a blob: few pixels carry the mass
    assert 10 < (k1 > 0).sum() < 100
    assert torch.equal(k1, O.motion_kernel(15, generator=gen(5)))
    assert not torch.equal(k1, O.motion_kernel(15, generator=gen(6)))


def test_masks_are_seeded():
    for kind in ("random", "box"):
        m1 = O.inpainting(kind, img_size=32, generator=gen(1)).mask
        assert torch.equal(m1, O.inpainting(kind, img_size=32, generator=gen(1)).mask)
        assert not torch.equal(m1, O.inpainting(kind, img_size=32, generator=gen(2)).mask)


def test_mask_contents():
    m = O.random_mask(64, 0.3, generator=gen())
    assert abs(m.mean().item() - 0.3) < 0.03
    b = O.box_mask((32, 40), (8, 10), generator=gen())
    assert (b == 0).sum() == 80
    rows, cols = torch.nonzero(b == 0, as_tuple=True)
    assert rows.max() - rows.min() == 7 and cols.max() - cols.min() == 9


def test_noise_is_seeded():
    x = torch.rand(1, 1, 16, 16, generator=gen())
    y1 = O.blur("gaussian", noise_sigma=0.1, generator=gen(7))(x)
    y2 = O.blur("gaussian", noise_sigma=0.1, generator=gen(7))(x)
    y3 = O.blur("gaussian", noise_sigma=0.1, generator=gen(8))(x)
    assert torch.equal(y1, y2) and not torch.equal(y1, y3)


@pytest.mark.parametrize("name", ["gaussian-blur", "sr-x2", "denoising", "inpainting-random"])
def test_gaussian_noise_std(name):
    op = O.make(name, 64, noise_sigma=0.05, generator=gen(4))
    x = torch.rand(4, 1, 64, 64, generator=gen())
    r = op(x) - op.A(x)
    if name == "inpainting-random":
        r = r[op.mask.expand_as(r) > 0]
    assert r.std().item() == pytest.approx(0.05, rel=0.03)
    assert abs(r.mean().item()) < 3e-3


def test_poisson_noise_variance():
    gain = 0.01
    op = O.denoising(noise_sigma=0.0, poisson=gain, generator=gen())
    x = torch.full((4, 1, 64, 64), 0.5)
    r = op(x) - x
    # y = gain·P(x/gain): mean x, variance gain·x
    assert r.var().item() == pytest.approx(gain * 0.5, rel=0.05)
    assert abs(r.mean().item()) < 3e-3


def test_noise_free_by_default():
    x = torch.rand(1, 1, 16, 16, generator=gen())
    op = O.blur("gaussian")
    assert torch.equal(op(x), op.A(x))
    assert O.denoising().noise_model.sigma.item() == pytest.approx(0.1)


def _dense_normal(op, shape, dtype=F64):
    n = int(torch.tensor(shape).prod())
    cols = op.A_adjoint_A(torch.eye(n, dtype=dtype).reshape(n, *shape))
    return cols.reshape(n, n).T  # column j is AᴴA e_j


def _well_posed_kernel():
    k = torch.full((3, 3), 0.05, dtype=F64)
    k[1, 1] = 0.6
    return k  # Fourier magnitude ≥ 0.2: AᴴA invertible, CG on normal equations converges


CG_OPS = {
    "blur-circular": lambda: O.blur(_well_posed_kernel(), dtype=F64),
    "blur-reflect": lambda: O.blur("gaussian", sigma=1.0, circular=False, dtype=F64),
    "inpainting": lambda: O.inpainting(img_size=8, generator=gen(), dtype=F64),
    "sr-x2": lambda: O.super_resolution(2, img_size=8, dtype=F64),
}


#: the normal equations (shift 0) only on the well-posed blur: elsewhere AᴴA is singular
CG_CASES = (
    [(name, 1.0, 2.0) for name in CG_OPS]
    + [(name, 1.0, "per-sample") for name in CG_OPS]
    + [("blur-circular", 0.0, 1.0)]
)


@pytest.mark.parametrize("name, shift, gamma", CG_CASES)
def test_cg_solve_matches_dense_solve(name, shift, gamma):
    op = CG_OPS[name]()
    shape = (1, 8, 8)
    M = _dense_normal(op, shape)
    b = torch.randn(3, *shape, generator=gen(), dtype=F64)
    gammas = (
        torch.tensor([0.5, 3.0, 20.0], dtype=F64)
        if gamma == "per-sample"
        else torch.full((3,), gamma, dtype=F64)
    )
    x = O.cg_solve(
        op, b, gamma=gammas if gamma == "per-sample" else gamma, shift=shift, max_iter=500, tol=1e-12
    )
    for i in range(3):
        ref = torch.linalg.solve(shift * torch.eye(64, dtype=F64) + gammas[i] * M, b[i].flatten())
        assert (x[i].flatten() - ref).norm() / ref.norm() < 1e-8


def test_cg_solve_warm_start_and_early_stop():
    op = O.blur("gaussian", dtype=F64)
    b = torch.randn(2, 1, 16, 16, generator=gen(), dtype=F64)
    x = O.cg_solve(op, b, gamma=5.0, max_iter=200, tol=1e-12)
    # starting at the solution, one iteration keeps it
    assert torch.allclose(O.cg_solve(op, b, gamma=5.0, x0=x, max_iter=1), x, atol=1e-10)
    # a loose tolerance stops early with a worse residual than the tight one
    loose = O.cg_solve(op, b, gamma=5.0, max_iter=200, tol=1e-2)
    res = lambda z: (z + 5.0 * op.A_adjoint_A(z) - b).norm()
    assert res(x) < 1e-9 * b.norm() < res(loose) < 1e-2 * b.norm()


def test_cg_solve_validation():
    op = O.denoising()
    b = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="gamma"):
        O.cg_solve(op, b, gamma=torch.ones(3))
    with pytest.raises(ValueError, match="gamma"):
        O.cg_solve(op, b, gamma=-1.0)
    with pytest.raises(TypeError, match="operator"):
        O.cg_solve(lambda x: x, b)
    with pytest.raises(ValueError, match="x0"):
        O.cg_solve(op, b, x0=torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize("name", ["blur-reflect", "sr-x2", "inpainting"])
def test_operator_norm_matches_largest_singular_value(name):
    op = CG_OPS[name]()
    M = _dense_normal(op, (1, 8, 8))
    ref = torch.linalg.eigvalsh((M + M.T) / 2)[-1].sqrt().item()
    assert O.operator_norm(op, (1, 8, 8), dtype=F64) == pytest.approx(ref, rel=1e-4)


def test_operator_norm_is_cached_per_shape():
    op = O.inpainting(img_size=8, generator=gen(), dtype=F64)
    n1 = O.operator_norm(op, (1, 8, 8), dtype=F64)
    assert n1 == pytest.approx(1.0, rel=1e-6)
    op.mask = op.mask * 2  # changed in place: the cached value stays
    assert O.operator_norm(op, (1, 1, 8, 8), dtype=F64) == n1
    assert O.operator_norm(op, (2, 8, 8), dtype=F64) == pytest.approx(2.0, rel=1e-6)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: O.blur("box"), ValueError, "kind"),
        (lambda: O.blur(3), ValueError, "kind"),
        (lambda: O.blur("gaussian", sigma=-1.0), ValueError, "sigma"),
        (lambda: O.blur("motion", sigma=2.0), ValueError, "sigma"),
        (lambda: O.blur(torch.ones(3, 3)), ValueError, "sum to 1"),
        (lambda: O.blur(torch.tensor([[0.6, 0.6, -0.2]])), ValueError, "non-negative"),
        (lambda: O.blur(torch.ones(1, 3, 3) / 9), ValueError, "2D"),
        (lambda: O.blur("gaussian", circular="yes"), TypeError, "circular"),
        (lambda: O.blur("gaussian", noise_sigma=-0.1), ValueError, "noise_sigma"),
        (lambda: O.blur("gaussian", noise_sigma=2.0), ValueError, "noise_sigma"),
        (lambda: O.blur("gaussian", poisson=0.0), ValueError, "poisson"),
        (lambda: O.blur("gaussian", generator=0), TypeError, "generator"),
        (
            lambda: O.blur("gaussian", noise_sigma=0.1, generator=gen(), device="cuda"),
            ValueError,
            "generator is on cpu",
        ),
        (lambda: O.blur("gaussian", dtype=torch.float16), TypeError, "dtype"),
        (
            lambda: O.blur("gaussian", sigma=3.0).A(torch.zeros(1, 1, 8, 8)),
            ValueError,
            "larger than the image",
        ),
        (lambda: O.inpainting("circle", img_size=8), ValueError, "mask"),
        (lambda: O.inpainting(torch.ones(8, 9), img_size=8), ValueError, "shape"),
        (lambda: O.inpainting(torch.full((8, 8), 0.5), img_size=8), ValueError, "binary"),
        (lambda: O.inpainting(fraction=0.0, img_size=8), ValueError, "fraction"),
        (lambda: O.inpainting("box", box_size=9, img_size=8), ValueError, "box_size"),
        (lambda: O.inpainting(img_size=(8, 8, 8)), TypeError, "img_size"),
        (lambda: O.super_resolution(3, img_size=12), ValueError, "factor"),
        (lambda: O.super_resolution(4, img_size=18), ValueError, "divisible"),
        (lambda: O.super_resolution(2, img_size=8, filter="box"), ValueError, "filter"),
        (lambda: O.denoising(noise_sigma="0.1"), TypeError, "noise_sigma"),
        (lambda: O.ct(img_size=(16, 12)), ValueError, "square"),
        (lambda: O.ct(img_size=16, views=0), ValueError, "views"),
        (lambda: O.ct(img_size=16, angle_range=270.0), ValueError, "angle_range"),
        (lambda: O.fbp(O.denoising(), torch.zeros(1, 1, 8, 8)), TypeError, "CT"),
        (lambda: O.mri(img_size=16, acceleration=0.5), ValueError, "acceleration"),
        (lambda: O.mri(img_size=16, acceleration=8, center_fraction=0.5), ValueError, "center_fraction"),
        (lambda: O.mri(img_size=16, coils=0), ValueError, "coils"),
        (lambda: O.mri(img_size=16).A(torch.zeros(1, 3, 16, 16)), ValueError, "B, 1, H, W"),
        (lambda: O.make("mri", 16, channels=3), ValueError, "channels=1"),
        (lambda: O.make("nope", 8), ValueError, "unknown operator"),
        (lambda: O.make("sr-x2", 8, sigma=2.0), TypeError, "sigma"),
    ],
)
def test_validation(call, error, words):
    with pytest.raises(error, match=words):
        call()


def _phantom(n=32) -> torch.Tensor:
    r = torch.arange(n, dtype=F64)[:, None]
    c = torch.arange(n, dtype=F64)[None]
    disk = ((r - 14) ** 2 + (c - 18) ** 2 < 64).to(F64)
    ellipse = 0.5 * ((r - 20) ** 2 / 9 + (c - 10) ** 2 / 30 < 1).to(F64)
    return (disk + ellipse)[None, None]


def test_ct_geometry_against_skimage_radon():
    import skimage.transform

    x = _phantom()
    op = O.ct(img_size=32, views=12, angle_range=90.0, dtype=F64)
    y = op.A(x)[0, 0].numpy()
    ref = skimage.transform.radon(x[0, 0].numpy(), theta=op.angles.numpy(), circle=False)
    assert y.shape == ref.shape
    # every projection integrates the whole image (no circular crop) and the scale is 1/‖R‖
    assert torch.allclose(op.A(x).sum(2) * op.operator_norm, x.sum().expand(1, 1, 12), rtol=1e-2)
    # each projection matches scikit-image's up to interpolation (a mirrored angle would not)
    for k in range(12):
        assert np.corrcoef(y[:, k], ref[:, k])[0, 1] > 0.95


def test_ct_fbp():
    x = _phantom()
    errors = {}
    for name, kw in {
        "full": dict(views=32),
        "sparse": dict(views=6),
        "limited": dict(views=32, angle_range=90.0),
    }.items():
        op = O.ct(img_size=32, dtype=F64, **kw)
        y = op.A(x)
        x_fbp = O.fbp(op, y)
        assert torch.equal(x_fbp, op.A_dagger(y))
        errors[name] = ((x_fbp - x).norm() / x.norm()).item()
    assert errors["full"] < 0.2 < errors["sparse"] < errors["limited"]


def test_ct_disc_field_of_view():
    """The disc field of view is the square one's sinogram on the cells |s| ≤ N/2 (17 of 23 at
    N = 16), rescaled to unit norm; Aᴴ back-projects it zero-padded."""
    square = O.ct(img_size=16, views=8, dtype=F64)
    disc = O.ct(img_size=16, views=8, field_of_view="disc", dtype=F64)
    x = torch.rand(1, 1, 16, 16, generator=gen(), dtype=F64)
    y = disc.A(x)
    assert y.shape == (1, 1, 17, 8) and square.A(x).shape == (1, 1, 23, 8)
    torch.testing.assert_close(y * disc.operator_norm, square.A(x)[..., 3:20, :] * square.operator_norm)
    assert O.operator_norm(disc, (1, 16, 16), dtype=F64) == pytest.approx(1.0, rel=1e-3)
    padded = torch.nn.functional.pad(y, (0, 0, 3, 3)) * square.operator_norm / disc.operator_norm
    torch.testing.assert_close(disc.A_adjoint(y), square.A_adjoint(padded))
    with pytest.raises(ValueError, match="field_of_view"):
        O.ct(img_size=16, field_of_view="circle")


def test_ct_norm_is_one():
    op = O.ct(img_size=16, views=10, dtype=F64)
    assert O.operator_norm(op, (1, 16, 16), dtype=F64) == pytest.approx(1.0, rel=1e-3)


def test_mri_mask():
    m = O.cartesian_mask((20, 64), acceleration=4, center_fraction=0.08, generator=gen())
    assert (m == m[0]).all()  # whole columns
    cols = m[0]
    assert cols.sum() == 16  # W / acceleration
    assert cols[30:35].all()  # ceil(0.08·64) = 6 columns around W/2 = 32
    assert cols[29:35].sum() == 6 or cols[29:36].sum() >= 6
    assert torch.equal(m, O.cartesian_mask((20, 64), generator=gen()))
    assert not torch.equal(m, O.cartesian_mask((20, 64), generator=gen(1)))


def test_mri_single_coil_is_masked_centred_fft():
    op = O.mri(img_size=SIZE, generator=gen(), dtype=F64)
    x = torch.rand(2, 1, *SIZE, generator=gen(), dtype=F64)
    k = torch.fft.fftshift(
        torch.fft.fft2(torch.fft.ifftshift(x[:, 0], dim=(-2, -1)), norm="ortho"), dim=(-2, -1)
    )
    m = O.cartesian_mask(SIZE, generator=gen(), dtype=F64)
    y = op.A(x)
    assert torch.allclose(y[:, 0], m * k.real, atol=1e-12)
    assert torch.allclose(y[:, 1], m * k.imag, atol=1e-12)


def test_coil_maps_normalised_and_smooth():
    s = O.coil_maps(SIZE, 4, dtype=F64)
    assert s.shape == (4,) + SIZE and s.is_complex()
    assert torch.allclose(s.abs().pow(2).sum(0), torch.ones(SIZE, dtype=F64), atol=1e-12)
    assert (s[:, 1:] - s[:, :-1]).abs().max() < 0.2 and (s[..., 1:] - s[..., :-1]).abs().max() < 0.2
    assert (s[0].abs() - s[2].abs()).abs().max() > 0.3  # coils see different regions


@pytest.mark.parametrize("coils", [1, 4])
def test_mri_fully_sampled_a_dagger_inverts(coils):
    op = O.mri(img_size=SIZE, coils=coils, acceleration=1, center_fraction=1.0, dtype=F64)
    x = torch.rand(2, 1, *SIZE, generator=gen(), dtype=F64)
    assert torch.allclose(op.A_dagger(op.A(x)), x, atol=1e-12)
    undersampled = O.mri(img_size=SIZE, coils=coils, generator=gen(), dtype=F64)
    assert (undersampled.A_dagger(undersampled.A(x)) - x).abs().max() > 0.05


@pytest.mark.parametrize("coils", [1, 4])
def test_mri_noise_only_on_sampled_kspace(coils):
    op = O.mri(img_size=32, coils=coils, noise_sigma=0.05, generator=gen(9))
    x = torch.rand(4, 1, 32, 32, generator=gen())
    r = op(x) - op.A(x)
    sampled = op.mask[0, 0, 0] > 0
    assert r[..., sampled].std().item() == pytest.approx(0.05, rel=0.05)
    assert r[..., ~sampled].abs().max() == 0


@pytest.mark.parametrize("size", [(8, 10), (7, 9)])
def test_single_coil_mri_a_dagger_is_the_pseudo_inverse(size):
    op = O.mri(img_size=size, acceleration=3, center_fraction=0.1, generator=gen(2), dtype=F64)
    n = size[0] * size[1]
    basis = torch.eye(n, dtype=F64).reshape(n, 1, *size)
    dense = op.A(basis).reshape(n, -1).T
    y = torch.randn(1, *dense.shape[:1], generator=gen(), dtype=F64)
    ref = torch.linalg.pinv(dense) @ y[0]
    assert torch.allclose(op.A_dagger(y.reshape(1, 2, *size)).flatten(), ref, atol=1e-10)
    # the mask is not conjugate-symmetric, so the zero-filled adjoint is not the pseudo-inverse
    assert not torch.allclose(op.A_adjoint(y.reshape(1, 2, *size)).flatten(), ref, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(O.BUILDERS))
def test_operators_on_cuda_match_cpu(name):
    x = torch.rand(2, 1, 16, 16, generator=gen())
    cpu = O.make(name, 16, generator=gen(1), noise_sigma=0.0)
    cuda = O.make(name, 16, generator=gen(1), noise_sigma=0.0, device="cuda")
    y = cpu.A(x)
    assert torch.allclose(cuda.A(x.cuda()).cpu(), y, atol=1e-5)
    assert torch.allclose(cuda.A_adjoint(y.cuda()).cpu(), cpu.A_adjoint(y), atol=1e-5)
    noisy = O.make(name, 16, noise_sigma=0.1, generator=torch.Generator("cuda").manual_seed(0), device="cuda")
    assert noisy(x.cuda()).device.type == "cuda"


def test_truncated_pinv_is_the_pseudo_inverse_where_cg_converges_and_tames_noise_on_blur():
    mask_op = O.inpainting(img_size=8, generator=gen(), dtype=F64)
    y = mask_op.A(torch.rand(2, 1, 8, 8, generator=gen(), dtype=F64))
    torch.testing.assert_close(O.truncated_pinv(mask_op, y), mask_op.A_dagger(y))
    blur_op = O.blur("gaussian", sigma=2.0, img_size=32, dtype=F64)
    x = torch.rand(1, 1, 32, 32, generator=gen(), dtype=F64)
    y = blur_op.A(x) + 0.01 * torch.randn(x.shape, generator=gen(), dtype=F64)
    err_exact = (blur_op.A_dagger(y) - x).norm()
    err_truncated = (O.truncated_pinv(blur_op, y) - x).norm()
    assert err_truncated < 0.1 * err_exact


def test_harmonic_fill_matches_a_sparse_direct_solve_and_is_exact_on_harmonic_images():
    """The fill solves Δu = 0 on the holes with the observed pixels as boundary values:
    (1) against scipy's sparse LU on the same discrete system (random holes, reflecting
    borders), (2) exact where the truth is discrete-harmonic (a + b·i + c·j + d·i·j) and the
    hole avoids the border, where the zero fill (A†y) is off by the image itself; observed
    pixels are kept and a channel with nothing observed is returned as is."""
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    H = W = 12
    x = torch.rand(1, 1, H, W, generator=gen(), dtype=F64)
    mask = (torch.rand(1, 1, H, W, generator=gen()) < 0.6).to(F64)
    filled = O.harmonic_fill(mask * x, mask, tol=1e-12, max_iter=500)
    # the same system assembled by hand: the Neumann 5-point Laplacian L, rows/cols of holes
    idx = np.arange(H * W).reshape(H, W)
    rows, cols = [], []
    for di, dj in ((0, 1), (1, 0)):
        a, b = idx[: H - di, : W - dj].ravel(), idx[di:, dj:].ravel()
        rows += [a, b]
        cols += [b, a]
    adj = sp.coo_matrix(
        (np.ones(sum(len(r) for r in rows)), (np.concatenate(rows), np.concatenate(cols))), shape=(H * W,) * 2
    )
    lap = (sp.diags(np.asarray(adj.sum(1)).ravel()) - adj).tocsr()
    known = mask.numpy().ravel() > 0
    holes = ~known
    u = spsolve(lap[holes][:, holes].tocsc(), -lap[holes][:, known] @ x.numpy().ravel()[known])
    expected = x.numpy().ravel().copy()
    expected[holes] = u
    np.testing.assert_allclose(filled.numpy().ravel(), expected, atol=1e-8)

    i, j = torch.meshgrid(torch.arange(16, dtype=F64), torch.arange(16, dtype=F64), indexing="ij")
    smooth = (0.2 + 0.01 * i + 0.02 * j + 0.002 * i * j)[None, None]
    box = torch.ones_like(smooth)
    box[..., 4:12, 3:13] = 0
    torch.testing.assert_close(O.harmonic_fill(box * smooth, box, tol=1e-12), smooth)
    assert ((box * smooth) - smooth).abs().max() > 0.2
    two = torch.rand(1, 2, 8, 8, generator=gen(), dtype=F64)
    half = torch.ones_like(two)
    half[:, 1] = 0
    out = O.harmonic_fill(half * two, half)
    torch.testing.assert_close(out[:, 0], two[:, 0])
    torch.testing.assert_close(out[:, 1], torch.zeros_like(two[:, 1]))
