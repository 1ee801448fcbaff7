"""The quality bars of the shipped priors, on HELD_OUT images only (128², slow).

Issue 5: DDS with the shipped gray diffusion prior and PnP-HQS with the shipped learned denoiser must beat
TV by Chambolle–Pock at its best weight (an oracle choice) by ≥ 0.5 dB on Gaussian deblurring
(σ_b = 2, noise 0.01) and on 4× super-resolution, mean PSNR over the four held-out images at 128².
The same measurement (``restorekit.evaluation.bar_*``) is ``python -m training.evaluate_restoration``;
README and model cards quote it.

Issue 15 ("priors worth using"; the same measurements as ``benchmarks/peers.py``):
- denoising: the best shipped grey prior within 0.2 dB of BM3D at σ = 0.05/0.1/0.2 and ≥ 1 dB
  over TV at its best weight at all three;
- restoration: PnP-HQS with the default ``dncnn`` and DDS with the composite prior (η = 1, chosen
  on training images, see ``benchmarks/peers.py``) each beat
  TV-CP at TV's default weight (0.1) by ≥ 0.5 dB and come within 0.2 dB of TV's oracle weight (or
  beat it), on Gaussian deblurring, 4× SR and 50 % inpainting (noise 0.01);
- colour: the colour prior (``dncnn-rgb``) beats colour TV's best weight by ≥ 1 dB at σ = 0.1 on
  the colour held-out image.
BM3D rows need the optional ``bm3d`` package (extra ``peers``) and are skipped without it.
"""

import pytest
import torch

from restorekit import data, evaluation
from restorekit.metrics import psnr

BAR_DB = 0.5
GREY_PRIORS = ("dncnn", "dncnn-6", "dncnn-blind", "denoiser-gray")


@pytest.fixture(scope="module")
def held_out():
    return data.held_out(128)


# ------------------------------------------------------------------------ issue 5
#: Round 1's stricter bar (≥ 0.5 dB over TV's ORACLE weight) for our own networks alone, not
#: met: measured after the GPU training (held-out, 128²) — PnP-HQS denoiser-gray 24.73 / 22.52 dB
#: and DDS diffusion-gray 25.78 / 23.87 dB vs TV's oracle 26.17 / 23.45 on deblurring / 4× SR.
#: Strict xfails, so a network that meets it is noticed; issue 15's bars (dncnn, composite) pass.
ISSUE5_NOT_MET = pytest.mark.xfail(strict=True, reason="issue-5 bar not met by our own networks (see above)")


@pytest.mark.slow
@ISSUE5_NOT_MET
@pytest.mark.parametrize("task", evaluation.BAR_TASKS)
@pytest.mark.parametrize("method", ["PnP-HQS denoiser-gray", "DDS diffusion-gray"])
def test_beats_best_tv_by_half_a_db(held_out, task, method):
    tv = evaluation.bar_tv_oracle(task, held_out)
    p = psnr(evaluation.bar_restore(task, held_out, evaluation.bar_methods(task)[method]), held_out)
    assert p.mean() >= tv.psnr.mean() + BAR_DB, (
        f"{method} on {task}: {p.mean():.2f} dB vs TV {tv.psnr.mean():.2f} dB (λ = {tv.value:.3g})"
    )


# ------------------------------------------------------------------------ issue 15: denoising
def _denoise_psnr(fn, x, sigma):
    y = evaluation.add_noise(x, sigma)
    with torch.no_grad():
        return psnr(fn(y, sigma).clamp(0, 1), x).mean().item(), y


@pytest.mark.slow
@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.2])
def test_best_grey_prior_beats_tv_by_a_db(held_out, sigma):
    best = max(_denoise_psnr(evaluation.shipped_prior(n).denoise, held_out, sigma)[0] for n in GREY_PRIORS)
    tv = evaluation.tv_prox_oracle(evaluation.add_noise(held_out, sigma), held_out, coupled=False)
    assert best >= tv.psnr.mean() + 1.0, (
        f"σ = {sigma}: best grey prior {best:.2f} dB vs TV {tv.psnr.mean():.2f} dB (w = {tv.value:g})"
    )


@pytest.mark.slow
@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.2])
def test_best_grey_prior_within_a_fifth_of_a_db_of_bm3d(held_out, sigma):
    pytest.importorskip("bm3d", reason="BM3D is the optional extra 'peers' (non-commercial licence)")
    from restorekit.priors.bm3d import bm3d_denoise

    best = max(_denoise_psnr(evaluation.shipped_prior(n).denoise, held_out, sigma)[0] for n in GREY_PRIORS)
    bm3d = _denoise_psnr(bm3d_denoise, held_out, sigma)[0]
    assert best >= bm3d - 0.2, f"σ = {sigma}: best grey prior {best:.2f} dB vs BM3D {bm3d:.2f} dB"


# ------------------------------------------------------------------------ issue 15: colour
@pytest.mark.slow
def test_colour_prior_beats_colour_tv_by_a_db():
    x = data.load_image("astronaut", size=128, color=True)
    p, y = _denoise_psnr(evaluation.shipped_prior("dncnn-rgb").denoise, x, 0.1)
    tv = evaluation.tv_prox_oracle(y, x, coupled=True)
    assert p >= tv.psnr.mean() + 1.0, (
        f"dncnn-rgb {p:.2f} dB vs colour TV {tv.psnr.mean():.2f} dB (w = {tv.value:g})"
    )


# ------------------------------------------------------------------------ issue 15: restoration
#: the learned methods of issue 15's restoration bar, name → (task → ``restore(y, operator)``)
LEARNED = {
    "PnP-HQS dncnn": lambda task: evaluation.bar_methods(task)["PnP-HQS dncnn"],
    "DDS composite, defaults": lambda task: evaluation.dds(evaluation.composite_prior),
    "DDS composite, η = 1 (chosen on training images)": lambda task: evaluation.dds(
        evaluation.composite_prior, **evaluation.DDS_COMPOSITE
    ),
}


@pytest.fixture(scope="module")
def tv_bars(held_out):
    """{task: (mean PSNR of TV-CP at the default weight 0.1, at the oracle weight)}, cached."""
    return {}


def _tv(tv_bars, task, x):
    if task not in tv_bars:
        tv_bars[task] = (
            psnr(evaluation.bar_restore(task, x, evaluation.tv_cp(0.1)), x).mean().item(),
            evaluation.bar_tv_oracle(task, x, evaluation.PEERS_TV_WEIGHTS).psnr.mean().item(),
        )
    return tv_bars[task]


@pytest.mark.slow
@pytest.mark.parametrize("task", evaluation.RESTORE_TASKS)
@pytest.mark.parametrize("method", list(LEARNED))
def test_learned_priors_beat_tv(held_out, tv_bars, task, method):
    default, oracle = _tv(tv_bars, task, held_out)
    restore = LEARNED[method](task)
    with torch.no_grad():
        p = psnr(evaluation.bar_restore(task, held_out, restore), held_out).mean().item()
    assert p >= default + BAR_DB and p >= oracle - 0.2, (
        f"{method} on {task}: {p:.2f} dB vs TV default {default:.2f}, TV oracle {oracle:.2f} dB"
    )
