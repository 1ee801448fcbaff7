"""A representative subset of the defaults matrix (benchmarks/defaults.py): each solver at its
defaults with a shipped prior must beat both the truncated-CG start and the measurement (where it
is an image) by at least 0.5 dB on the mean over the HELD_OUT images (64², gray, σ_y = 0.01,
denoising 0.1), or warn that it does not and name what to use instead. Slow: run with
``pytest -m slow tests/test_defaults_matrix.py``."""

from __future__ import annotations

import warnings

import pytest
import torch

import restorekit as rk
from restorekit.operators import make, truncated_pinv
from restorekit.solvers import solve
from restorekit.solvers.steps import operator_task

MARGIN_DB = 0.5
SIZE = 64

#: (solver, prior, operator): one per solver family and operator kind the defaults were fixed for
CELLS = [
    ("ddrm", "diffusion-gray", "gaussian-blur"),
    ("ddrm", "diffusion-gray", "inpainting-random"),
    ("diffpir", "diffusion-gray", "inpainting-random"),
    ("dds", "diffusion-gray", "inpainting-random"),
    ("dds", "diffusion-gray", "denoising"),  # warns: use prior.denoise, ddrm or diffpir
    ("dds", "diffusion-gray", "ct-limited"),  # warns: use pnp-hqs or diffpir
    ("diffpir", "diffusion-gray", "sr-x4"),  # per-task ζ = 1
    ("pnp-hqs", "dncnn", "gaussian-blur"),
    ("red", "dncnn", "denoising"),
    ("red-diff", "diffusion-gray", "denoising"),
    ("red-diff", "diffusion-gray", "gaussian-blur"),  # warns: use ddrm or dds
]


def psnr(estimate, x) -> float:
    return rk.metrics.psnr(estimate.clamp(0, 1), x).mean().item()


@pytest.mark.slow
@pytest.mark.parametrize("solver, prior_name, op_name", CELLS)
def test_defaults_beat_the_trivial_answers(solver, prior_name, op_name):
    torch.set_num_threads(1)
    x = rk.data.held_out(SIZE)
    sigma = {} if op_name == "denoising" else {"noise_sigma": 0.01}
    op = make(op_name, SIZE, 1, generator=torch.Generator().manual_seed(0), **sigma)
    with torch.no_grad():
        y = op(x)
        trivial = psnr(truncated_pinv(op, y), x)
        if y.shape == x.shape:
            trivial = max(trivial, psnr(y, x))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = solve(y, op, rk.priors.load(prior_name), solver, generator=torch.Generator().manual_seed(0))
    warned = [str(w.message) for w in caught if f"solver '{solver}'" in str(w.message)]
    got = psnr(result.x, x)
    if warned:  # a refusal must name an alternative
        assert "use '" in warned[0], warned[0]
        return
    assert got >= trivial + MARGIN_DB, (
        f"{solver} + {prior_name} on {op_name}: {got:.2f} dB vs trivial {trivial:.2f}"
    )


# ---- DDS on limited-angle CT (fast) -----------------------------------------------------------
def test_dds_warns_on_limited_angle_ct_only():
    """DDS names pnp-hqs on limited-angle CT (views over 90°), and stays silent on sparse-view CT
    over the full 180°, where its defaults pass the matrix (+1.27 dB)."""
    from restorekit.operators.ct import angular_range
    from restorekit.priors import DiffusionPrior
    from restorekit.priors.diffusion import conv_unet
    from restorekit.priors.schedule import linear_alphas_cumprod

    torch.manual_seed(0)  # test-only: a reproducible random network
    prior = DiffusionPrior(conv_unet(1, (8, 16), sample_size=16), linear_alphas_cumprod())
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    for op_name, degrees, warns in [("ct-limited", 90.0, True), ("ct-sparse", 180.0, False)]:
        op = make(op_name, 16, 1, noise_sigma=0.01)
        assert angular_range(op) == pytest.approx(degrees)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            solve(op.A(x), op, prior, "dds", steps=2, generator=torch.Generator().manual_seed(0))
        named = [str(w.message) for w in caught if "solver 'dds'" in str(w.message)]
        assert bool(named) == warns, (op_name, named)
        if warns:
            assert "use 'pnp-hqs'" in named[0]


# ---- PnP-HQS per-task defaults (fast) ----------------------------------------------------------
def test_pnp_hqs_task_table():
    from restorekit.solvers.pnp import PnPHQS

    hqs = PnPHQS()
    blur, sr = make("gaussian-blur", 32, 1, noise_sigma=0.01), make("sr-x4", 32, 1, noise_sigma=0.01)
    assert len(hqs.sigmas(blur, 0.01)) == 8 and len(hqs.sigmas(sr, 0.01)) == 24
    assert hqs.sigmas(sr, 0.01)[-1].item() == pytest.approx(4 / 255)  # max(sf/255, σ_y)
    assert hqs.sigmas(blur, 0.01)[-1].item() == pytest.approx(0.01)
    assert len(PnPHQS(max_iter=5).sigmas(sr, 0.01)) == 5


