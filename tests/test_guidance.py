"""Guidance wrappers (CFG, CFG++, APG) and DDIM sampling, on a tiny random conditional UNet.

References: the wrapped model's own conditional/unconditional outputs, diffusers'
DDIMScheduler for the sampling loop, and diffusers' ``normalized_guidance`` for APG.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel
from diffusers.guiders.adaptive_projected_guidance import MomentumBuffer, normalized_guidance
from diffusers.models.unets.unet_2d import UNet2DOutput

import restorekit
from restorekit.priors.base import Denoiser, Diffusion
from restorekit.priors.diffusion import DiffusionPrior
from restorekit.priors.guidance import APG, CFG, CFGpp

NUM_CLASSES, NULL = 5, 4  # class embeddings: 4 classes + the null label, as shipped
SHAPE = (2, 1, 16, 16)


class _GaussianPlusNet(torch.nn.Module):
    """ε-model: the exact ε of data u0 ~ N(0, c²·I), plus a small random class-conditional UNet.

    The Gaussian part keeps sampled images in range (a random UNet alone gives |û0| ≫ 1), the
    UNet part makes the classes differ.
    """

    def __init__(self, unet, alphas_cumprod, c=0.4, weight=0.1):
        super().__init__()
        self.unet, self.config, self.c, self.weight = unet, unet.config, c, weight
        self.register_buffer("abar", alphas_cumprod.float())

    def forward(self, sample, timestep, class_labels=None):
        abar = self.abar[timestep].reshape(-1, 1, 1, 1)
        eps = (1 - abar).sqrt() * sample / (abar * self.c**2 + 1 - abar)
        return UNet2DOutput(eps + self.weight * self.unet(sample, timestep, class_labels).sample)


def _unet(num_class_embeds):
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=16,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(16, 32),
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        num_class_embeds=num_class_embeds,
    )


@pytest.fixture(scope="module")
def scheduler():
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        clip_sample=False,
        set_alpha_to_one=True,
        steps_offset=0,
        timestep_spacing="leading",
    )


@pytest.fixture(scope="module")
def prior(scheduler):
    ac = scheduler.alphas_cumprod.double()
    return DiffusionPrior(_GaussianPlusNet(_unet(NUM_CLASSES), ac), scheduler)


def _noisy(prior, t, seed=1):
    g = torch.Generator().manual_seed(seed)
    u0 = torch.rand(SHAPE, generator=g) * 2 - 1
    abar = prior.alphas_cumprod[t]
    return (abar.sqrt() * u0 + (1 - abar).sqrt() * torch.randn(SHAPE, generator=g)).float()


def _eps(prior, u, t, label):
    with torch.no_grad():
        return prior.model_eps(u, t, torch.full((u.shape[0],), label, dtype=torch.long))


def _tweedie(prior, u, eps, t):
    abar = prior.alphas_cumprod[t]
    return (u - (1 - abar).sqrt() * eps) / abar.sqrt()


def _close(a, b, tol=1e-5):
    """Max error relative to the reference's largest magnitude (x0 at high t is ~1/a_t large)."""
    err = ((a - b).abs().max() / b.abs().max().clamp_min(1.0)).item()
    return err <= tol, err


# -- CFG and CFG++ ---------------------------------------------------------------------------


@pytest.mark.parametrize("t", [900, 400, 20])
def test_cfg_scale_one_is_conditional_and_zero_unconditional(prior, t):
    u = _noisy(prior, t)
    eps_c, eps_u = _eps(prior, u, t, 2), _eps(prior, u, t, NULL)
    assert (eps_c - eps_u).abs().max() > 0.05  # the classes differ: the test can fail
    with torch.no_grad():
        for scale, ref in ((1.0, eps_c), (0.0, eps_u), (3.0, eps_u + 3 * (eps_c - eps_u))):
            p = CFG(prior, 2, scale).predict(u, t)
            ok, err = _close(p.eps, ref)
            assert ok, (scale, err)
            assert torch.equal(p.eps_renoise, p.eps)
            ok, err = _close(p.x0, _tweedie(prior, u, ref, t))
            assert ok, (scale, err)


