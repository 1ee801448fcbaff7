"""Chambolle–Pock, PnP-HQS/ADMM/PGD and RED: better than A†y on every registered operator, and
their own checks (closed forms, agreement with each other and with deepinv). The contract they
share with every solver (shape, determinism, history, refusals) is tests/test_contract.py."""

import deepinv as dinv
import pytest
import torch

import restorekit as rk
from restorekit.metrics import psnr
from restorekit.operators import BUILDERS, blur, cg_solve, make
from restorekit.priors import TV, DenoiserPrior
from restorekit.solvers.pnp import PnPHQS
from restorekit.solvers.steps import data_prox

SIZE = 32
NOISE = 0.02

# fast settings: few iterations, a loose inner TV prox; quality is not the point here.
# TV weight λ = 0.01 (0.08 for pure denoising at noise 0.1); RED calls denoise(x, σ) = prox(x, σ²),
# so its TV weight is λ/σ² for the same ROF strength.


def fast(solver, op_name):
    lam = 0.08 if op_name == "denoising" else 0.01
    inner = dict(max_iter=60, tol=1e-4)
    return {
        "chambolle-pock": (dict(max_iter=100), TV(lam)),
        "pnp-hqs": (dict(max_iter=12), TV(lam, **inner)),
        "pnp-admm": (dict(max_iter=15), TV(lam, **inner)),
        "pnp-pgd": (dict(max_iter=30), TV(lam, **inner)),
        "red": (dict(max_iter=30, sigma=0.05, lam=0.5), TV(lam / 0.05**2, **inner)),
    }[solver]


SOLVER_NAMES = ["chambolle-pock", "pnp-admm", "pnp-hqs", "pnp-pgd", "red"]


def problem(name, seed=0):
    x = rk.data.load_image("camera", size=SIZE)  # held out
    g = torch.Generator().manual_seed(seed)
    op = make(name, SIZE, 1, noise_sigma=0.1 if name == "denoising" else NOISE, generator=g)
    return x, op, op(x)


def test_registered_solvers():
    assert set(SOLVER_NAMES) <= set(rk.SOLVERS)


@pytest.mark.parametrize("op_name", sorted(BUILDERS))
@pytest.mark.parametrize("solver", SOLVER_NAMES)
def test_solver_improves_on_pseudo_inverse(solver, op_name):
    x, op, y = problem(op_name)
    params, prior = fast(solver, op_name)
    start = psnr(op.A_dagger(y).clamp(0, 1), x).item()
    r = rk.solve(y, op, prior, solver=solver, x_true=x, **params)
    assert r.x.min() >= 0 and r.x.max() <= 1
    assert r.metrics.psnr.item() > start + 0.1, (
        f"{solver} on {op_name}: {r.metrics.psnr.item():.2f} dB vs start {start:.2f} dB"
    )


def test_chambolle_pock_and_admm_reach_the_same_tv_minimiser():
    x = rk.data.load_image("camera", size=SIZE).double()
    op = blur("gaussian", sigma=1.5, noise_sigma=NOISE, generator=torch.Generator().manual_seed(0))
    y = op(x)
    lam = 0.02

    def objective(u):
        return (0.5 * (op.A(u) - y).pow(2).sum() + TV(lam).value(u)).item()

    cp = rk.solve(y, op, TV(lam), solver="chambolle-pock", box=False, max_iter=1500, tol=1e-10)
    admm = rk.solve(
        y,
        op,
        TV(lam, max_iter=1000, tol=1e-6),
        solver="pnp-admm",
        rho=0.2,
        max_iter=30,
        tol=1e-10,
        clip=False,
    )
    f_cp, f_admm = objective(cp.x), objective(admm.x)
    start = objective(op.A_dagger(y).clamp(0, 1))
    print(f"objective CP {f_cp:.8f}, ADMM {f_admm:.8f}, relative gap {abs(f_cp - f_admm) / f_cp:.2e}")
    assert abs(f_cp - f_admm) / f_cp < 1e-4
    assert f_cp < 0.5 * start


def test_chambolle_pock_with_identity_is_the_tv_prox():
    x, op, y = problem("denoising")
    y = y.double()
    cp = rk.solve(y, op, TV(0.05), solver="chambolle-pock", box=False, max_iter=3000, tol=1e-9)
    prox = TV(0.05, max_iter=3000, tol=1e-9).prox(y, 1.0)
    assert (cp.x - prox).abs().max() < 1e-4


def test_space_variant_weight_in_chambolle_pock():
    x, op, y = problem("gaussian-blur")
    w = torch.full((SIZE, SIZE), 0.02)
    a = rk.solve(y, op, TV(w), solver="chambolle-pock", max_iter=200)
    b = rk.solve(y, op, TV(0.02), solver="chambolle-pock", max_iter=200)
    assert (a.x - b.x).abs().max() < 1e-6


