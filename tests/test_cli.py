import pytest

from restorekit.cli import main


def test_list_names_every_operator_and_solver(capsys):
    from restorekit.operators import BUILDERS
    from restorekit.solvers import SOLVERS

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in list(BUILDERS) + list(SOLVERS) + ["tv"]:
        assert f"  {name} " in out


@pytest.mark.parametrize("argv, message", [
    (["solve", "nonexistent_image"], "unknown image"),
    (["solve", "camera", "--operator", "warp"], "unknown operator"),
    (["solve", "camera", "--solver", "magic", "--size", "32"], "unknown solver"),
    (["solve", "camera", "--prior", "nonexistent", "--size", "32"], "nonexistent"),
    (["solve", "camera", "--op-param", "factor", "--size", "32"], "name=value"),
    (["solve", "camera", "--noise-sigma", "-1", "--size", "32"], "noise_sigma"),
])
def test_bad_arguments_give_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("restorekit: error:") and message in err and "\n" not in err


def test_solve_writes_image_and_figure_and_improves_psnr(tmp_path, capsys):
    out = tmp_path / "r.png"
    assert main(["solve", "camera", "--size", "48", "--operator", "gaussian-blur", "--prior", "tv",
                 "--weight", "0.005", "--solver", "chambolle-pock", "--out", str(out), "--quiet"]) == 0
    assert out.exists() and (tmp_path / "r_comparison.png").exists()
    text = capsys.readouterr().out
    psnr = float(text.split("PSNR ")[1].split(" dB")[0])
    from restorekit import data, operators
    from restorekit.metrics import psnr as psnr_fn

    x = data.load_image("camera", size=48)
    op = operators.make("gaussian-blur", img_size=48, noise_sigma=0.01)
    assert psnr > psnr_fn(op.A_dagger(op(x)).clamp(0, 1), x).item()
