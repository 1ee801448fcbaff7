"""The prior contract: every shipped prior (``restorekit.priors.available()``, picked up from the
registry without edits here) and every built-in prior class passes the same checks.

- ``denoise(x, σ)``: same shape, dtype and device as x, finite, not the input itself for σ > 0,
  each sample denoised on its own (a batch equals its samples one by one) and a (B,) tensor σ
  equal to the same float;
- its capabilities (``restorekit.priors.base``) keep their promises: ``prox`` (shape, dtype; as
  γ → 0 the identity, unless its prox weight is fixed), ``value`` (a finite (B,) tensor),
  ``predict`` (x0 and eps consistent with u_t = a·x0 + s·eps, ``to_image ∘ to_model`` = id,
  ``alphas_cumprod`` a decreasing float64 schedule in (0, 1)); and ``require`` refuses the
  capabilities it lacks;
- load → save → load gives the same denoiser, for priors with ``save_pretrained``.
"""

from __future__ import annotations

import functools

import deepinv
import pytest
import torch

import restorekit.priors as priors
from restorekit.priors import (
    APG,
    CFG,
    LPN,
    TV,
    CFGpp,
    DenoiserPrior,
    DiffusionPrior,
    GaussianPrior,
    registry,
    require,
)
from restorekit.priors.base import Denoiser, Diffusion, Energy, Proximal, fixed_prox_weight
from restorekit.priors.diffusion import conv_unet
from restorekit.priors.schedule import abar_at, linear_alphas_cumprod

SIZE = 16
CAPABILITIES = (Denoiser, Proximal, Energy, Diffusion)


def _conditional() -> DiffusionPrior:
    torch.manual_seed(0)  # test-only: a reproducible random network
    return DiffusionPrior(
        conv_unet(1, (8, 16), sample_size=SIZE, num_class_embeds=3), linear_alphas_cumprod()
    )


def _lpn() -> LPN:
    lpn = LPN(channels=1, hidden=8, layers=3)
    lpn.reset_parameters(torch.Generator().manual_seed(0))
    return lpn


#: one instance of every built-in prior class of ``restorekit.priors`` (small, seeded)
BUILT_IN = {
    "TV": lambda: TV(weight=0.05),
    "LPN": _lpn,
    "DenoiserPrior": lambda: DenoiserPrior(deepinv.models.MedianFilter(kernel_size=3)),
    "GaussianPrior": lambda: GaussianPrior.power_law(SIZE),
    "DiffusionPrior": _conditional,
    "CFG": lambda: CFG(_conditional(), cond=1, scale=2.0),
    "CFGpp": lambda: CFGpp(_conditional(), cond=1, lam=0.5),
    "APG": lambda: APG(_conditional(), cond=1, scale=2.0),
    "CompositePrior": lambda: priors.composite(
        _conditional(), DenoiserPrior(deepinv.models.MedianFilter(kernel_size=3)), switch_sigma=0.1
    ),
    "Decorrelated": lambda: priors.Decorrelated(DenoiserPrior(deepinv.models.MedianFilter(kernel_size=3))),
}


def cases() -> list[str]:
    """Every shipped prior (read from the registry) and every built-in one."""
    return [f"shipped:{n}" for n in sorted(registry.available())] + sorted(BUILT_IN)


CASES = cases()


@functools.cache
def make(case: str):
    if case.startswith("shipped:"):
        return registry.load(case.removeprefix("shipped:"))
    return BUILT_IN[case]()


def channels(prior) -> int:
    inner = getattr(prior, "prior", prior)  # guidance wrappers hold the prior they guide
    unet = getattr(inner, "unet", None)
    return unet.config.in_channels if unet is not None else getattr(prior, "channels", 1)


