"""Diffusion solvers (DPS, MCG, DDS, RED-Diff, DiffPIR, DDRM) certified against the exact Gaussian posterior,
their callback and parameter checks, and the deepinv adapter. The contract they share with every
solver (shape, finiteness, determinism, nfe, every operator) is tests/test_contract.py.

Certifying oracle tests: for each solver × problem (Gaussian oracle on 16² images; blur,
inpainting, ×2 super-resolution and 8-view CT — its detector over the whole square or, noiseless,
only over the inscribed disc — noisy and noiseless) the test computes the
trivial estimators itself — y where it is an image, the operator's ``A_dagger`` (the filtered
back-projection for CT), the least-squares A†y (CG to convergence), 10 truncated CG steps, the
prior mean and the solver with its own prior/guidance term switched off — and asserts that the error of
the solver's sample mean to the exact posterior mean E[x|y] is at most HALF of the best
trivial error. The Monte-Carlo error of the mean of N samples, √(Σ Var[x|y]/N) in the same
relative units, is computed from the exact posterior variance and asserted to be at most a
third of that bar, so a pass is not luck of the draw. Sample variance vs the exact posterior
variance is printed (``-s``) for the samplers; none of them promises exact variances.
"""

from __future__ import annotations

import functools
import inspect

import deepinv as dinv
import pytest
import torch
from deepinv.physics.functional.blur import gaussian_blur

from restorekit.operators import BUILDERS, ct, make, super_resolution, truncated_pinv
from restorekit.priors import DiffusionPrior, GaussianPrior
from restorekit.priors.diffusion import conv_unet
from restorekit.priors.schedule import linear_alphas_cumprod
from restorekit.solvers import SOLVERS, solve
from restorekit.solvers.diffusion_steps import pinv

DIFFUSION_SOLVERS = ("dps", "mcg", "dds", "red-diff")
SIZE = 16


@functools.cache
def oracle_problem(kind: str, sigma: float):
    """(prior, operator, y, E[x|y], Var[x|y]) for one 16² draw of the power-law oracle (float64)."""
    prior = GaussianPrior.power_law(SIZE)
    g = torch.Generator().manual_seed(1)
    x = prior.sample(1, g)
    noise = dinv.physics.GaussianNoise(sigma) if sigma else dinv.physics.ZeroNoise()
    if kind == "blur":
        op = dinv.physics.BlurFFT(
            img_size=(1, SIZE, SIZE), filter=gaussian_blur(sigma=(1.0, 1.0)).double(), noise_model=noise
        )
    elif kind == "inpainting":
        mask = (torch.rand((1, SIZE, SIZE), generator=g) > 0.5).double()
        op = dinv.physics.Inpainting(img_size=(1, SIZE, SIZE), mask=mask, noise_model=noise)
    elif kind == "sr":
        op = super_resolution(2, img_size=SIZE, dtype=torch.float64)
        op.noise_model = noise
    else:  # "ct": the whole square in the field of view; "ct-disc": only its inscribed disc
        fov = "disc" if kind == "ct-disc" else "square"
        op = ct(img_size=SIZE, views=8, dtype=torch.float64, field_of_view=fov)
        op.noise_model = noise
    clean = op.A(x)
    y = clean + sigma * torch.randn(clean.shape, generator=g, dtype=clean.dtype)
    mean, var = prior.posterior_dense(y, op)
    return prior, op, y, mean, var


def relative_error(estimate: torch.Tensor, post_mean: torch.Tensor, prior: GaussianPrior) -> float:
    """‖estimate − E[x|y]‖ / ‖E[x|y] − m‖: 0 is exact, 1 is as far as the prior mean m."""
    return ((estimate - post_mean).norm() / (post_mean - prior.mean).norm()).item()


def run(name, y, op, prior, n, **params):
    return solve(
        y.expand(n, *y.shape[1:]).contiguous(),
        op,
        prior,
        name,
        generator=torch.Generator().manual_seed(0),
        **params,
    ).x


