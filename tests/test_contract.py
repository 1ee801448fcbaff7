"""The solver contract, one suite for every registered solver (``restorekit.solvers.SOLVERS``).

Every solver runs with every prior that has the capability it needs (on two operators) and on
every registered operator (with its first compatible prior), returns finite images of the
input's shape, a history of one record per iteration (at most the iteration count), a
non-negative nfe (exactly one network call per step for diffusion solvers), is deterministic
for a seeded generator (and, when it samples, depends on the generator), and refuses a prior
without the capability with a TypeError naming the solver, the capability and the prior.

Nothing here lists solvers: the fast settings come from each solver's signature
(:func:`fast_params`), so a newly registered solver is checked without editing this file — as
:func:`test_a_new_solver_is_picked_up_without_edits` shows with a dummy solver.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from restorekit.operators import BUILDERS, make
from restorekit.priors import CFG, LPN, TV, Denoiser, DenoiserPrior, Diffusion, DiffusionPrior, GaussianPrior
from restorekit.priors.diffusion import conv_unet
from restorekit.priors.schedule import linear_alphas_cumprod
from restorekit.solvers import SOLVERS, Solver, register, solve

SIZE = 16
#: iteration counts are set to this: the contract, not the quality, is under test here
FAST_COUNT = 3
#: a parameter is an iteration count when its name ends so (max_iter, steps, cg_iter, cg_steps)
COUNT_SUFFIXES = ("iter", "steps")


def fast_params(cls: type[Solver]) -> dict:
    """Fast settings from the signature of ``cls``: every integer parameter named like an
    iteration count (:data:`COUNT_SUFFIXES`) whose default exceeds :data:`FAST_COUNT` is set
    to :data:`FAST_COUNT`; everything else keeps its default."""
    params = {}
    for p in inspect.signature(cls.__init__).parameters.values():
        default = p.default
        if p.name in ("max_iter", "steps") or (
            p.name.endswith(COUNT_SUFFIXES)
            and isinstance(default, int)
            and not isinstance(default, bool)
            and default > FAST_COUNT
        ):
            params[p.name] = FAST_COUNT  # the outer count always (a None default means per task)
    # a Poisson solver (spiral-tap) on these Gaussian test problems needs the gain stated
    if "gain" in inspect.signature(cls.__init__).parameters:
        params["gain"] = 0.05
    return params


def iteration_count(cls: type[Solver]) -> tuple[str, int]:
    """The solver's outer iteration count under :func:`fast_params`: ``max_iter`` or ``steps``."""
    names = [n for n in ("max_iter", "steps") if n in inspect.signature(cls.__init__).parameters]
    assert len(names) == 1, f"solver {cls.name!r} must take exactly one of max_iter, steps"
    return names[0], fast_params(cls).get(names[0], FAST_COUNT)


class SmallDenoiser(torch.nn.Module):
    """A fixed smoothing 'denoiser' net(x, sigma): blends x with its 3×3 mean by sigma."""

    def forward(self, x, sigma):
        blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        w = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1).clamp(0, 1)
        return (1 - w) * x + w * blurred


def _priors():
    torch.manual_seed(0)  # test-only: reproducible random networks
    ac = linear_alphas_cumprod()
    conditional = DiffusionPrior(conv_unet(1, (8, 16), sample_size=SIZE, num_class_embeds=3), ac)
    return {
        "tv": TV(weight=0.02),
        "denoiser": DenoiserPrior(SmallDenoiser()),
        "diffusion": DiffusionPrior(conv_unet(1, (8, 16), sample_size=SIZE), ac),
        "lpn": LPN(channels=1, hidden=8, layers=3),
        "gaussian": GaussianPrior.power_law(SIZE),
        "cfg": CFG(conditional, cond=1, scale=2.0),
    }


#: one of each kind of prior, in the order a solver picks its representative from
PRIORS = _priors()


#: the 2D solvers; the volume solvers (``volumes = True``: dds-3d, chambolle-pock-3d) have their
#: contract tests in test_volume.py
def planar() -> list[str]:
    return sorted(name for name, cls in SOLVERS.items() if not getattr(cls, "volumes", False))


PLANAR = planar()


def compatible(solver: str, prior_name: str) -> bool:
    return isinstance(PRIORS[prior_name], SOLVERS[solver].needs)


def contract_pairs() -> list[tuple[str, str]]:
    return [(s, p) for s in planar() for p in PRIORS if compatible(s, p)]


def mismatches() -> list[tuple[str, str]]:
    return [(s, p) for s in planar() for p in PRIORS if not compatible(s, p)]


def representative(solver: str) -> str:
    """The first prior of :data:`PRIORS` the solver accepts (TV, else a denoiser, else a diffusion)."""
    return next(p for p in PRIORS if compatible(solver, p))


def operator(name: str):
    """Operator ``name`` for SIZE² gray images with a little noise (random masks and kernels
    from a fixed generator)."""
    extra = {"generator": torch.Generator().manual_seed(0)}
    if "generator" not in inspect.signature(BUILDERS[name].build).parameters:
        extra = {}
    return make(name, SIZE, 1, noise_sigma=0.02, **extra)


