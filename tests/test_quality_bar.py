"""The restoration quality bar of the shipped priors (issue 5), on HELD_OUT images only.

DDS with the shipped gray diffusion prior and PnP-HQS with the shipped learned denoiser must beat
TV by Chambolle–Pock at its best weight (an oracle choice) by ≥ 0.5 dB on Gaussian deblurring
(σ_b = 2, noise 0.01) and on 4× super-resolution, mean PSNR over the four held-out images at 128².
The same measurement (``restorekit.evaluation.bar_*``) is ``python -m training.evaluate_restoration``;
README and model cards quote it.
"""
import pytest

from restorekit import data, evaluation
from restorekit.metrics import psnr

BAR_DB = 0.5


@pytest.fixture(scope="module")
def held_out():
    return data.held_out(128)


@pytest.mark.slow
@pytest.mark.parametrize("task", evaluation.BAR_TASKS)
@pytest.mark.parametrize("method", ["PnP-HQS denoiser-gray", "DDS diffusion-gray"])
def test_beats_best_tv_by_half_a_db(held_out, task, method):
    tv = evaluation.bar_tv_oracle(task, held_out)
    p = psnr(evaluation.bar_restore(task, held_out, evaluation.bar_methods(task)[method]), held_out)
    assert p.mean() >= tv.psnr.mean() + BAR_DB, (
        f"{method} on {task}: {p.mean():.2f} dB vs TV {tv.psnr.mean():.2f} dB (λ = {tv.value:.3g})")