def images(prior, batch: int = 3, dtype=torch.float32) -> torch.Tensor:
    x = torch.rand(batch, channels(prior), SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    return x.to(dtype)


def test_every_built_in_prior_class_is_covered():
    """A new prior class exported by ``restorekit.priors`` must be added to BUILT_IN."""
    classes = {
        name
        for name in priors.__all__
        if isinstance(getattr(priors, name), type)
        and getattr(priors, name) not in CAPABILITIES
        and callable(getattr(getattr(priors, name), "denoise", None))
    }
    assert classes - VOLUME_PRIORS == set(BUILT_IN)


#: priors of volumes (B, C, D, H, W), whose contract is in tests/test_volume.py
VOLUME_PRIORS = {"TV3D"}


def denoise(prior, x, sigma):
    """``prior.denoise`` as a new run: per-run state (APG's momentum) is reset first."""
    if isinstance(prior, Diffusion):
        prior.reset()
    return prior.denoise(x, sigma)


#: known contract failures, to be fixed in the prior (strict: the test fails once they pass)
KNOWN = {
    ("LPN", torch.float64): "LPN.denoise runs its float32 network on float64 input and raises",
    ("shipped:lpn-gray", torch.float64): "LPN.denoise runs its float32 network on float64 input and raises",
}
DTYPE_CASES = [
    pytest.param(
        c,
        d,
        id=f"{c}-{str(d).removeprefix('torch.')}",
        marks=[pytest.mark.xfail(reason=KNOWN[c, d], raises=RuntimeError, strict=True)]
        if (c, d) in KNOWN
        else [],
    )
    for c in CASES
    for d in (torch.float32, torch.float64)
]


@pytest.mark.parametrize("case, dtype", DTYPE_CASES)
def test_denoise_shape_dtype_device_batch(case, dtype):
    check_denoise(make(case), dtype)


def check_denoise(prior, dtype) -> None:
    x = images(prior, dtype=dtype)
    out = denoise(prior, x, 0.1)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.isfinite(out).all()
    assert (out - x).abs().max() > 1e-4, "denoise at σ = 0.1 returned its input"
    # networks run in float32, TV stops on a batch-wide tolerance: equal to 1e-5, not bitwise
    one_by_one = torch.cat([denoise(prior, xi, 0.1) for xi in x.split(1)])
    torch.testing.assert_close(out, one_by_one, rtol=1e-5, atol=1e-5)
    sigma = torch.full((len(x),), 0.1, dtype=dtype)
    torch.testing.assert_close(denoise(prior, x, sigma), out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_capabilities_keep_their_promises(case):
    check_capabilities(make(case))


def check_capabilities(prior) -> None:
    x = images(prior, batch=2)
    assert isinstance(prior, Denoiser)
    for capability in CAPABILITIES:
        if not isinstance(prior, capability):
            with pytest.raises(TypeError, match=capability.__name__):
                require(prior, capability, "some-solver")
    if isinstance(prior, Proximal):
        gamma = fixed_prox_weight(prior)
        z = prior.prox(x, 1.0 if gamma is None else gamma)
        assert z.shape == x.shape and z.dtype == x.dtype and torch.isfinite(z).all()
        if gamma is None:  # prox_γ → identity as γ → 0
            assert (prior.prox(x, 1e-6) - x).abs().max() < 1e-3
    if isinstance(prior, Energy):
        v = prior.value(x)
        assert v.shape == (2,) and torch.isfinite(v).all()
    if isinstance(prior, Diffusion):
        ac = prior.alphas_cumprod
        assert ac.dtype == torch.float64 and ac.ndim == 1 and ((ac > 0) & (ac < 1)).all()
        assert (ac[1:] < ac[:-1]).all()
        torch.testing.assert_close(prior.to_image(prior.to_model(x)), x)
        prior.reset()
        u = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
        for t in (900, 300):
            p = prior.predict(u, t)
            assert p.x0.shape == p.eps.shape == p.eps_renoise.shape == u.shape
            abar = abar_at(ac, t, u)
            torch.testing.assert_close(
                abar.sqrt() * p.x0 + (1 - abar).sqrt() * p.eps, u, rtol=1e-4, atol=1e-4
            )


SAVEABLE = [c for c in CASES if callable(getattr(make(c), "save_pretrained", None))]


@pytest.mark.parametrize("case", SAVEABLE)
def test_load_save_load(case, tmp_path):
    prior = make(case)
    prior.save_pretrained(tmp_path)
    again = type(prior).from_pretrained(tmp_path)
    x = images(prior)
    torch.testing.assert_close(denoise(again, x, 0.1), denoise(prior, x, 0.1), rtol=0, atol=0)
    again.save_pretrained(tmp_path / "again")
    for f in tmp_path.iterdir():
        if f.is_file():
            assert (tmp_path / "again" / f.name).read_bytes() == f.read_bytes(), f.name


def test_saveable_priors_include_the_lpns():
    assert {"LPN", "shipped:lpn-gray"} <= set(SAVEABLE)


def test_a_new_shipped_prior_is_picked_up_without_edits(tmp_path, monkeypatch):
    """A weights folder with a ``prior.json`` is a shipped prior: it joins the cases and the
    checks run on it; a prior that breaks the contract (an identity 'denoiser') fails them."""
    from safetensors.torch import save_file

    from restorekit.priors.dncnn import BiasFreeDenoiser

    _lpn().save_pretrained(tmp_path / "tiny-lpn")
    (tmp_path / "tiny-lpn" / "prior.json").write_text('{"kind": "lpn", "description": "test"}')
    net = BiasFreeDenoiser(depth=2, features=4)
    (tmp_path / "tiny-cnn").mkdir()
    save_file(net.state_dict(), str(tmp_path / "tiny-cnn" / "model.safetensors"))
    (tmp_path / "tiny-cnn" / "prior.json").write_text(
        '{"kind": "denoiser", "description": "test", "depth": 2, "features": 4}'
    )
    monkeypatch.setattr(registry, "WEIGHTS", tmp_path)
    assert cases()[:2] == ["shipped:tiny-cnn", "shipped:tiny-lpn"]
    for name in ("tiny-cnn", "tiny-lpn"):
        prior = registry.load(name)
        check_denoise(prior, torch.float32)
        check_capabilities(prior)
    with pytest.raises(AssertionError, match="returned its input"):
        check_denoise(DenoiserPrior(lambda x, sigma: x), torch.float32)
