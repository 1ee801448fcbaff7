"""LPN: input convexity, prox = ∇ψ, R(x) from the conjugate, PnP use, save/load."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import restorekit as rk
from restorekit import data
from restorekit.priors.base import Denoiser, Energy, Proximal
from restorekit.priors.lpn import LPN

WEIGHTS = Path(__file__).resolve().parents[1] / "restorekit" / "weights" / "lpn-gray"


def random_lpn(seed: int, hidden: int = 8, layers: int = 4, w_scale: float = 0.3) -> LPN:
    """A small LPN whose hidden weights are large enough for the deep layers to matter."""
    torch.manual_seed(seed)
    model = LPN(hidden=hidden, layers=layers)
    g = torch.Generator().manual_seed(seed)
    model.reset_parameters(g)
    with torch.no_grad():
        for w in model.W:
            w.weight.copy_(w_scale * torch.rand(w.weight.shape, generator=g))
        model.a.copy_(torch.rand(model.a.shape, generator=g))
    return model.double()


@pytest.fixture(scope="module")
def trained():
    if not (WEIGHTS / "model.safetensors").is_file():
        pytest.fail(f"shipped LPN weights missing in {WEIGHTS} (run training/train_lpn.py)")
    return LPN.from_pretrained(WEIGHTS)


@pytest.fixture(scope="module")
def patches():
    """Held-out 32×32 crops: two from each held-out image at 128² (quality is measured there)."""
    x = data.held_out(128)
    return torch.cat([x[..., 20:52, 20:52], x[..., 70:102, 60:92]])


def test_capabilities():
    model = LPN(hidden=4, layers=2)
    assert isinstance(model, Proximal) and isinstance(model, Energy) and isinstance(model, Denoiser)


def test_hidden_weights_nonnegative_after_training_steps():
    model = LPN(hidden=8, layers=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    went_negative = False
    for _ in range(5):
        x = torch.rand(4, 1, 16, 16, generator=g)
        y = x + 0.1 * torch.randn(x.shape, generator=g)
        loss = (model(y) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        # the optimiser alone does push the constrained weights below zero ...
        went_negative |= any((w.weight < 0).any().item() for w in model.W) or (model.a < 0).any().item()
        model.clamp_weights()
        # ... and the projection restores W_k ≥ 0, a ≥ 0
        assert all((w.weight >= 0).all() for w in model.W) and (model.a >= 0).all()
    assert went_negative


def second_differences(model: LPN, seed: int, n_lines: int = 4, n_t: int = 21) -> torch.Tensor:
    """ψ(y + t v) on a grid of t along random lines; returns the second differences."""
    g = torch.Generator().manual_seed(seed + 100)
    y = torch.rand(n_lines, 1, 12, 12, generator=g, dtype=torch.float64)
    v = torch.randn(y.shape, generator=g, dtype=torch.float64)
    v = v / v.flatten(1).norm(dim=1)[:, None, None, None]
    t = torch.linspace(-2, 2, n_t, dtype=torch.float64)
    with torch.no_grad():
        vals = torch.stack([model.potential(y + ti * v) for ti in t], dim=1)  # (lines, n_t)
    return vals[:, 2:] - 2 * vals[:, 1:-1] + vals[:, :-2]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_potential_convex_along_random_lines(seed):
    d2 = second_differences(random_lpn(seed), seed)
    assert d2.min() >= -1e-9 * d2.abs().max()


def test_convexity_check_detects_negative_hidden_weights():
    """The same check fails once W_k may be negative, so the test above can fail."""
    model = random_lpn(1)
    with torch.no_grad():
        for w in model.W:
            w.weight.mul_(-0.3)
    assert second_differences(model, 1).min() < -1e-4


def test_prox_is_gradient_of_potential():
    model = random_lpn(3)
    g = torch.Generator().manual_seed(3)
    y = torch.rand(2, 1, 10, 10, generator=g, dtype=torch.float64)
    v = torch.randn(y.shape, generator=g, dtype=torch.float64)
    with torch.no_grad():  # prox must work when the caller disabled grad
        f = model.prox(y, 1.0)
    eps = 1e-5
    with torch.no_grad():
        fd = (model.potential(y + eps * v) - model.potential(y - eps * v)) / (2 * eps)
    torch.testing.assert_close(fd, (f * v).flatten(1).sum(1), rtol=1e-6, atol=1e-8)


def test_trained_prox_is_gradient_of_potential(trained, patches):
    model = LPN.from_pretrained(WEIGHTS).double()
    y = patches[:3].double() + 0.1 * torch.randn(
        patches[:3].shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    f = model.prox(y)
    for k in range(3):
        v = torch.randn(y.shape, generator=torch.Generator().manual_seed(10 + k), dtype=torch.float64)
        eps = 1e-5
        with torch.no_grad():
            fd = (model.potential(y + eps * v) - model.potential(y - eps * v)) / (2 * eps)
        torch.testing.assert_close(fd, (f * v).flatten(1).sum(1), rtol=1e-5, atol=1e-6)


def test_gamma_other_than_one_refused():
    model = LPN(hidden=4, layers=2)
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="gamma must be 1"):
        model.prox(x, 0.5)
    with pytest.raises(ValueError, match="gamma must be 1"):
        model.prox(x, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="gamma must be 1"):
        model.prox(x, 1.01)
    torch.testing.assert_close(model.prox(x, torch.ones(1)), model.prox(x, 1.0))


def test_save_load_round_trip(tmp_path):
    model = random_lpn(4).float()
    model.save_pretrained(tmp_path)
    loaded = LPN.from_pretrained(tmp_path)
    assert loaded.config == model.config
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded.prox(x), model.prox(x))
    assert torch.equal(loaded.potential(x), model.potential(x))
    with pytest.raises(ValueError, match="directory must hold"):
        LPN.from_pretrained(tmp_path / "missing")


def test_shipped_card_files():
    import json

    assert json.loads((WEIGHTS / "prior.json").read_text())["kind"] == "lpn"
    assert (WEIGHTS / "MODEL_CARD.md").is_file()


def test_trained_denoises_held_out(trained):
    """Denoising σ = 0.1 on the held-out images beats the noisy input by a clear margin."""
    from restorekit.metrics import psnr

    x = data.held_out(128)
    y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = trained.denoise(y, 0.1)
    assert (psnr(out, x) - psnr(y, x)).min() > 5.0


@pytest.mark.slow  # ~1–3 min on the shared 2-core CPU (L-BFGS conjugate solves)
def test_value_is_consistent_with_prox(trained, patches):
    """f(y) minimises ½‖z − y‖² + R(z): it beats nearby perturbations z = f(y) + δ.

    The candidates (f(y) and two smooth perturbations of norm 0.3) for two held-out crops are
    solved as one batch of conjugate problems, warm-started at y.
    """
    g = torch.Generator().manual_seed(1)
    x = patches[:2]
    y = x + 0.1 * torch.randn(x.shape, generator=g)
    p = trained.prox(y)
    delta = F.avg_pool2d(
        torch.randn((2,) + x.shape, generator=g).flatten(0, 1),
        3,
        stride=1,
        padding=1,
        count_include_pad=False,
    )
    delta = 0.3 * delta / delta.flatten(1).norm(dim=1)[:, None, None, None]
    z = torch.cat([p, p.repeat(2, 1, 1, 1) + delta])
    yy = y.repeat(3, 1, 1, 1)
    info = trained.value_with_info(z, init=yy, tol=1e-4)
    assert info.converged.all(), info.residual
    objective = (0.5 * (z - yy).flatten(1).pow(2).sum(1) + info.value).view(3, len(x))
    assert (objective[0] < objective[1:]).all(), objective


@pytest.fixture(scope="module")
def values_clean_noisy_blurred(trained, patches):
    """R on one 32×32 crop of each held-out image, its noisy (σ = 0.1) and blurred (σ_b = 1.5)
    versions: a (3, 4) tensor, rows clean / noisy / blurred."""
    x = patches[:4]
    g = torch.Generator().manual_seed(2)
    noisy = x + 0.1 * torch.randn(x.shape, generator=g)
    blurred = rk.operators.blur("gaussian", sigma=1.5, circular=False).A(x)
    info = trained.value_with_info(torch.cat([x, noisy, blurred]), tol=1e-3)
    assert info.converged.all(), info.residual
    return info.value.view(3, len(x))


@pytest.mark.slow  # ~1–3 min on the shared 2-core CPU (L-BFGS conjugate solves)
def test_value_lower_on_clean_than_noisy(values_clean_noisy_blurred):
    r_clean, r_noisy, _ = values_clean_noisy_blurred
    assert (r_clean < r_noisy).all(), (r_clean, r_noisy)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="the shipped (5,400-step CPU) LPN's R is lower on blurred "
    "than on clean crops (about -0.2545 vs -0.2523 per pixel at sigma_b=1.5): like "
    "any convex shift-invariant R (Jensen) it favours smooth images; see MODEL_CARD.md",
)
def test_value_lower_on_clean_than_blurred(values_clean_noisy_blurred):
    r_clean, _, r_blur = values_clean_noisy_blurred
    assert (r_clean < r_blur).all(), (r_clean, r_blur)


@pytest.mark.parametrize(
    "solver,params,problem",
    [
        ("pnp-admm", {"data_weight": 1.0}, "deblur"),
        ("pnp-admm", {"data_weight": 1.0}, "ct"),
        ("pnp-hqs", {}, "deblur"),
        ("pnp-hqs", {}, "ct"),
        ("pnp-pgd", {}, "deblur"),
    ],
)
def test_pnp_with_lpn_converges(trained, solver, params, problem):
    """PnP with the LPN as its proximal step (prox weight kept at the LPN's γ = 1) settles: the
    iterate change shrinks by 10×. HQS (default data weight σ₀²/σ_y²) is alternating exact
    minimisation of one objective, so it always does; ADMM is run with data weight 1, nearer the
    regime nonconvex-ADMM theory covers (λ‖A‖² ≲ ρ = 1): with the default MAP weight 100 it can
    end in a 2-cycle (see ``pnp.PnPADMM``). On deblurring ADMM and HQS also beat A†y by 1 dB."""
    from restorekit.metrics import psnr

    x = data.load_image("camera", size=64)
    g = torch.Generator().manual_seed(0)
    if problem == "deblur":
        op = rk.operators.blur("gaussian", sigma=1.5, noise_sigma=0.01, generator=g)
    else:
        op = rk.operators.ct(img_size=64, views=30, noise_sigma=0.01, generator=g)
    y = op(x)
    iterates = []
    result = rk.solve(
        y,
        op,
        trained,
        solver=solver,
        max_iter=40,
        x_true=x,
        callback=lambda d: iterates.append(d["x"].clone()),
        **params,
    )
    steps = [(b - a).norm().item() for a, b in zip(iterates, iterates[1:])]
    assert steps[-1] < 0.1 * steps[0], steps
    if solver != "pnp-pgd" and problem == "deblur":
        assert psnr(result.x, x).item() > psnr(op.A_dagger(y).clamp(0, 1), x).item() + 1.0