@pytest.mark.parametrize("prior_name", ["dncnn", "denoiser-gray"])
def test_pnp_hqs_inpainting_starts_high_enough_to_fill_the_holes(prior_name):
    """On 50 % random inpainting of a training image (clock, 64²) the masked start is far from
    any image; PnP-HQS's inpainting default σ_1 = 0.5 must beat biharmonic inpainting (skimage,
    an independent peer) and the masked measurement, where DPIR's deblurring σ_1 = 49/255
    stalls (18.9 dB for denoiser-gray)."""
    from skimage.restoration import inpaint_biharmonic

    from restorekit.metrics import psnr

    x = rk.data.load_image("clock", size=64)
    op = make("inpainting-random", 64, 1, noise_sigma=0.01, generator=torch.Generator().manual_seed(0))
    y = op(x)
    assert operator_task(op) == "inpainting"
    got = psnr(solve(y, op, rk.priors.load(prior_name), "pnp-hqs").x, x).item()
    mask = op.mask[0, 0].numpy() if op.mask.ndim == 4 else op.mask[0].numpy()
    peer = inpaint_biharmonic(y[0, 0].numpy(), mask == 0)
    peer_psnr = psnr(torch.from_numpy(peer).clamp(0, 1)[None, None].to(x), x).item()
    assert got >= peer_psnr + 0.5 and got >= psnr(y, x).item() + 10, (got, peer_psnr)


def test_bicubic_start_is_on_the_sampling_grid():
    """The shifted start is closer to the truth than plain bicubic upsampling (training images;
    +0.58 dB measured, +0.08 on brick alone)."""
    from restorekit.solvers.pnp import PnPHQS

    x = torch.cat([rk.data.load_image(n, size=64) for n in ("moon", "brick", "clock", "page")])
    op = make("sr-x4", 64, 1, noise_sigma=0.0)
    y = op.A(x)
    plain = torch.nn.functional.interpolate(y, scale_factor=4, mode="bicubic", align_corners=False)
    assert psnr(PnPHQS.bicubic_start(y, op), x) > psnr(plain, x) + 0.3


def test_self_ensemble_averages_eight_calls():
    """With a flip/rotation-equivariant denoiser (the isotropic Gaussian oracle's Wiener filter)
    the ×8 ensemble changes nothing but the cost."""
    from restorekit.priors import GaussianPrior

    prior = GaussianPrior.power_law(16)
    op = make("gaussian-blur", 16, 1, noise_sigma=0.01)
    x = prior.sample(1, torch.Generator().manual_seed(0))
    y = op.A(x)
    plain = solve(y, op, prior, "pnp-hqs")
    both = solve(y, op, prior, "pnp-hqs", ensemble=True)
    assert both.nfe == 8 * plain.nfe
    torch.testing.assert_close(both.x, plain.x, rtol=0, atol=1e-8)


# ---- the committed matrix (fast: reads benchmarks/defaults_cache.json) -------------------------
def committed_matrix():
    """(benchmarks/defaults.py as a module, its committed cache)."""
    import importlib.util
    import json
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    spec = importlib.util.spec_from_file_location("defaults_bench", bench / "defaults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, json.loads((bench / "defaults_cache.json").read_text())


def test_committed_matrix_has_no_failing_cell():
    """Every cell of tag ``current`` in the committed cache (HELD_OUT, measured by
    benchmarks/defaults.py) is refused, warns and names an alternative, or beats the better of
    the truncated-CG start and the measurement by 0.5 dB; and the matrix covers every operator
    family in gray at 64² and 128²."""
    module, cache = committed_matrix()
    failing, families = [], set()
    for size, col, op, prior, solver, cell, base, _ in module.cells(cache, "current"):
        families.add((size, col, op))
        if "refused" in cell:
            continue
        if "warning" in cell:
            assert "use " in cell["warning"], cell["warning"]
            continue
        m = module.margin(cell, base)
        if m is None or m < module.MARGIN_DB:
            failing.append((size, col, op, prior, solver))
    assert not failing, failing
    assert {(size, "gray", op) for op in module.OPERATORS for size in ("64", "128")} <= families


#: The sizes and colours the committed matrix must cover completely (issue 14: gray and colour
#: at 64² and 128²).
COMPLETE = {64: (False, True), 128: (False, True)}


def test_committed_matrix_is_complete_and_its_warnings_current():
    """For each size and colour of :data:`COMPLETE` the committed cache has every solver ×
    compatible prior × operator family (as ``restorekit list`` pairs them), and each measured cell
    warns exactly when today's WEAK_DEFAULTS say so (a stale cache fails)."""
    from restorekit.solvers import SOLVERS

    module, cache = committed_matrix()
    missing, stale = [], []
    for prior_name in module.PRIORS:
        prior = module.build_prior(prior_name)
        for size, color in ((size, color) for size, colours in COMPLETE.items() for color in colours):
            if module.prior_channels(prior_name) not in (None, 3 if color else 1):
                continue
            for op_name in module.OPERATORS:
                if color and module.BUILDERS[op_name].gray_only:
                    continue
                for solver in SOLVERS:
                    if not module.compatible(solver, prior):
                        continue
                    tag = "tv" if (solver, prior_name) == ("chambolle-pock", "tv") else "current"
                    cell = cache.get(module.cell_key(tag, size, color, op_name, prior_name, solver))
                    where = (size, color, op_name, prior_name, solver)
                    if cell is None:
                        missing.append(where)
                    elif "psnr" in cell and tag == "current":
                        if cell.get("warning") != module.current_warning(solver, op_name, size, color, prior):
                            stale.append(where)
    assert not missing, missing
    assert not stale, stale