#: The solver with its own term off: RED-Diff without its regulariser (Adam on the data term
#: from its start), and on noiseless data MCG without its manifold-constrained gradient
#: (projections only: the issue's 0.25 on inpainting). DPS without ζ samples the prior (its
#: mean is the prior mean) and DDS without the network is CG (the truncated-CG estimate), both
#: already in the list. Noisy MCG without its gradient is DDPM with relaxed projections, a
#: posterior sampler in its own right, so it is not counted as trivial there.
ABLATION = {"mcg": dict(alpha=0.0), "red-diff": dict(lam=0.0)}

SLOW = pytest.mark.slow


def known_miss(reason: str, slow: bool = True) -> list:
    """The marks of a case that fails the bar for the measured ``reason`` (a strict xfail:
    the test fails when the case starts to pass, so the list stays true)."""
    return [SLOW] * slow + [pytest.mark.xfail(strict=True, reason=reason)]


CT_REASON = (
    "measured {err} vs bar 0.056: at least 0.134 of the error lies along the four directions "
    "with singular value <= 1e-3 that the solver leaves at the prior (see the comment above)"
)
# (solver, problem, params, samples): settings are the defaults except where stated. MCG's
# relax = 30, RED-Diff's λ = 0.05 and DPS's ζ = 1 with 1000 steps were chosen on the blur
# problem (errors at other settings in the solvers' docstrings / the issue note). MCG's CT cases
# set the published α = 1: its CT default, 0, is its own ablation (chosen on photographs).
CASES = [
    pytest.param("dds", ("blur", 0.01), dict(clip_x0=False), 256, id="dds-blur-noisy"),
    pytest.param(
        "red-diff", ("blur", 0.01), dict(steps=200, lr=0.05, lam=0.05), 256, id="red-diff-blur-noisy"
    ),
    pytest.param("diffpir", ("blur", 0.01), dict(clip_x0=False), 256, id="diffpir-blur-noisy"),
    # DDRM at its defaults (20 steps, η = 0.85, η_b = 1) on this blur: 0.072 (ratio 0.55), the same
    # at 1024 samples, so a bias; more steps move it further (50: 0.110, 100: 0.151), and
    # deepinv's DDRM on the same prior gives 0.072 / 0.104 / 0.145: the sampler's, not ours.
    # On the std-2 blur of tests/test_ddrm_diffpir.py it passes.
    pytest.param(
        "ddrm",
        ("blur", 0.01),
        dict(clip_x0=False),
        256,
        marks=known_miss("measured 0.072 vs bar 0.0665 (deepinv's DDRM: 0.072)", slow=False),
        id="ddrm-blur-noisy",
    ),
    pytest.param("mcg", ("blur", 0.01), dict(steps=200), 256, marks=SLOW, id="mcg-blur-noisy"),
    pytest.param("dps", ("blur", 0.01), dict(steps=1000, zeta=1.0), 256, marks=SLOW, id="dps-blur-noisy"),
    pytest.param("dds", ("inpainting", 0.0), dict(clip_x0=False), 128, id="dds-inpainting"),
    pytest.param(
        "red-diff", ("inpainting", 0.0), dict(steps=200, lr=0.05, lam=0.05), 128, id="red-diff-inpainting"
    ),
    pytest.param("diffpir", ("inpainting", 0.0), dict(clip_x0=False), 128, id="diffpir-inpainting"),
    pytest.param("ddrm", ("inpainting", 0.0), dict(clip_x0=False), 128, id="ddrm-inpainting"),
    pytest.param("mcg", ("inpainting", 0.0), dict(steps=200), 128, marks=SLOW, id="mcg-inpainting"),
    pytest.param("dps", ("inpainting", 0.0), dict(steps=200, zeta=1.0), 128, id="dps-inpainting"),
    # Noiseless 8-view CT, square field of view: E[x|y] − m has 0.134 of its norm along the four
    # right singular vectors of A with σ ≤ 1e-3 (σ_max = 1; they are read by the rays that graze
    # the square's corners: test_noiseless_ct_hinges_on_ill_conditioned_directions),
    # fixed there by the data alone (A E[x|y] = y, amplified by 1/σ up to 5000). None of the
    # four resolves them (measured error along them 0.134-0.149: the prior mean's), so each
    # error is at least 0.134 against a bar of 0.056 (half the least-squares A†y, 0.113).
    # Resolving them takes data consistency at κ(AᴴA) = 2.5e7: CG to tol 1e-14, ~1000
    # iterations per projection (300 leave a residual of 5e-6). With exact projections DDS is
    # not the obstacle: propagating the mean of its affine steps in closed form gives 0.047
    # (50 steps, η = 0.85), 0.028 (200), 0.013 (1000), 0.017 (50 steps, η = 0). 256 samples:
    # at 128 the Monte-Carlo check (0.024 > bar/3 = 0.019) failed before the solver ran.
    pytest.param(
        "dds",
        ("ct", 0.0),
        dict(clip_x0=False),
        256,
        marks=known_miss(CT_REASON.format(err=0.192)),
        id="dds-ct",
    ),
    pytest.param(
        "red-diff",
        ("ct", 0.0),
        dict(steps=200, lr=0.05, lam=0.05),
        256,
        marks=known_miss(CT_REASON.format(err=0.205)),
        id="red-diff-ct",
    ),
    pytest.param(
        "mcg",
        ("ct", 0.0),
        dict(steps=200, cg_iter=30, alpha=1.0),
        256,
        marks=known_miss(CT_REASON.format(err=0.157)),
        id="mcg-ct",
    ),
    pytest.param(
        "dps",
        ("ct", 0.0),
        dict(steps=1000, zeta=1.0),
        256,
        marks=known_miss(CT_REASON.format(err=0.208)),
        id="dps-ct",
    ),
    # Noiseless 8-view CT with the disc field of view (ct(field_of_view="disc"): the 17 detector
    # cells whose rays cross the inscribed disc): the four corner-grazing directions are gone,
    # rank 133, σ_min/σ_max = 6.3e-3, κ(AᴴA) = 2.5e4 (test_ct_field_of_view_conditioning). The
    # bar is 0.055 (half the least-squares A†y, 0.110, all of it in the null space of A), but
    # E[x|y] − m still has 0.085 of its norm along the 12 directions with σ in (3e-3, 0.03],
    # which M = 5 CG steps leave near the prior (DDS at its default M: 0.105, 64 samples).
    # DDS with M = 30 resolves them (0.046 at 512 samples, the MC error 0.013 under bar/3).
    # RED-Diff: 0.119 here (512 samples). Settings swept at 128-256 samples (MC error
    # 0.027/0.019): 1000 steps 0.088 (λ 0.05), 0.074 (λ 0.01, lr 0.05 or 0.2), 0.073 (λ 0.002);
    # lr 0.2 or λ 0.01 at 200 steps 0.101; λ 0.25 0.182; the exact A†y start 0.135 (200 steps)
    # / 0.088 (1000); 1000 is the most steps the schedule allows. Of the best (1000 steps, λ 0.01,
    # 64 samples: 0.073), 0.054 lies in the range of A (0.046 in the σ ∈ (0.01, 0.03] band; the
    # same with lr 0.5 or Adam β₂ 0.999, so not a step-size matter) and 0.049 in its null space,
    # where only the regulariser acts: its mean gradient on a Gaussian N(m, C) is
    # λ·s²(a²C + s²I)⁻¹(μ − m), a precision that is C⁻¹ only for components with variance
    # ≫ s²/a², so its fixed point is not E[x|y] (that part alone is 0.89 of the bar).
    # DPS (ζ = 1, 1000 steps): 0.098 at 320 samples, the MC error 0.017 under bar/3 (ζ = 3:
    # 0.107 at 64); at 128 samples (0.105) 0.071 lies in the σ ∈ (0.01, 0.03] band and 0.055 in
    # the null space.
    # MCG (cg_iter = 30) ends on the measurements (0.016 in the range of A), but its projections
    # alone (α = 0, the ablation; for a Gaussian prior DDPM + exact projections nearly samples the
    # posterior) score as well: 50 steps, 64 samples, same noise: 0.061 (α = 1), 0.054 (α = 5),
    # 0.063 (α = 0); 200 steps 0.056 vs 0.062 (α = 0). That ablation sets the bar near 0.025, whose
    # MC check needs ~1400 samples (× 2 with the ablation): at 64 samples the case fails there,
    # after computing the ablation; the measured ratio to the ablation is 0.85-0.9, not 0.5.
    pytest.param(
        "dds", ("ct-disc", 0.0), dict(clip_x0=False, cg_steps=30), 512, marks=SLOW, id="dds-ct-disc"
    ),
    pytest.param(
        "red-diff",
        ("ct-disc", 0.0),
        dict(steps=200, lr=0.05, lam=0.05),
        512,
        marks=known_miss(
            "measured 0.119 (512 samples; best swept setting 0.073) vs bar 0.055: "
            "0.046 of it along the σ ∈ (0.01, 0.03] directions, and the "
            "regulariser's fixed point is not E[x|y] in the null space (see above)"
        ),
        id="red-diff-ct-disc",
    ),
    pytest.param(
        "mcg",
        ("ct-disc", 0.0),
        dict(steps=50, cg_iter=30, alpha=1.0),
        64,
        marks=known_miss(
            "MCG 0.061 vs its projections-only ablation 0.063 (64 samples): the "
            "ablation's bar needs ~1400 samples for the MC check, and the ratio is ~0.9"
        ),
        id="mcg-ct-disc",
    ),
    pytest.param(
        "dps",
        ("ct-disc", 0.0),
        dict(steps=1000, zeta=1.0),
        320,
        marks=known_miss("measured 0.098 (320 samples) vs bar 0.055"),
        id="dps-ct-disc",
    ),
    # DiffPIR (100 steps, λ = 7, ζ = 0.3 on CT) on noiseless disc CT: 0.075 at 512 samples
    # (MC error 0.013), ratio 0.69, like RED-Diff, DPS and MCG above
    pytest.param(
        "diffpir",
        ("ct-disc", 0.0),
        dict(clip_x0=False),
        512,
        marks=known_miss("measured 0.075 (512 samples) vs bar 0.055"),
        id="diffpir-ct-disc",
    ),
    # CT with σ_y = 0.01 (the settings of the blur problem, not tuned on CT)
    pytest.param("dds", ("ct", 0.01), dict(clip_x0=False), 256, marks=SLOW, id="dds-ct-noisy"),
    pytest.param(
        "red-diff", ("ct", 0.01), dict(steps=200, lr=0.05, lam=0.05), 256, marks=SLOW, id="red-diff-ct-noisy"
    ),
    pytest.param("diffpir", ("ct", 0.01), dict(clip_x0=False), 256, marks=SLOW, id="diffpir-ct-noisy"),
    pytest.param("mcg", ("ct", 0.01), dict(steps=200, alpha=1.0), 256, marks=SLOW, id="mcg-ct-noisy"),
    # measured at 256 samples (MC error 0.023): MCG 0.037 (ratio 0.25), DPS 0.068 (0.45)
    pytest.param("dps", ("ct", 0.01), dict(steps=1000, zeta=1.0), 256, marks=SLOW, id="dps-ct-noisy"),
    # ×2 super-resolution of this smooth oracle: A†y is already close (0.069), so the bar is
    # 0.035 and it takes 2048 samples to bring the Monte-Carlo error under a third of it
    pytest.param("diffpir", ("sr", 0.0), dict(clip_x0=False), 2048, marks=SLOW, id="diffpir-sr"),
    pytest.param("dds", ("sr", 0.0), dict(clip_x0=False), 2048, marks=SLOW, id="dds-sr"),
    pytest.param(
        "red-diff", ("sr", 0.0), dict(steps=200, lr=0.05, lam=0.05), 2048, marks=SLOW, id="red-diff-sr"
    ),
    # MCG on noiseless ×2 SR is at the Monte-Carlo floor (512 samples: 0.019, MC error 0.019;
    # least-squares A†y 0.069, ratio 0.28), but so nearly is its projections-only ablation
    # (α = 0: 0.029 at 512 samples, 0.0225 at 2048): DDPM + exact projections almost samples
    # this Gaussian posterior. Against that ablation the bar is 0.011 and the MC check needs
    # ~13,000 samples (2048 leave 0.0093 > bar/3), so the case fails there, before MCG runs.
    pytest.param(
        "mcg",
        ("sr", 0.0),
        dict(steps=200, cg_iter=30),
        2048,
        marks=known_miss(
            "MC check: the α = 0 ablation (0.0225) sets the bar at 0.011, which needs "
            "~13,000 samples; MCG 0.019 at 512 samples (ratio 0.28 to least-squares A†y)"
        ),
        id="mcg-sr",
    ),
    pytest.param("dps", ("sr", 0.0), dict(steps=1000, zeta=1.0), 2048, marks=SLOW, id="dps-sr"),
]


