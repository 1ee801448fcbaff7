"""The restoration quality bar of the shipped priors (issue 5), on HELD_OUT images only.

DDS with the shipped gray diffusion prior and PnP-HQS with the shipped learned denoiser must beat
TV by Chambolle–Pock at its best weight (an oracle choice) by ≥ 0.5 dB on Gaussian deblurring
(σ_b = 2, noise 0.01) and on 4× super-resolution, mean PSNR over the four held-out images at 128².
The same measurement is ``python training/evaluate_restoration.py``; README and model cards quote it.
"""
import pytest

from training import evaluate_restoration as ev

BAR_DB = 0.5


@pytest.fixture(scope="module")
def held_out():
    return ev.data.held_out(128)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["deblur", "sr4"])
@pytest.mark.parametrize("method", ["PnP-HQS denoiser-gray", "DDS diffusion-gray"])
def test_beats_best_tv_by_half_a_db(held_out, task, method):
    p_tv, weight = ev.tv_oracle(task, held_out)
    p = ev.per_image(task, held_out, ev.methods(task)[method])
    assert p.mean() >= p_tv.mean() + BAR_DB, (
        f"{method} on {task}: {p.mean():.2f} dB vs TV {p_tv.mean():.2f} dB (λ = {weight:.3g})")