def test_guidance_batches_cond_and_uncond_into_one_call(prior):
    calls = []
    inner = prior.model_eps

    def counting(u, t, labels):
        calls.append(labels.tolist())
        return inner(u, t, labels)

    prior.model_eps = counting
    try:
        with torch.no_grad():
            for w in (CFG(prior, 1, 2.0), CFGpp(prior, 1, 0.5), APG(prior, 1, 2.0)):
                w.predict(_noisy(prior, 500), 500)
    finally:
        del prior.model_eps
    assert calls == [[1, 1, NULL, NULL]] * 3


@pytest.mark.parametrize("t", [900, 100])
def test_cfgpp_guides_x0_and_renoises_with_unconditional_eps(prior, t):
    u = _noisy(prior, t)
    eps_c, eps_u = _eps(prior, u, t, 0), _eps(prior, u, t, NULL)
    with torch.no_grad():
        p = CFGpp(prior, 0, 0.6).predict(u, t)
    eps_lam = eps_u + 0.6 * (eps_c - eps_u)
    for got, ref in ((p.eps_renoise, eps_u), (p.eps, eps_lam), (p.x0, _tweedie(prior, u, eps_lam, t))):
        ok, err = _close(got, ref)
        assert ok, err
    assert (p.eps - p.eps_renoise).abs().max() > 0.01


def _diffusers_ddim(prior, scheduler, steps, eps_fn, generator, clip=False):
    """Reference DDIM loop through diffusers' scheduler; returns the last x0 in [0, 1]."""
    scheduler = DDIMScheduler.from_config(scheduler.config, clip_sample=clip)
    scheduler.set_timesteps(steps)
    u = torch.randn(SHAPE, generator=generator)
    ts = scheduler.timesteps
    with torch.no_grad():
        for t in ts:
            eps = eps_fn(u, int(t))
            out = scheduler.step(eps, t, u, eta=0.0)
            u = out.prev_sample
    return ((out.pred_original_sample + 1) / 2).clamp(0, 1)


def test_sample_matches_diffusers_ddim_with_cfg(prior, scheduler):
    wrapped = CFG(prior, 3, 2.5)

    def cfg_eps(u, t):
        eps_c, eps_u = _eps(prior, u, t, 3), _eps(prior, u, t, NULL)
        return eps_u + 2.5 * (eps_c - eps_u)

    got = {}
    for clip in (False, True):
        ref = _diffusers_ddim(prior, scheduler, 8, cfg_eps, torch.Generator().manual_seed(7), clip)
        got[clip] = restorekit.sample(
            wrapped, SHAPE, steps=8, clip=clip, generator=torch.Generator().manual_seed(7)
        )
        ok, err = _close(got[clip], ref, 1e-4)
        assert ok, (clip, err)
        assert ((ref > 0) & (ref < 1)).float().mean() > 0.9  # in range: no clipping hides errors
    assert (got[False] - got[True]).abs().max() > 1e-3  # the clip was active


def test_sample_with_noise_is_deterministic_per_generator(prior):
    wrapped = APG(prior, 1, 3.0)
    draw = [
        restorekit.sample(wrapped, SHAPE, steps=5, eta=0.5, generator=torch.Generator().manual_seed(s))
        for s in (1, 1, 2)
    ]
    assert torch.equal(draw[0], draw[1])
    assert (draw[0] - draw[2]).abs().max() > 0.01
    assert torch.isfinite(draw[0]).all()


def test_cfgpp_lambda_zero_is_unconditional_ddim(prior, scheduler):
    ref = _diffusers_ddim(
        prior, scheduler, 10, lambda u, t: _eps(prior, u, t, NULL), torch.Generator().manual_seed(3)
    )
    got = restorekit.sample(
        CFGpp(prior, 1, 0.0), SHAPE, steps=10, clip=False, generator=torch.Generator().manual_seed(3)
    )
    ok, err = _close(got, ref, 1e-4)
    assert ok, err
    plain = restorekit.sample(prior, SHAPE, steps=10, clip=False, generator=torch.Generator().manual_seed(3))
    ok, err = _close(got, plain, 1e-5)  # the prior's own null-class sampling
    assert ok, err
    guided = restorekit.sample(
        CFGpp(prior, 1, 1.0), SHAPE, steps=10, clip=False, generator=torch.Generator().manual_seed(3)
    )
    assert (guided - ref).abs().max() > 0.05