@pytest.mark.parametrize("name, problem, params, samples", CASES)
def test_solver_mean_beats_trivial_estimators_by_half(name, problem, params, samples):
    prior, op, y, post_mean, post_var = oracle_problem(*problem)
    trivial = {
        "A_dagger(y)": op.A_dagger(y),
        "least-squares A†y": pinv(op, y, cg_iter=1000, cg_tol=1e-14),
        "truncated CG": truncated_pinv(op, y),
        "prior mean": prior.mean.expand_as(post_mean),
    }
    if y.shape == post_mean.shape:
        trivial["y"] = y
    if name in ABLATION and not (name == "mcg" and problem[1] > 0):
        n = 1 if name == "red-diff" else samples  # λ = 0 leaves RED-Diff deterministic
        trivial[f"{name} without its prior term"] = run(
            name, y, op, prior, n, **{**params, **ABLATION[name]}
        ).mean(0, keepdim=True)
    errors = {k: relative_error(v, post_mean, prior) for k, v in trivial.items()}
    best = min(errors.values())
    scale = (post_mean - prior.mean).norm().item()
    mc = (post_var.sum() / samples).sqrt().item() / scale
    assert mc <= best / 6, f"{samples} samples leave a Monte-Carlo error {mc:.3f} > bar/3"
    x = run(name, y, op, prior, samples, **params)
    err = relative_error(x.mean(0, keepdim=True), post_mean, prior)
    var_ratio = (x.var(0).mean() / post_var.mean()).item()
    print(
        f"\n{name} on {problem}: error {err:.3f}, best trivial {best:.3f} "
        f"({min(errors, key=errors.get)}), ratio {err / best:.2f}, MC {mc:.3f}, "
        f"sample/posterior variance {var_ratio:.2f}"
    )
    assert err <= 0.5 * best, f"{name}: error {err:.3f} vs trivial {errors}"


