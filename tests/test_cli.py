import pytest

from restorekit.cli import main


def test_list_names_every_operator_and_solver(capsys):
    from restorekit.operators import BUILDERS
    from restorekit.solvers import SOLVERS

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in list(BUILDERS) + list(SOLVERS) + ["tv"]:
        assert f"  {name} " in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["solve", "nonexistent_image"], "unknown image"),
        (["solve", "camera", "--operator", "warp"], "unknown operator"),
        (["solve", "camera", "--solver", "magic", "--size", "32"], "unknown solver"),
        (["solve", "camera", "--prior", "nonexistent", "--size", "32"], "nonexistent"),
        (["solve", "camera", "--op-param", "factor", "--size", "32"], "name=value"),
        (["solve", "camera", "--noise-sigma", "-1", "--size", "32"], "--noise-sigma"),
    ],
)
def test_bad_arguments_give_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("restorekit: error:") and message in err and "\n" not in err


def test_solve_writes_image_and_figure_and_improves_psnr(tmp_path, capsys):
    out = tmp_path / "r.png"
    assert (
        main(
            [
                "solve",
                "camera",
                "--size",
                "48",
                "--operator",
                "gaussian-blur",
                "--prior",
                "tv",
                "--weight",
                "0.005",
                "--solver",
                "chambolle-pock",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert out.exists() and (tmp_path / "r_comparison.png").exists()
    text = capsys.readouterr().out
    psnr = float(text.split("PSNR ")[1].split(" dB")[0])
    from restorekit import data, operators
    from restorekit.metrics import psnr as psnr_fn

    x = data.load_image("camera", size=48)
    op = operators.make("gaussian-blur", img_size=48, noise_sigma=0.01)
    assert psnr > psnr_fn(op.A_dagger(op(x)).clamp(0, 1), x).item()


def _solve_file(path, out, capsys, *extra):
    rc = main(["solve", str(path), "--size", "48", "--weight", "0.005", "--out", str(out), "--quiet", *extra])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return float(captured.out.split("PSNR ")[1].split(" dB")[0]), captured


def test_16bit_png_is_scaled_not_clamped_and_written_back_at_16_bits(tmp_path, capsys):
    """A 16-bit PNG used to load as all ones ('PSNR 65 dB', an all-white output)."""
    from restorekit import data
    from restorekit.io import read_image, write_image

    x = data.load_image("camera", size=48)
    src = write_image(tmp_path / "camera16.png", x, bit_depth=16)
    psnr, _ = _solve_file(src, tmp_path / "r.png", capsys)
    assert 20 < psnr < 45
    restored, info = read_image(tmp_path / "r.png")
    assert info.bit_depth == 16 and restored.std() > 0.5 * x.std()  # not a flat white image


def test_gray_alpha_png_drops_alpha_with_one_note(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from restorekit import data

    x = data.load_image("brick", size=48)[0, 0].numpy()
    la = np.stack([(x * 255).round().astype(np.uint8), np.full_like(x, 255, dtype=np.uint8)], -1)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    _, captured = _solve_file(tmp_path / "la.png", tmp_path / "r.png", capsys)
    notes = [line for line in captured.err.splitlines() if line.startswith("restorekit: note:")]
    assert len(notes) == 1 and "alpha" in notes[0]
    assert (tmp_path / "r_comparison.png").exists()


def test_existing_output_replaced_only_with_overwrite(tmp_path, capsys):
    out = tmp_path / "r.png"
    out.write_bytes(b"keep me")
    argv = ["solve", "camera", "--size", "32", "--quiet", "--steps", "5", "--out", str(out)]
    assert main(argv) == 2 and out.read_bytes() == b"keep me"
    assert main([*argv, "--overwrite"]) == 0 and out.read_bytes()[:4] == b"\x89PNG"


def test_list_gives_whole_sentences_channels_and_solvers(capsys):
    from restorekit import priors

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    solver_lines = out.split("solvers:\n")[1].strip().splitlines()
    for line in solver_lines:
        sentence = line.rsplit(" (prior: ", 1)[0]
        # whole: ends a sentence (or introduces the update rule) and closes every parenthesis
        assert sentence[-1] in ".:" and sentence.count("(") == sentence.count(")"), line
    for name in priors.available():
        line = next(ln for ln in out.splitlines() if ln.startswith(f"  {name} "))
        assert ("[gray]" in line or "[colour]" in line) and "solvers:" in line, line
    assert "diffusion-rgb" in out and "[colour]" in next(
        ln for ln in out.splitlines() if ln.startswith("  diffusion-rgb ")
    )
    dncnn = next(ln for ln in out.splitlines() if ln.startswith("  dncnn "))
    assert "pnp-hqs" in dncnn and "dds" not in dncnn


def test_help_shows_defaults_in_plain_text(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["solve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default 0.01; 0 with --peak)" in text and "(default: 0.9)" in text
    assert "(default: chambolle-pock)" in text and "``" not in text and "default: None" not in text


def test_metrics_and_figures_measure_the_clamped_estimate(monkeypatch, tmp_path):
    """DDS without x̂0 clipping returns values outside [0, 1]: the Result's PSNR and the
    figure's title are both of the clamped image (they used to disagree)."""
    import torch
    from matplotlib.axes import Axes

    import restorekit as rk
    from restorekit.figures import comparison_figure
    from restorekit.metrics import psnr
    from restorekit.priors.diffusion import DiffusionPrior, conv_unet

    torch.manual_seed(0)
    prior = DiffusionPrior(
        conv_unet(1, (8, 16), sample_size=16), torch.linspace(0.999, 0.01, 50, dtype=torch.float64)
    )
    x = rk.data.load_image("brick", size=16)
    op = rk.operators.blur("gaussian", sigma=1.0, img_size=16, noise_sigma=0.01)
    r = rk.solve(op(x), op, prior, solver="dds", steps=4, clip_x0=False, x_true=x)
    assert r.x.min() < 0 or r.x.max() > 1  # the untrained network overshoots
    clamped = psnr(r.x.clamp(0, 1), x).item()
    assert abs(r.metrics.psnr.item() - clamped) < 1e-4
    titles = []
    monkeypatch.setattr(Axes, "set_title", lambda self, text, **kw: titles.append(text))
    comparison_figure([("dds", r.x), ("truth", x)], tmp_path / "f.png", reference=x)
    assert f"{r.metrics.psnr.item():.2f} dB" in titles[0]