def test_cfgpp_sampling_rule(prior):
    """One CFG++ DDIM step by hand: u_{t'} = a_{t'}·û0(ε_λ) + s_{t'}·ε_u, result the last û0."""
    steps, lam = 2, 0.7
    g = torch.Generator().manual_seed(5)
    u = torch.randn(SHAPE, generator=g)
    t, t_next = 500, 0  # leading spacing for 2 of 1000 steps
    eps_c, eps_u = _eps(prior, u, t, 2), _eps(prior, u, t, NULL)
    x0 = _tweedie(prior, u, eps_u + lam * (eps_c - eps_u), t)
    abar = prior.alphas_cumprod[t_next]
    u = (abar.sqrt() * x0 + (1 - abar).sqrt() * eps_u).float()
    eps_c, eps_u = _eps(prior, u, t_next, 2), _eps(prior, u, t_next, NULL)
    ref = ((_tweedie(prior, u, eps_u + lam * (eps_c - eps_u), t_next) + 1) / 2).clamp(0, 1)
    got = restorekit.sample(
        CFGpp(prior, 2, lam), SHAPE, steps=steps, clip=False, generator=torch.Generator().manual_seed(5)
    )
    ok, err = _close(got, ref.float(), 1e-5)
    assert ok, err


# -- APG against diffusers' normalized_guidance ----------------------------------------------

APG_CASES = [  # (scale w, eta, norm_threshold r, momentum beta)
    (4.0, 0.0, None, 0.0),
    (4.0, 0.0, None, -0.5),
    (6.0, 0.0, 3.0, 0.0),
    (6.0, 0.5, 3.0, -0.75),
    (2.5, 1.0, 2.0, -0.5),
]


@pytest.mark.parametrize("w,eta,r,beta", APG_CASES)
def test_apg_matches_diffusers_normalized_guidance(prior, w, eta, r, beta):
    apg = APG(prior, 1, w, eta=eta, norm_threshold=r, momentum=beta)
    ts = [900, 700, 500, 300, 100]

    def run():
        """Walk a DDIM trajectory with APG; compare every step with diffusers."""
        apg.reset()
        buffer = MomentumBuffer(beta) if beta != 0 else None
        u = _noisy(prior, ts[0], seed=11)
        clipped, outs = False, []
        for i, t in enumerate(ts):
            with torch.no_grad():
                p = apg.predict(u, t)
                eps_c, eps_u = apg.eps_pair(u, t)  # the same network outputs APG used
            d_c, d_u = _tweedie(prior, u, eps_c, t), _tweedie(prior, u, eps_u, t)
            if buffer is not None and r is not None:  # is the clipping active?
                avg = d_c - d_u + (beta * buffer.running_average if i else 0)
                clipped |= bool((avg.flatten(1).norm(dim=1) > r).any())
            ref = normalized_guidance(d_c, d_u, w - 1, buffer, eta, r or 0.0, use_original_formulation=True)
            ok, err = _close(p.x0, ref, 1e-6)
            assert ok, (t, err)
            abar = prior.alphas_cumprod[t]
            ok, err = _close(p.eps, (u - abar.sqrt() * ref) / (1 - abar).sqrt(), 1e-5)
            assert ok, (t, err)
            assert torch.equal(p.eps_renoise, p.eps)
            outs.append(p.x0)
            if i + 1 < len(ts):
                a = prior.alphas_cumprod[ts[i + 1]]
                u = (a.sqrt() * p.x0 + (1 - a).sqrt() * p.eps).float()
        return outs, clipped

    first, clipped = run()
    if r is not None and beta != 0:
        assert clipped
    second, _ = run()  # state was reset: the same run again
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_apg_momentum_changes_result_and_needs_reset(prior):
    u = _noisy(prior, 500)
    apg = APG(prior, 0, 5.0, momentum=-0.5, norm_threshold=None)
    with torch.no_grad():
        first = apg.predict(u, 500).x0
        second = apg.predict(u, 500).x0  # Δ + β·Δ = Δ/2 now
        apg.reset()
        again = apg.predict(u, 500).x0
    assert torch.equal(first, again)
    assert (first - second).abs().max() > 1e-3
    with pytest.raises(ValueError, match="reset"):
        apg.predict(u[:1], 500)


def test_apg_without_momentum_clip_eta_one_is_cfg(prior):
    u = _noisy(prior, 300)
    with torch.no_grad():
        a = APG(prior, 2, 3.0, eta=1.0, norm_threshold=None, momentum=0.0).predict(u, 300)
        c = CFG(prior, 2, 3.0).predict(u, 300)
    ok, err = _close(a.x0, c.x0, 1e-4)
    assert ok, err