def test_dense_posterior_matches_the_fourier_closed_form():
    prior, op, y, mean, var = oracle_problem("blur", 0.01)
    closed_mean, closed_var = prior.posterior(y, op)
    torch.testing.assert_close(mean, closed_mean, rtol=1e-8, atol=1e-8)
    # per-frequency variance (Fourier) and per-pixel variance (dense) have the same total
    torch.testing.assert_close(var.sum(), closed_var.sum(), rtol=1e-8, atol=0)


def ct_svd(op):
    """(U, σ, Vᵀ) of the CT operator's (cells·views, N²) matrix, rows ordered (cell, view)."""
    n = SIZE * SIZE
    A = op.A(torch.eye(n, dtype=torch.float64).reshape(n, 1, SIZE, SIZE)).reshape(n, -1).T
    return torch.linalg.svd(A, full_matrices=False)


def test_noiseless_ct_hinges_on_ill_conditioned_directions():
    """Why the noiseless square-field-of-view CT cases are strict xfails. With A = UΣVᵀ, E[x|y]
    satisfies A E[x|y] = y, so its component along a right singular vector v_i is u_iᵀy/σ_i
    whatever the prior. Along the four with σ_i ≤ 1e-3 (σ_max = 1) that component is more than
    the bar (half the best trivial error, the least-squares A†y's): an estimate that leaves them
    at the prior mean, as 10 CG steps do (and every solver there, measured 0.134-0.149), fails
    by this part alone.

    Where they come from: their left singular vectors u_i put ≥ 80 % of their energy on the two
    outermost detector cells at each end of the oblique views, rays that graze the square's
    corners (bilinear weights, row norms 0.01–0.16 of the largest). Not all of it is the
    interpolation: an exact strip-integral model of the same geometry (square pixels, 1-pixel
    cells) is as ill-conditioned (σ_min 4e-4, measured, not tested); 8 views at N = 16 are a third
    of the angular sampling N·π/2 needs. The disc field of view drops the grazing rays
    (test_ct_field_of_view_conditioning)."""
    prior, op, y, post_mean, _ = oracle_problem("ct", 0.0)
    u, s, vh = ct_svd(op)
    weak = (s > 1e-10 * s[0]) & (s <= 1e-3 * s[0])
    assert weak.sum() == 4
    cells = u[:, weak].reshape(23, 8, 4).pow(2)  # (cell, view, direction)
    assert (cells[[0, 1, 21, 22]].sum((0, 1)) > 0.8).all()
    scale = (post_mean - prior.mean).norm()
    along_weak = lambda x: ((vh[weak] @ (x - post_mean).reshape(-1)).norm() / scale).item()  # noqa: E731
    bar = 0.5 * relative_error(pinv(op, y, cg_iter=1000, cg_tol=1e-14), post_mean, prior)
    assert 0.05 < bar < 0.06  # 0.056
    assert along_weak(prior.mean.expand_as(post_mean)) > 2 * bar  # 0.134
    assert along_weak(truncated_pinv(op, y)) > 2 * bar  # CG does not reach them in 10 steps