def test_data_prox_closed_form_matches_cg():
    x, op, y = problem("gaussian-blur")
    z = torch.rand(x.shape, generator=torch.Generator().manual_seed(2))
    closed = data_prox(op, z, y, 3.0, cg_iter=1, cg_tol=1e-6)
    cg = cg_solve(op, z + 3.0 * op.A_adjoint(y), gamma=3.0, max_iter=300, tol=1e-7)
    assert (closed - cg).abs().max() < 1e-4
    # and it is the minimiser: the gradient (x − z) + γAᴴ(Ax − y) vanishes
    grad = (closed - z) + 3.0 * op.A_adjoint(op.A(closed) - y)
    assert grad.abs().max() < 1e-4


def test_hqs_schedule_is_geometric_from_sigma_max_to_noise_level():
    _, op, _ = problem("gaussian-blur")
    s = PnPHQS(max_iter=5, sigma_max=0.2).sigmas(op, NOISE)
    assert s[0].item() == pytest.approx(0.2) and s[-1].item() == pytest.approx(NOISE)
    ratios = s[1:] / s[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios))


class Smoother(torch.nn.Module):
    """A toy denoiser net(x, sigma): 3x3 box filter blended with the input by sigma."""

    def __init__(self):
        super().__init__()
        self.register_buffer("k", torch.full((1, 1, 3, 3), 1 / 9))

    def forward(self, x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).clamp(0, 1).reshape(-1, 1, 1, 1) * 5
        smooth = torch.nn.functional.conv2d(
            torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), self.k.to(x.dtype)
        )
        return (x + s * smooth) / (1 + s)


@pytest.mark.parametrize("solver", ["pnp-hqs", "pnp-admm", "pnp-pgd", "red"])
def test_denoiser_prior_path(solver):
    x, op, y = problem("inpainting-random")
    prior = DenoiserPrior(Smoother())
    params = {
        "pnp-hqs": dict(max_iter=8),
        "pnp-admm": dict(max_iter=15),
        "pnp-pgd": dict(max_iter=30),
        "red": dict(max_iter=30, lam=0.5),
    }[solver]
    r = rk.solve(y, op, prior, solver=solver, x_true=x, **params)
    assert r.metrics.psnr.item() > psnr(op.A_dagger(y), x).item() + 3
    assert r.nfe == len(r.history.data_fit)


def test_denoiser_prior_wraps_deepinv_keeps_dtype_and_no_grad():
    net = dinv.models.DnCNN(in_channels=1, out_channels=1, depth=3, nf=8, pretrained=None)
    prior = DenoiserPrior(net, name="tiny-dncnn")
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    out = prior.denoise(x, 0.1)
    assert out.dtype == torch.float64 and not out.requires_grad
    # a graph only when the input asks for one (DPS differentiates through a composite prior)
    assert prior.denoise(x.clone().requires_grad_(True), 0.1).requires_grad
    with torch.no_grad():
        ref = net(x.float(), 0.1)
    assert torch.equal(out, ref.double())
    assert "tiny-dncnn" in repr(prior)
    meta = DenoiserPrior(Smoother().to("meta"))
    with pytest.raises(ValueError, match="meta"):
        meta.denoise(torch.rand(1, 1, 8, 8), 0.1)
    with pytest.raises(TypeError, match="callable"):
        DenoiserPrior(3)