# -- contract and validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "make", [lambda p: CFG(p, 1, 2.0), lambda p: CFGpp(p, 1, 0.5), lambda p: APG(p, 1, 2.0)]
)
def test_wrappers_are_diffusion_priors(prior, make):
    w = make(prior)
    assert isinstance(w, Diffusion) and isinstance(w, Denoiser)
    assert w.alphas_cumprod is prior.alphas_cumprod
    x = torch.rand(SHAPE)
    assert torch.equal(w.to_image(w.to_model(x)), x)
    calls = []
    prior.reset = lambda: calls.append(1)
    try:
        w.reset()
    finally:
        del prior.reset
    assert calls == [1]


def test_argument_validation(prior):
    with pytest.raises(ValueError, match="scale"):
        CFG(prior, 1, -1.0)
    with pytest.raises(ValueError, match="lam"):
        CFGpp(prior, 1, 1.5)
    with pytest.raises(ValueError, match="lam"):
        CFGpp(prior, 1, -0.1)
    with pytest.raises(ValueError, match="cond"):
        CFG(prior, NUM_CLASSES, 2.0)
    with pytest.raises(ValueError, match="null"):
        CFG(prior, NULL, 2.0)
    with pytest.raises(TypeError, match="cond"):
        CFG(prior, 1.0, 2.0)
    with pytest.raises(ValueError, match="momentum"):
        APG(prior, 1, 2.0, momentum=-1.0)
    with pytest.raises(ValueError, match="norm_threshold"):
        APG(prior, 1, 2.0, norm_threshold=0.0)
    with pytest.raises(ValueError, match="eta"):
        APG(prior, 1, 2.0, eta=2.0)
    uncond = DiffusionPrior(_unet(None), DDIMScheduler())
    with pytest.raises(ValueError, match="class-conditional"):
        CFG(uncond, 1, 2.0)
    with pytest.raises(TypeError, match="class-conditional"):
        CFG(CFG(prior, 1, 2.0), 1, 2.0)
    with pytest.raises(ValueError, match="batch"):
        CFG(prior, torch.tensor([0, 1, 2]), 2.0).predict(_noisy(prior, 10), 10)
    with pytest.raises(ValueError, match="shape"):
        restorekit.sample(CFG(prior, 1, 2.0), (1, 16, 16))
    with pytest.raises(ValueError, match="steps"):
        restorekit.sample(CFG(prior, 1, 2.0), SHAPE, steps=0)


def test_per_item_labels(prior):
    u = _noisy(prior, 400)
    with torch.no_grad():
        both = CFG(prior, torch.tensor([0, 3]), 2.0).predict(u, 400).x0
        first = CFG(prior, 0, 2.0).predict(u[:1], 400).x0
        second = CFG(prior, 3, 2.0).predict(u[1:], 400).x0
    ok, err = _close(both, torch.cat([first, second]))
    assert ok, err


def test_denoise_is_guided_tweedie_step(prior):
    g = torch.Generator().manual_seed(4)
    x = torch.rand(SHAPE, generator=g)
    noisy = x + 0.1 * torch.randn(SHAPE, generator=g)
    for sigma in (0.1, torch.tensor([0.05, 0.2])):
        with torch.no_grad():
            got = CFG(prior, torch.tensor([1, 2]), 1.0).denoise(noisy, sigma)
            ref = prior.denoise(noisy, sigma, cond=torch.tensor([1, 2]))
            uncond = CFG(prior, 1, 0.0).denoise(noisy, sigma)
        ok, err = _close(got, ref)
        assert ok, err
        ok, err = _close(uncond, prior.denoise(noisy, sigma))
        assert ok, err


# -- every diffusion solver takes every wrapper ------------------------------------------------

WRAPPERS = {
    "cfg": lambda p: CFG(p, 1, 3.0),
    "cfgpp": lambda p: CFGpp(p, 1, 0.6),
    "apg": lambda p: APG(p, 1, 3.0, norm_threshold=2.0),
}
SOLVER_PARAMS = {"dps": {"steps": 3}, "mcg": {"steps": 3}, "dds": {"steps": 3}, "red-diff": {"steps": 3}}