def test_ct_field_of_view_conditioning():
    """8 views at N = 16: the square field of view has rank 158 and σ_min/σ_max = 2.0e-4
    (κ(AᴴA) = 2.5e7), the disc one rank 133 and 6.3e-3 (κ = 2.5e4), the numbers stated at the
    dds-ct-disc case."""
    for kind, rank, lowest in (("ct", 158, 2.0e-4), ("ct-disc", 133, 6.3e-3)):
        _, s, _ = ct_svd(oracle_problem(kind, 0.0)[1])
        s = s[s > 1e-10 * s[0]] / s[0]
        assert len(s) == rank
        assert s[-1].item() == pytest.approx(lowest, rel=0.05)


def test_mcg_ends_on_the_measurements_when_noiseless():
    """The last projection is exact: A x = y for inpainting (SVD) and ×2 SR (CG to tolerance;
    one CG step, the control, misses y)."""
    misfit = lambda op, x, y: ((op.A(x) - y).norm() / y.norm()).item()  # noqa: E731
    for kind in ("inpainting", "sr"):
        prior, op, y, _, _ = oracle_problem(kind, 0.0)
        assert misfit(op, run("mcg", y, op, prior, 1, steps=3, cg_iter=200, cg_tol=1e-12), y) < 1e-8
    assert misfit(op, run("mcg", y, op, prior, 1, steps=3, cg_iter=1), y) > 1e-4


