"""Every demo script runs in quick mode, writes its figure, and every method beats A†y.

The scripts are imported and their ``main`` called in-process (no interpreter start-up).
"""

from __future__ import annotations

import importlib

import matplotlib.image
import pytest
import torch

from restorekit import data, evaluation
from restorekit.demo import TASKS

SCRIPTS = ("deblurring", "inpainting", "super_resolution", "denoising", "ct", "mri")


def test_every_task_has_a_script():
    assert set(SCRIPTS) == set(TASKS)
    assert all(t.image in data.HELD_OUT for t in TASKS.values())


@pytest.mark.parametrize("name", SCRIPTS)
def test_demo_quick(name, tmp_path, capsys):
    report = importlib.import_module(f"demos.{name}").main(["--quick", "--out", str(tmp_path)])
    task = TASKS[name]
    # 1. the figure: one panel per method plus A†y and ground truth, a real image
    assert report.size == task.quick_size
    assert report.figure == tmp_path / f"{name}.png" and report.figure.is_file()
    img = matplotlib.image.imread(report.figure)
    assert img.shape[0] > 200 and img.shape[1] > 400 and img[..., :3].std() > 0.1
    # 2. the table: every method of the task, each better than the pseudo-inverse
    assert [r.method for r in report.rows] == [m.label for m in task.methods]
    # (A†y always; the measurement y too where it is an image of the same size)
    assert report.baselines[-1].method.startswith("A†y")
    for row in report.rows:
        for base in report.baselines:
            assert row.psnr > base.psnr + 0.25, (row, base)
            assert row.ssim > base.ssim, (row, base)
        assert row.seconds > 0
    printed = capsys.readouterr().out
    assert all(f"| {r.method} | {r.psnr:.2f} |" in printed for r in report.rows)


def test_tuning_batch_refuses_held_out_images():
    for name in data.HELD_OUT:
        with pytest.raises(ValueError, match="held out"):
            evaluation.tuning_batch(("brick", name), 16, False)
    phantom = data.ellipse_phantom(16)
    batch = evaluation.tuning_batch(("brick", phantom), 16, False)
    assert batch.shape == (2, 1, 16, 16)
    torch.testing.assert_close(batch[1:], phantom)
    torch.testing.assert_close(batch[:1], data.load_image("brick", size=16, color=False))


def test_grid_search_picks_the_best_mean_psnr():
    """The one grid search: scores every value by mean PSNR of the clipped estimate, keeps the
    first best; a blend x·v + (1 − v)·0.5 is best at v = 1, and the clip matters above 1."""
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    found = evaluation.grid_search(x, lambda v: v * x + (1 - v) * 0.5, (0.0, 0.5, 1.0, 3.0))
    assert found.value == 1.0
    assert found.scores[1.0] > 90 and found.scores[0.5] < found.scores[1.0]
    assert found.scores[3.0] < found.scores[1.0]  # clipped at 0 and 1, not the identity
    raw = evaluation.grid_search(x, lambda v: v * x + (1 - v) * 0.5, (3.0,), clip=False)
    assert raw.scores[3.0] < found.scores[3.0]  # unclipped, the overshoot costs more
    torch.testing.assert_close(found.estimate, x)
    assert found.psnr.shape == (2,)
    with pytest.raises(ValueError, match="grid"):
        evaluation.grid_search(x, lambda v: x, ())