@pytest.mark.parametrize("solver", sorted(SOLVER_PARAMS))
@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_solvers_run_with_guided_priors(prior, solver, wrapper):
    from restorekit.operators import inpainting

    x = torch.rand(SHAPE, generator=torch.Generator().manual_seed(8))
    op = inpainting(
        "random", img_size=16, fraction=0.5, noise_sigma=0.01, generator=torch.Generator().manual_seed(0)
    )
    y = op(x)
    guided = WRAPPERS[wrapper](prior)
    runs = [
        restorekit.solve(
            y, op, guided, solver=solver, generator=torch.Generator().manual_seed(0), **SOLVER_PARAMS[solver]
        )
        for _ in range(2)
    ]
    assert torch.isfinite(runs[0].x).all()
    assert torch.equal(runs[0].x, runs[1].x)  # per-run state (APG momentum) is reset
    unguided = restorekit.solve(
        y, op, prior, solver=solver, generator=torch.Generator().manual_seed(0), **SOLVER_PARAMS[solver]
    )
    assert (unguided.x - runs[0].x).abs().max() > 1e-3  # guidance reaches the solver


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_dds_without_data_term_is_guided_ddim_sampling(prior, wrapper):
    """DDS with no CG step and η = 0 is DDIM: it must renoise with ε_renoise like sample()."""
    from restorekit.operators import denoising

    guided = WRAPPERS[wrapper](prior)
    y = torch.rand(SHAPE, generator=torch.Generator().manual_seed(2))
    dds = restorekit.solve(
        y,
        denoising(),
        guided,
        solver="dds",
        steps=6,
        eta=0.0,
        cg_steps=0,
        clip_x0=False,
        generator=torch.Generator().manual_seed(9),
    )
    ref = restorekit.sample(guided, SHAPE, steps=6, clip=False, generator=torch.Generator().manual_seed(9))
    ok, err = _close(dds.x.clamp(0, 1), ref, 1e-4)
    assert ok, err


# -- CFG++ through every diffusion solver, against a hand-written step on an exact oracle --------
class TwoClassOracle:
    """A class-conditional Gaussian oracle: class k ∈ {0, 1} and the null class 2 are stationary
    Gaussians with means 0.35, 0.65 and 0.5, so ε_c and ε_u are exact and differentiable."""

    num_classes, null_class = 2, 2

    def __init__(self, size=8):
        from restorekit.priors import GaussianPrior

        self.parts = [GaussianPrior.power_law(size, mean=m, variance=0.01) for m in (0.35, 0.65, 0.5)]
        self.alphas_cumprod = self.parts[0].alphas_cumprod

    def model_eps(self, u, t, class_labels):
        rows = [
            self.parts[int(k)].model_eps(u[i : i + 1], t if isinstance(t, int) else t[i : i + 1])
            for i, k in enumerate(class_labels)
        ]
        return torch.cat(rows)

    def to_model(self, x):
        return 2 * x - 1

    def to_image(self, u):
        return (u + 1) / 2

    def reset(self):
        pass


LAM = 0.6


def _cfgpp_parts(oracle, u, t):
    """(û0 from ε_λ, ε_λ, ε_u) written out: ε_λ = ε_u + λ(ε_c − ε_u), û0 = (u − s·ε_λ)/a."""
    labels = torch.ones(u.shape[0], dtype=torch.long)
    eps_c = oracle.model_eps(u, t, labels)
    eps_u = oracle.model_eps(u, t, torch.full_like(labels, 2))
    eps = eps_u + LAM * (eps_c - eps_u)
    abar = oracle.alphas_cumprod[t].item()
    return (u - (1 - abar) ** 0.5 * eps) / abar**0.5, eps, eps_u


def _ancestral(oracle, x0, eps_renoise, t, t_prev, noise):
    """CFG++'s DDPM step: u_prev = a_prev·û0 + √(1 − ā_prev − σ̃²)·ε_u + σ̃·ξ, σ̃² the DDPM
    posterior variance (1 − ā_prev)/(1 − ā_t)·(1 − ā_t/ā_prev)."""
    ab, abp = oracle.alphas_cumprod[t].item(), 1.0 if t_prev < 0 else oracle.alphas_cumprod[t_prev].item()
    var = (1 - abp) / (1 - ab) * (1 - ab / abp)
    return abp**0.5 * x0 + max(1 - abp - var, 0.0) ** 0.5 * eps_renoise + var**0.5 * noise