def test_red_diff_without_regulariser_fits_the_data():
    """λ = 0: Adam on the data term alone must drive the residual down from Aᴴy's."""
    prior, op, y, _, _ = oracle_problem("blur", 0.01)
    x0 = op.A_adjoint(y)
    result = solve(y, op, prior, "red-diff", x_init=x0, lam=0.0, steps=100, lr=0.01)
    fit = lambda x: (op.A(x) - y).norm().item()  # noqa: E731
    assert fit(result.x) < 0.2 * fit(x0)


# ---- the contract, on a tiny random UNet, with every operator -------------------------------
def build_operator(name: str):
    """Operator ``name`` of the registry for 16×16 gray images, with a little noise (random
    masks and kernels drawn from a fixed generator)."""
    extra = {"generator": torch.Generator().manual_seed(0)}
    if "generator" not in inspect.signature(BUILDERS[name].build).parameters:
        extra = {}
    return make(name, 16, 1, noise_sigma=0.02, **extra)


@pytest.fixture(scope="module")
def tiny_prior():
    torch.manual_seed(0)  # test-only: a reproducible random network
    return DiffusionPrior(conv_unet(1, (8, 16), sample_size=16), linear_alphas_cumprod())


STEPS = 2


def test_callback_keys_and_levels(tiny_prior):
    op = build_operator("inpainting-random")
    y = op.A(torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)))
    seen = []
    solve(y, op, tiny_prior, "dds", steps=4, callback=seen.append)
    assert [s["i"] for s in seen] == [0, 1, 2, 3]
    assert set(seen[0]) == {"i", "x", "x0_hat", "sigma", "data_fit"}
    sigmas = [s["sigma"] for s in seen]
    assert sigmas[-1] is None and all(a > b for a, b in zip(sigmas[:-2], sigmas[1:-1]))