def test_clear_errors_through_solve():
    x, op, y = problem("gaussian-blur")
    with pytest.raises(TypeError, match="chambolle-pock.*TV"):
        rk.solve(y, op, DenoiserPrior(Smoother()), solver="chambolle-pock")
    with pytest.raises(TypeError, match="Denoiser"):
        rk.solve(y, op, object(), solver="pnp-admm")
    with pytest.raises(ValueError, match="NaN"):
        rk.solve(y.clone().fill_(float("nan")), op, TV(0.02), solver="chambolle-pock")
    with pytest.raises(TypeError, match="floating"):
        rk.solve((y * 255).to(torch.uint8), op, TV(0.02), solver="chambolle-pock")
    with pytest.raises(ValueError, match="batch size"):
        rk.solve(y, op, TV(0.02), solver="pnp-pgd", x_init=torch.zeros(2, 1, SIZE, SIZE))
    with pytest.raises(ValueError, match="shaped"):
        rk.solve(y, op, TV(0.02), solver="pnp-pgd", x_init=torch.zeros(SIZE, SIZE))
    with pytest.raises(ValueError, match="rho"):
        rk.solve(y, op, TV(0.02), solver="pnp-admm", rho=-1.0)
    with pytest.raises(TypeError, match="pnp-hqs"):
        rk.solve(y, op, TV(0.02), solver="pnp-hqs", not_a_parameter=1)
    with pytest.raises(ValueError, match="step"):
        rk.solve(y, op, TV(0.02), solver="chambolle-pock", step=1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_device_mismatch_and_gpu_run():
    x, op, y = problem("gaussian-blur")
    with pytest.raises(ValueError, match="cuda"):
        rk.solve(y.cuda(), op, TV(0.02), solver="chambolle-pock")
    runs = {  # solver: (prior on a device, iterations)
        "chambolle-pock": (lambda device: TV(0.02), 50),
        "pnp-hqs": (lambda device: DenoiserPrior(Smoother().to(device)), 4),
    }
    on_cpu = {s: rk.solve(y, op, prior("cpu"), s, max_iter=n).x for s, (prior, n) in runs.items()}
    op.to("cuda")  # the same operator (kernel, noise level), moved in place
    for solver, (prior, n) in runs.items():
        r = rk.solve(y.cuda(), op, prior("cuda"), solver, max_iter=n)
        assert r.x.device.type == "cuda"
        # the same iterations give the same image on both devices (float32 rounding aside)
        assert torch.allclose(r.x.cpu(), on_cpu[solver], atol=1e-4), solver


class FixedScaleQuadratic:
    """A Proximal prior with a fixed prox weight γ* = 1 (like an LPN) and a closed form: the prox
    of R(x) = (μ/2)‖x‖², "trained" as the MAP denoiser at noise ``sigma``."""

    prox_gamma = 1.0

    def __init__(self, mu: float, sigma: float):
        self.mu, self.sigma = mu, sigma

    def prox(self, x, gamma):
        if abs(float(gamma) - 1.0) > 1e-9:
            raise ValueError(f"gamma must be 1, got {gamma}")
        return x / (1 + self.mu)

    def denoise(self, x, sigma):
        return self.prox(x, 1.0)


@pytest.mark.parametrize("solver", ["pnp-admm", "pnp-hqs", "pnp-pgd"])
def test_fixed_scale_prior_solves_the_data_weighted_problem(solver):
    """With a fixed-scale prior the PnP solvers keep γ = γ* and weigh the data by λ_d: ADMM
    reaches argmin (λ_d/2)‖Ax − y‖² + R(x) with the MAP weight λ_d = σ₀²/σ_y²; HQS at its fixed
    penalty α = 1 reaches the joint minimiser of (λ_d/2)‖Ax − y‖² + ½‖x − z‖² + R(z); PGD the
    minimiser with λ_d = step/‖A‖². Checked against dense normal equations in float64."""
    n, mu, sigma0, sigma_y = 8, 0.3, 0.1, 0.05
    x = 0.3 + 0.4 * torch.rand(1, 1, n, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    op = blur("gaussian", sigma=1.0, noise_sigma=sigma_y, generator=torch.Generator().manual_seed(1))
    y = op(x)
    A = torch.stack([op.A(e.view(1, 1, n, n)).flatten() for e in torch.eye(n * n, dtype=torch.float64)], 1)
    AtA, Aty, eye = A.T @ A, A.T @ y.flatten(), torch.eye(n * n, dtype=torch.float64)
    prior = FixedScaleQuadratic(mu, sigma0)
    if solver == "pnp-admm":
        lam = sigma0**2 / sigma_y**2
        expected = torch.linalg.solve(lam * AtA + mu * eye, lam * Aty)
        got = rk.solve(y, op, prior, solver, max_iter=3000, tol=1e-13, clip=False).x
    elif solver == "pnp-hqs":
        lam = sigma0**2 / sigma_y**2  # min over z of ½‖x − z‖² + (μ/2)‖z‖² is (μ/(2(1+μ)))‖x‖²
        expected = torch.linalg.solve(lam * AtA + mu / (1 + mu) * eye, lam * Aty) / (1 + mu)
        assert 0 < expected.min() and expected.max() < 1  # HQS clips its result to [0, 1]
        got = rk.solve(y, op, prior, solver, max_iter=3000).x
    else:
        lam = 1.0 / torch.linalg.matrix_norm(A, ord=2).item() ** 2
        expected = torch.linalg.solve(lam * AtA + mu * eye, lam * Aty)
        assert 0 < expected.min() and expected.max() < 1
        got = rk.solve(y, op, prior, solver, max_iter=5000, tol=1e-14).x
    assert torch.allclose(got.flatten(), expected, atol=1e-6), (got.flatten() - expected).abs().max()