def _residual_grad(oracle, u, t, y, op):
    """∇_u ‖2·(y − A((û0 + 1)/2))‖ through the CFG++ estimate (no clipping active here)."""
    u = u.detach().requires_grad_(True)
    with torch.enable_grad():
        x0, _, _ = _cfgpp_parts(oracle, u, t)
        norm = (2 * (y - op.A((x0 + 1) / 2))).flatten(1).norm(dim=1).sum()
        return torch.autograd.grad(norm, u)[0]


def _inpainting_problem():
    from restorekit.operators import inpainting

    oracle = TwoClassOracle()
    x = oracle.parts[1].sample(2, torch.Generator().manual_seed(3))
    op = inpainting(
        "random", img_size=8, fraction=0.5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    return oracle, op, op.A(x)


@pytest.mark.parametrize("solver", ["dps", "mcg", "dds", "red-diff"])
def test_cfgpp_in_every_solver_matches_a_hand_written_step(solver):
    """Two steps (t = 500, then 0) of each solver with CFGpp(λ) on an exact oracle, against
    the update rules written out here. Before the fix DPS and MCG renoised with ε_λ (plain CFG)."""
    oracle, op, y = _inpainting_problem()
    guided = CFGpp(oracle, 1, LAM)
    g = torch.Generator().manual_seed(5)
    params = {
        "dps": dict(zeta=0.5),
        "mcg": dict(alpha=0.5),
        "dds": dict(eta=0.0, cg_steps=0, clip_x0=False),
        "red-diff": dict(lr=0.05, lam=0.25),
    }[solver]
    x_init = op.A_adjoint(y) + 0.5 * (1 - op.mask) if solver == "red-diff" else None
    got = restorekit.solve(
        y, op, guided, solver, steps=2, x_init=x_init, generator=torch.Generator().manual_seed(5), **params
    ).x
    u = torch.randn(y.shape, generator=g, dtype=y.dtype) if solver != "red-diff" else None
    if solver in ("dps", "mcg"):
        y_u = 2 * y - op.A(torch.ones_like(u))
        for t, t_prev in ((500, 0), (0, -1)):
            x0, _, eps_u = _cfgpp_parts(oracle, u, t)
            assert x0.abs().max() < 1  # no clipping, so the written-out rule is the whole step
            grad = _residual_grad(oracle, u, t, y, op)
            noise = torch.randn(u.shape, generator=g, dtype=u.dtype) if t_prev >= 0 else 0 * u
            if solver == "dps":
                u = _ancestral(oracle, x0, eps_u, t, t_prev, noise) - params["zeta"] * grad
                continue
            u = _ancestral(oracle, x0, eps_u, t, t_prev, noise) - params["alpha"] * grad * (1 - op.mask)
            if t_prev >= 0:
                abp = oracle.alphas_cumprod[t_prev].item()
                y_t = abp**0.5 * y_u + (1 - abp) ** 0.5 * op.A(
                    torch.randn(u.shape, generator=g, dtype=u.dtype)
                )
            else:
                y_t = y_u
            u = u * (1 - op.mask) + y_t  # inpainting: the projection overwrites the observed pixels
        expected = (u + 1) / 2
    elif solver == "dds":
        x0, _, eps_u = _cfgpp_parts(oracle, u, 500)
        abp = oracle.alphas_cumprod[0].item()
        u = abp**0.5 * x0 + (1 - abp) ** 0.5 * eps_u
        expected = (_cfgpp_parts(oracle, u, 0)[0] + 1) / 2
    else:
        mu, m, v = 2 * x_init - 1, 0.0, 0.0
        for k, t in enumerate((500, 0), start=1):
            eps = torch.randn(mu.shape, generator=g, dtype=mu.dtype)
            abar = oracle.alphas_cumprod[t].item()
            _, eps_hat, _ = _cfgpp_parts(oracle, abar**0.5 * mu + (1 - abar) ** 0.5 * eps, t)
            n = mu[0].numel()
            residual = 2 * (y - op.A((mu + 1) / 2))
            grad = -op.A_adjoint(residual) / n + 0.25 * ((1 - abar) / abar) ** 0.5 * (eps_hat - eps) / n
            m, v = 0.9 * m + 0.1 * grad, 0.99 * v + 0.01 * grad**2
            mu = mu - 0.05 * (m / (1 - 0.9**k)) / ((v / (1 - 0.99**k)).sqrt() + 1e-8)
        expected = (mu + 1) / 2
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-8)