def test_needs_the_diffusion_capability():
    class OnlyDenoiser:
        def denoise(self, x, sigma):
            return x

    op = dinv.physics.Denoising(noise_model=dinv.physics.GaussianNoise(0.1))
    y = torch.rand(1, 1, 8, 8)
    for name in DIFFUSION_SOLVERS:
        with pytest.raises(TypeError, match=f"solver '{name}' needs a prior with the Diffusion"):
            solve(y, op, OnlyDenoiser(), name)


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
    with pytest.raises(ValueError, match="relax"):
        solve(y, op, tiny_prior, "mcg", relax=0.0)


# ---- deepinv adapter ------------------------------------------------------------------------
def test_deepinv_adapter_sigma_convention():
    """deepinv's DiffPIR on the oracle: its samples must have the posterior's mean and spread.
    A σ convention off by 2 (e.g. passing [−1, 1] units) halves the spread (measured 0.53)."""
    from restorekit.solvers.deepinv_adapter import PriorDenoiser, run_deepinv

    prior, op, y, post_mean, post_var = oracle_problem("blur", 0.01)
    net = PriorDenoiser(prior)
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(net(x, torch.tensor([0.1, 0.2])), prior.denoise(x, torch.tensor([0.1, 0.2])))
    assert net.calls == 1
    result = run_deepinv(
        "diffpir",
        y.expand(16, -1, -1, -1).contiguous(),
        op,
        prior,
        50,
        generator=torch.Generator().manual_seed(0),
    )
    assert result.nfe == 50 and result.x.shape == (16, 1, 16, 16)
    err = relative_error(result.x.mean(0, keepdim=True), post_mean, prior)
    ratio = result.x.std(0).mean().item() / post_var.mean().sqrt().item()
    cg_err = relative_error(truncated_pinv(op, y), post_mean, prior)
    assert err < cg_err, f"DiffPIR error {err:.3f} (measured 0.11) vs truncated CG {cg_err:.3f}"
    assert 0.75 < ratio < 1.33, f"DiffPIR sample std / posterior std = {ratio:.2f} (measured 0.97)"
    with pytest.raises(ValueError, match="method"):
        run_deepinv("ddim", y, op, prior, 10)


def test_mcg_gradient_step_per_operator_family():
    """MCG's default α is 0 on CT (its gradient costs 3.9 dB on limited-angle and 1.7 dB on
    sparse-view CT on the training images, see MCG's docstring) and the published 1.0 on the
    other families; a given
    α always wins. At α = 0 no backward pass is made, and the samples are those of the gradient
    path with α = 0 (the same draws, the same network outputs)."""
    from restorekit.solvers.base import Loop
    from restorekit.solvers.diffusion_steps import residual_norm_grad
    from restorekit.solvers.mcg import MCG

    prior = GaussianPrior.power_law(SIZE)
    g = torch.Generator().manual_seed(0)
    limited, sparse = (make(k, SIZE, 1, generator=g, noise_sigma=0.01) for k in ("ct-limited", "ct-sparse"))
    assert MCG().alpha_for(limited) == MCG().alpha_for(sparse) == 0.0
    assert MCG().alpha_for(make("gaussian-blur", SIZE, 1)) == MCG().alpha_for(make("mri", SIZE, 1)) == 1.0
    assert MCG(alpha=0.5).alpha_for(limited) == 0.5
    x = prior.sample(2, g).float()
    y = limited(x)
    results = {a: run("mcg", y, limited, prior, 2, steps=20, alpha=a) for a in (None, 0.0, 1.0)}
    assert torch.equal(results[None], results[0.0])
    assert (results[1.0] - results[0.0]).abs().max() > 1e-3  # the gradient does act at α = 1

    u = torch.randn(x.shape, generator=g)
    loop = Loop(y, limited, None, g, None, False, "mcg")
    with_grad = residual_norm_grad(prior, u, 500, y, limited, loop)
    without = residual_norm_grad(prior, u, 500, y, limited, loop, gradient=False)
    assert loop.nfe == 2  # each is one counted network evaluation
    assert torch.equal(with_grad[0], without[0]) and torch.equal(with_grad[1], without[1])
    assert with_grad[2].abs().max() > 0 and not without[2].any() and not without[0].requires_grad