def check_contract(solver: str, prior_name: str, op_name: str) -> None:
    """Every assertion of the contract for one solver × prior × operator."""
    cls, prior = SOLVERS[solver], PRIORS[prior_name]
    dtype = torch.float64 if prior_name == "gaussian" else torch.float32
    x = torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(3), dtype=dtype)
    op = operator(op_name)
    y = op.A(x)
    params = fast_params(cls)
    _, count = iteration_count(cls)
    runs = [
        solve(y, op, prior, solver, x_true=x, generator=torch.Generator().manual_seed(seed), **params)
        for seed in (7, 7, 8)
    ]
    r = runs[0]
    assert r.x.shape == x.shape and r.x.dtype == x.dtype and torch.isfinite(r.x).all()
    assert torch.equal(r.x, runs[1].x), f"{solver} is not deterministic with a seeded generator"
    if cls.needs is Diffusion:  # samplers draw from the generator (except where the data fix
        # x entirely: MCG's projection returns y itself for noise-free denoising)
        assert r.nfe == count, f"{solver}: {r.nfe} network calls for {count} steps"
        assert op_name == "denoising" or not torch.equal(r.x, runs[2].x), f"{solver} ignores its generator"
    assert r.seconds > 0 and r.nfe >= 0
    assert 1 <= len(r.history.data_fit) == len(r.history.psnr) <= count
    assert r.metrics.psnr.shape == (2,) and torch.isfinite(r.metrics.psnr).all()


@pytest.mark.parametrize("op_name", ["gaussian-blur", "inpainting-random"])
@pytest.mark.parametrize("solver, prior_name", contract_pairs())
def test_every_solver_with_every_compatible_prior(solver, prior_name, op_name):
    """Every compatible pair runs, or refuses up front with a ValueError that names what to use
    instead (the implicit prior needs a denoiser at every level; an LPN has one)."""
    try:
        check_contract(solver, prior_name, op_name)
    except ValueError as e:
        assert "use" in str(e) and any(other in str(e) for other in SOLVERS if other != solver), (
            f"{solver} refuses {prior_name} without naming an alternative: {e}"
        )


@pytest.mark.parametrize("op_name", sorted(BUILDERS))
@pytest.mark.parametrize("solver", PLANAR)
def test_every_solver_on_every_operator(solver, op_name):
    """Every solver runs on every operator, or refuses it up front with a ValueError that says
    what to use instead (DDRM needs an operator with an SVD)."""
    try:
        check_contract(solver, representative(solver), op_name)
    except ValueError as e:
        assert "use" in str(e) and any(other in str(e) for other in SOLVERS if other != solver), (
            f"{solver} refuses {op_name} without naming an alternative: {e}"
        )


def test_pairs_cover_every_solver_and_prior():
    pairs = contract_pairs()
    assert {s for s, _ in pairs} == set(PLANAR) and {p for _, p in pairs} == set(PRIORS)


@pytest.mark.parametrize("solver, prior_name", mismatches())
def test_incompatible_pairs_raise(solver, prior_name):
    x = torch.rand(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    op = operator("gaussian-blur")
    with pytest.raises(TypeError, match=SOLVERS[solver].needs.__name__) as err:
        solve(op.A(x), op, PRIORS[prior_name], solver, **fast_params(SOLVERS[solver]))
    assert type(PRIORS[prior_name]).__name__ in str(err.value) and solver in str(err.value)


@pytest.mark.parametrize("solver", ["pnp-admm", "pnp-hqs", "pnp-pgd"])
def test_fixed_scale_prior_keeps_its_prox_weight(solver):
    """An LPN is the prox at γ = 1 only: every PnP solver keeps its prox weight there with no
    parameter set (the prior itself raises for any other γ), and a ρ that would change it is
    refused with the prior's message."""
    x = torch.rand(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    op = operator("gaussian-blur")
    y, lpn, params = op.A(x), PRIORS["lpn"], fast_params(SOLVERS[solver])
    calls = []
    original = lpn.prox
    lpn.prox = lambda v, gamma: calls.append(float(gamma)) or original(v, gamma)
    try:
        solve(y, op, lpn, solver, **params)
    finally:
        del lpn.prox
    assert calls and all(abs(g - 1.0) < 1e-3 for g in calls), calls
    if solver == "pnp-admm":
        with pytest.raises(ValueError, match="gamma must be 1"):
            solve(y, op, lpn, solver, rho=0.5, **params)


# ---- a new solver needs no edit here -------------------------------------------------------
class _Landweber(Solver):
    """x ← D(x − τ·Aᴴ(Ax − y), σ): a projected Landweber iteration with a denoiser; with
    ``global_noise`` it (wrongly) perturbs x with the global RNG, which the contract catches."""

    needs = Denoiser
    global_noise = False

    def __init__(self, *, steps: int = 100, tau: float = 0.5):
        self.steps, self.tau = steps, tau

    def _run(self, y, operator, prior, x_init, loop):
        x = operator.A_adjoint(y) if x_init is None else x_init
        for i in loop.range(self.steps):
            x = x - self.tau * operator.A_adjoint(operator.A(x) - y)
            if self.global_noise:
                x = x + 1e-3 * torch.randn(x.shape, dtype=x.dtype)
            x = prior.denoise(x, 0.02)
            loop.nfe += 1
            loop.log(i, x)
        return x


def test_a_new_solver_is_picked_up_without_edits(monkeypatch):
    for name, noisy in (("dummy-landweber", False), ("dummy-landweber-global-rng", True)):
        monkeypatch.setitem(SOLVERS, name, None)  # undone after the test: the key is removed
        register(type(name, (_Landweber,), {"name": name, "global_noise": noisy}))
    # 1. found in the registry, with fast settings from its signature and in the parametrised pairs
    assert fast_params(SOLVERS["dummy-landweber"]) == {"steps": FAST_COUNT}
    assert {("dummy-landweber", p) for p in ("denoiser", "tv", "diffusion")} <= set(contract_pairs())
    # 2. a solver that keeps the contract passes it ...
    check_contract("dummy-landweber", "denoiser", "gaussian-blur")
    # 3. ... and one that draws from the global RNG fails it
    with pytest.raises(AssertionError, match="not deterministic"):
        check_contract("dummy-landweber-global-rng", "denoiser", "gaussian-blur")
