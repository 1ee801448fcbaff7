"""The common contract: every solver runs with every prior that has the capability it needs
(on two operators), deterministically with a generator, and refuses the others clearly."""
from __future__ import annotations

import pytest
import torch

from restorekit.operators import make
from restorekit.priors import CFG, LPN, TV, DenoiserPrior, DiffusionPrior, GaussianPrior
from restorekit.priors.diffusion import conv_unet
from restorekit.priors.schedule import linear_alphas_cumprod
from restorekit.solvers import SOLVERS, solve

SIZE = 16
#: few iterations: the contract, not the quality, is under test here
FAST = {"chambolle-pock": {"max_iter": 5}, "pnp-hqs": {"max_iter": 3}, "pnp-admm": {"max_iter": 3},
        "pnp-pgd": {"max_iter": 3}, "red": {"max_iter": 3}, "dps": {"steps": 3}, "mcg": {"steps": 3},
        "dds": {"steps": 3}, "red-diff": {"steps": 3}, "ddrm": {"steps": 3}, "diffpir": {"steps": 3}}


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
        "lpn": LPN(channels=1, hidden=8, layers=3),
        "gaussian": GaussianPrior.power_law(SIZE),
        "diffusion": DiffusionPrior(conv_unet(1, (8, 16), sample_size=SIZE), ac),
        "cfg": CFG(conditional, cond=1, scale=2.0),
    }


PRIORS = _priors()


def _compatible(solver: str, prior) -> bool:
    return isinstance(prior, SOLVERS[solver].needs)


PAIRS = [(s, p) for s in sorted(SOLVERS) for p in sorted(PRIORS) if _compatible(s, PRIORS[p])]
MISMATCHES = [(s, p) for s in sorted(SOLVERS) for p in sorted(PRIORS) if not _compatible(s, PRIORS[p])]


def _problem(op_name: str, dtype=torch.float32):
    x = torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0), dtype=dtype)
    op = make(op_name, SIZE, noise_sigma=0.0)
    return x, op, op.A(x)


@pytest.mark.parametrize("op_name", ["gaussian-blur", "inpainting-random"])
@pytest.mark.parametrize("solver, prior_name", PAIRS)
def test_every_solver_with_every_compatible_prior(solver, prior_name, op_name):
    prior = PRIORS[prior_name]
    x, op, y = _problem(op_name, torch.float64 if prior_name == "gaussian" else torch.float32)
    params = FAST[solver]
    runs = [solve(y, op, prior, solver, x_true=x, generator=torch.Generator().manual_seed(5), **params)
            for _ in range(2)]
    r = runs[0]
    assert r.x.shape == x.shape and torch.isfinite(r.x).all()
    assert torch.equal(runs[0].x, runs[1].x), "not deterministic with a seeded generator"
    assert r.seconds > 0 and r.nfe >= (0 if solver == "chambolle-pock" else 1)
    assert len(r.history.data_fit) == len(r.history.psnr) >= 1
    assert r.metrics.psnr.shape == (2,)


@pytest.mark.parametrize("solver", ["pnp-admm", "pnp-hqs", "pnp-pgd"])
def test_fixed_scale_prior_keeps_its_prox_weight(solver):
    """An LPN is the prox at γ = 1 only: every PnP solver keeps its prox weight there with no
    parameter set (the prior itself raises for any other γ), and a ρ that would change it is
    refused with the prior's message."""
    x, op, y = _problem("gaussian-blur")
    lpn = PRIORS["lpn"]
    calls = []
    original = lpn.prox
    lpn.prox = lambda v, gamma: calls.append(float(gamma)) or original(v, gamma)
    try:
        solve(y, op, lpn, solver, **FAST[solver])
    finally:
        del lpn.prox
    assert calls and all(abs(g - 1.0) < 1e-3 for g in calls), calls
    if solver == "pnp-admm":
        with pytest.raises(ValueError, match="gamma must be 1"):
            solve(y, op, lpn, solver, rho=0.5, **FAST[solver])


def test_pairs_cover_every_solver_and_prior():
    assert {s for s, _ in PAIRS} == set(SOLVERS) and {p for _, p in PAIRS} == set(PRIORS)


@pytest.mark.parametrize("solver, prior_name", MISMATCHES)
def test_incompatible_pairs_raise(solver, prior_name):
    prior = PRIORS[prior_name]
    x, op, y = _problem("gaussian-blur")
    with pytest.raises(TypeError, match=SOLVERS[solver].needs.__name__) as err:
        solve(y, op, prior, solver, **FAST[solver])
    assert type(prior).__name__ in str(err.value) and solver in str(err.value)
