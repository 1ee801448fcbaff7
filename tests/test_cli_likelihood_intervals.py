"""The command line's photon-count (--peak, --likelihood) and uncertainty (--samples,
--calibrate) options: each output is checked against the same computation done through the
Python API, so a flag that is parsed but not passed on fails."""

import pytest
import torch

import restorekit as rk
from restorekit.cli import main
from restorekit.io import read_image, read_measurement, write_image

SIZE = 32


def _run(argv, capsys):
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return captured.out


def _poisson_problem(peak: float, seed: int = 0):
    """The CLI's `solve` problem: camera at SIZE², Poisson noise with gain 1/peak, one generator
    for the noise and the solver."""
    x = rk.data.load_image("camera", size=SIZE)
    gen = torch.Generator().manual_seed(seed)
    op = rk.operators.make("gaussian-blur", img_size=SIZE, noise_sigma=0.0, poisson=1 / peak, generator=gen)
    return x, op, op(x), gen


def test_solve_with_peak_and_poisson_likelihood_runs_the_poisson_data_term(tmp_path, capsys):
    out = tmp_path / "r.tif"
    argv = ["solve", "camera", "--size", str(SIZE), "--peak", "30", "--solver", "pnp-admm", "--prior", "tv"]
    _run([*argv, "--weight", "0.05", "--likelihood", "poisson", "--out", str(out), "--quiet"], capsys)
    written, _ = read_image(out)
    x, op, y, gen = _poisson_problem(30)
    prior = rk.priors.TV(weight=0.05)
    poisson = rk.solve(y, op, prior, "pnp-admm", generator=gen, data_term="poisson", progress=False).x
    gaussian = rk.solve(y, op, prior, "pnp-admm", data_term="gaussian", progress=False).x
    assert (written - poisson.clamp(0, 1)).abs().max() < 2e-3  # the file is the Poisson solve
    assert (written - gaussian.clamp(0, 1)).abs().max() > 2e-2  # which the flag changed


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--peak", "30", "--likelihood", "poisson", "--solver", "chambolle-pock"],
            "squared-error data term",
        ),
        (["--likelihood", "poisson", "--solver", "pnp-admm"], "give --peak"),
        (["--peak", "30", "--solver", "spiral-tap"], "add --likelihood poisson"),
        (["--peak", "0"], "--peak"),
        (["--samples", "3", "--solver", "chambolle-pock"], "identical samples"),
        (["--samples", "1"], "--samples"),
    ],
)
def test_likelihood_and_sample_errors_are_one_line(extra, message, tmp_path, capsys):
    argv = ["solve", "camera", "--size", "16", "--out", str(tmp_path / "r.png"), "--quiet", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("restorekit: error:") and message in err and "\n" not in err


def test_read_measurement_with_peak_carries_the_poisson_model(tmp_path):
    from deepinv.physics import PoissonGaussianNoise, PoissonNoise

    x, op, y, _ = _poisson_problem(20)
    write_image(tmp_path / "y.tif", y.clamp(0, 1), bit_depth=32)
    m = read_measurement(tmp_path / "y.tif", "blur", kernel=2.0, peak=20)
    assert isinstance(m.operator.noise_model, PoissonNoise) and not m.noise_estimated
    assert float(m.operator.noise_model.gain) == pytest.approx(1 / 20)
    assert m.noise_sigma == 0 and any("20 photons" in n for n in m.notes)
    both = read_measurement(tmp_path / "y.tif", "blur", kernel=2.0, peak=20, noise_sigma=0.01)
    assert isinstance(both.operator.noise_model, PoissonGaussianNoise)
    # the solver reads the Poisson noise level √(g·y) from it, as from the simulated operator
    from restorekit.operators.noise import noise_level

    assert noise_level(m.operator, m.y) == pytest.approx(noise_level(op, y.clamp(0, 1)), rel=1e-5)


def test_samples_write_the_posterior_mean_and_calibrated_intervals(tmp_path, capsys):
    from restorekit.uncertainty import posterior_samples, rcps, sample_statistics

    cal_dir = tmp_path / "cal"
    names = ["moon", "page", "brick", "grass", "clock", "cell"]
    for name in names:
        write_image(cal_dir / f"{name}.png", rk.data.load_image(name, size=16, color=False))
    out = tmp_path / "m.tif"
    argv = ["solve", "camera", "--size", "16", "--prior", "diffusion-gray", "--solver", "dds", "--steps", "4"]
    argv += ["--samples", "4", "--calibrate", str(cal_dir), "--epsilon", "0.6", "--out", str(out), "--quiet"]
    text = _run(argv, capsys)
    # the same computation through the API: one generator for the noise and both sample draws
    x = rk.data.load_image("camera", size=16)
    gen = torch.Generator().manual_seed(0)
    op = rk.operators.make("gaussian-blur", img_size=16, noise_sigma=0.01, generator=gen)
    prior = rk.priors.load("diffusion-gray")
    kw = dict(solver="dds", generator=gen, steps=4, progress=False)
    stats = sample_statistics(posterior_samples(op(x), op, prior, 4, **kw), 0.9)
    x_cal = torch.cat([rk.data.load_image(str(cal_dir / f"{n}.png")) for n in sorted(names)])
    cal = sample_statistics(posterior_samples(op(x_cal), op, prior, 4, **kw), 0.9)
    lam = rcps(cal.lower, cal.upper, x_cal, epsilon=0.6, delta=0.1).lam
    mean, _ = read_image(out)
    lower, _ = read_image(tmp_path / "m_lower.tif")
    upper, _ = read_image(tmp_path / "m_upper.tif")
    assert (mean - stats.mean.clamp(0, 1)).abs().max() < 1 / 255  # written at the input's 8 bits
    assert (lower - (stats.lower - lam).clamp(0, 1)).abs().max() < 1e-5
    assert (upper - (stats.upper + lam).clamp(0, 1)).abs().max() < 1e-5
    assert lam > 0 and (upper - lower).mean() > (stats.upper - stats.lower).clamp(0, 1).mean()
    assert (tmp_path / "m_uncertainty.png").exists() and "RCPS intervals" in text


def test_restore_with_peak_runs_spiral_tap_on_the_file(tmp_path, capsys):
    x, op, y, _ = _poisson_problem(20)
    write_image(tmp_path / "y.tif", y.clamp(0, 1), bit_depth=32)
    out = tmp_path / "r.tif"
    argv = ["restore", str(tmp_path / "y.tif"), "--operator", "blur", "--kernel", "2", "--peak", "20"]
    _run(
        [*argv, "--likelihood", "poisson", "--solver", "spiral-tap", "--weight", "0.05", "--out", str(out)],
        capsys,
    )
    m = read_measurement(tmp_path / "y.tif", "blur", kernel=2.0, peak=20)
    expected = rk.solve(m.y, m.operator, rk.priors.TV(weight=0.05), "spiral-tap", progress=False).x
    written, _ = read_image(out)
    assert (written - expected.clamp(0, 1)).abs().max() < 1e-5
    assert rk.metrics.psnr(written, x).item() > rk.metrics.psnr(y.clamp(0, 1), x).item() + 1
