"""The bad-input matrix: every public entry point × every mistake a user makes on purpose.

Each cell must end in a ``ValueError``/``TypeError`` whose message names the argument (Python),
or in exit status 2 with ONE stderr line ``restorekit: error: …`` naming it (CLI) — never a
traceback, a wrong answer or a clamped image. Entry points: ``rk.solve``, the operator builders
(``blur``, ``inpainting``, ``super_resolution``, ``ct``, ``mri``, ``denoising``, ``make``),
``rk.priors.load``, ``DiffusionPrior.from_pretrained``, ``rk.sample`` and the CLI commands
``solve``, ``demo``, ``list`` (and the parser itself).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import restorekit as rk
from restorekit import operators as ops
from restorekit.cli import main
from restorekit.priors import registry
from restorekit.priors.diffusion import DiffusionPrior, conv_unet

NAN, INF = float("nan"), float("inf")


# ----------------------------------------------------------------------------- fixtures
def _x(c=1, b=1, n=16):
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, c, n, n, generator=g)


def _op(c=1):
    return ops.blur(
        "gaussian", sigma=1.0, img_size=16, noise_sigma=0.01, generator=torch.Generator().manual_seed(1)
    )


def _y(c=1, b=1):
    return _op(c)(_x(c, b))


def _tiny_diffusion(channels=1):
    torch.manual_seed(0)
    unet = conv_unet(channels, (8, 16), sample_size=16)
    return DiffusionPrior(unet, torch.linspace(0.999, 0.01, 50, dtype=torch.float64))


class _FakeGrayDenoiser(torch.nn.Module):
    """A network that only takes one channel (like every gray conv net)."""

    channels = 1

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x, sigma):
        return self.conv(x)


# ----------------------------------------------------------------------- python cells
def _solve(y, prior=None, op=None, solver="chambolle-pock", **kw):
    return rk.solve(y, op or _op(), prior or rk.priors.TV(weight=0.01), solver=solver, **kw)


def _solver_nan_cells():
    """Every float hyperparameter of every solver, set to NaN (and Inf)."""
    import inspect

    cells = []
    for name, cls in sorted(rk.SOLVERS.items()):
        for p in inspect.signature(cls).parameters.values():
            if isinstance(p.default, float) and not isinstance(p.default, bool):
                for bad in (NAN, INF):
                    cells.append(
                        pytest.param(
                            (lambda n=name, k=p.name, v=bad: _construct(n, **{k: v})),
                            p.name,
                            id=f"solver-{name}-{p.name}={bad}",
                        )
                    )
    return cells


def _construct(name, **params):
    from restorekit.solvers import solve  # noqa: F401  (construction is what is checked)

    return rk.SOLVERS[name](**params)


PY_CELLS = [
    # rk.solve × images outside [0, 1], rank, dtypes, non-finite values, batches, shapes
    pytest.param(lambda: _solve(_y() * 255), "y", id="solve-y-0..255"),
    pytest.param(lambda: _solve(_y() - 5), "y", id="solve-y-negative"),
    pytest.param(lambda: _solve(_y()[0]), "y", id="solve-y-rank3"),
    pytest.param(lambda: _solve(_y()[None]), "y", id="solve-y-rank5"),
    pytest.param(lambda: _solve((_y() * 255).to(torch.uint8)), "y", id="solve-y-uint8"),
    pytest.param(lambda: _solve(_y().half()), "y", id="solve-y-float16"),
    pytest.param(lambda: _solve(_y().to(torch.complex64)), "y", id="solve-y-complex"),
    pytest.param(lambda: _solve(_y().index_fill(3, torch.tensor([0]), NAN)), "y", id="solve-y-nan"),
    pytest.param(lambda: _solve(_y().index_fill(3, torch.tensor([0]), INF)), "y", id="solve-y-inf"),
    pytest.param(lambda: _solve(_y(), x_true=_x(b=2)), "x_true", id="solve-batch-x_true"),
    pytest.param(lambda: _solve(_y(), x_init=_x(b=2)), "x_init", id="solve-batch-x_init"),
    pytest.param(lambda: _solve(_y(), x_true=_x() * 255), "x_true", id="solve-x_true-0..255"),
    pytest.param(lambda: _solve(_y(), x_init=_x() * 255), "x_init", id="solve-x_init-0..255"),
    pytest.param(lambda: _solve(_y(), x_init=_x(n=8)), "x_init", id="solve-x_init-shape"),
    pytest.param(lambda: _solve(_y(), x_true=_x(c=3)), "x_true", id="solve-x_true-channels"),
    pytest.param(
        lambda: _solve(torch.rand(1, 1, 8, 8), op=ops.super_resolution(2, img_size=32)),
        "y",
        id="solve-y-size-vs-operator",
    ),
    pytest.param(lambda: _solve(_y(), solver="pnp-admm", weight=NAN), "weight", id="solve-unknown-nan-param"),
    pytest.param(lambda: _solve(_y(), rk.priors.TV(weight=NAN)), "weight", id="TV-weight-nan"),
    pytest.param(lambda: _solve(_y(), max_iter=0), "max_iter", id="solve-max_iter-0"),
    pytest.param(lambda: _solve(_y(), generator=1), "generator", id="solve-generator-int"),
    # gray-only priors on colour and colour priors on gray: refused with the choices
    pytest.param(
        lambda: _solve(
            _op(3)(_x(3)), rk.priors.DenoiserPrior(_FakeGrayDenoiser()), solver="pnp-hqs", max_iter=2
        ),
        "per-channel",
        id="solve-gray-denoiser-on-colour",
    ),
    pytest.param(
        lambda: _solve(_op(3)(_x(3)), registry.load("dncnn"), solver="pnp-hqs", max_iter=2),
        "per-channel",
        id="solve-dncnn-on-colour",
    ),
    pytest.param(
        lambda: _solve(_op(3)(_x(3)), registry.load("lpn-gray"), solver="pnp-pgd", max_iter=2),
        "per-channel",
        id="solve-lpn-on-colour",
    ),
    pytest.param(
        lambda: _solve(_op(3)(_x(3)), _tiny_diffusion(1), solver="dds", steps=2),
        "per-channel",
        id="solve-gray-diffusion-on-colour",
    ),
    pytest.param(
        lambda: _solve(_y(), _tiny_diffusion(3), solver="dds", steps=2),
        "channels",
        id="solve-colour-diffusion-on-gray",
    ),
    # operator builders
    pytest.param(
        lambda: ops.inpainting(torch.zeros(16, 16), img_size=16), "mask", id="inpainting-empty-mask"
    ),
    pytest.param(
        lambda: ops.inpainting(torch.ones(16, 16), img_size=16), "mask", id="inpainting-all-ones-mask"
    ),
    pytest.param(
        lambda: ops.inpainting(torch.full((16, 16), NAN), img_size=16), "mask", id="inpainting-nan-mask"
    ),
    pytest.param(lambda: ops.inpainting(img_size=16, fraction=NAN), "fraction", id="inpainting-fraction-nan"),
    pytest.param(lambda: ops.super_resolution(2, img_size=15), "img_size", id="sr-not-divisible"),
    pytest.param(lambda: ops.super_resolution(4, img_size=(16, 18)), "img_size", id="sr4-not-divisible"),
    pytest.param(lambda: ops.super_resolution(3, img_size=18), "factor", id="sr-factor-3"),
    pytest.param(lambda: ops.ct(img_size=(16, 24)), "img_size", id="ct-non-square"),
    pytest.param(lambda: ops.ct(img_size=16, angle_range=NAN), "angle_range", id="ct-angle-nan"),
    pytest.param(lambda: ops.mri(img_size=16, acceleration=NAN), "acceleration", id="mri-acceleration-nan"),
    pytest.param(lambda: ops.blur("gaussian", sigma=NAN), "sigma", id="blur-sigma-nan"),
    pytest.param(
        lambda: ops.blur("gaussian", sigma=1.0, noise_sigma=NAN), "noise_sigma", id="blur-noise-nan"
    ),
    pytest.param(lambda: ops.denoising(noise_sigma=INF), "noise_sigma", id="denoising-noise-inf"),
    pytest.param(lambda: ops.make("mri", img_size=16, channels=3), "channels", id="make-mri-colour"),
    pytest.param(lambda: ops.make("sr-x2", img_size=17), "img_size", id="make-sr-odd"),
    # priors.load
    pytest.param(lambda: registry.load("nonexistent"), "prior", id="load-unknown"),
    pytest.param(lambda: registry.load(3), "prior", id="load-not-a-string"),
    # DiffusionPrior.from_pretrained
    pytest.param(
        lambda: DiffusionPrior.from_pretrained("/nonexistent/dir"), "path", id="from_pretrained-missing"
    ),
    # rk.sample
    pytest.param(
        lambda: rk.sample(_tiny_diffusion(1), (1, 3, 16, 16), steps=2), "shape", id="sample-channels"
    ),
    pytest.param(lambda: rk.sample(_tiny_diffusion(1), (1, 1, 16), steps=2), "shape", id="sample-rank"),
    pytest.param(
        lambda: rk.sample(_tiny_diffusion(1), (1, 1, 16, 16), steps=2, eta=NAN), "eta", id="sample-eta-nan"
    ),
    pytest.param(
        lambda: rk.sample(_tiny_diffusion(1), (1, 1, 16, 16), steps=0), "steps", id="sample-steps-0"
    ),
    pytest.param(
        lambda: rk.sample(rk.priors.TV(weight=0.1), (1, 1, 16, 16), steps=2),
        "Diffusion",
        id="sample-not-diffusion",
    ),
    *_solver_nan_cells(),
]


@pytest.mark.parametrize("call, names", PY_CELLS)
def test_python_entry_points_refuse_bad_input(call, names):
    with pytest.raises((ValueError, TypeError)) as e:
        call()
    assert names in str(e.value), f"message does not name {names!r}: {e.value}"


# --------------------------------------------------------- corrupt checkpoint directories
def _copy_prior(tmp_path, monkeypatch, name):
    """Copy a shipped prior into a scratch weights folder and point the registry at it."""
    dst = tmp_path / "weights" / name
    shutil.copytree(registry.WEIGHTS / name, dst)
    monkeypatch.setattr(registry, "WEIGHTS", tmp_path / "weights")
    return dst


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


CORRUPTIONS = {
    "prior.json-not-json": ("denoiser-gray", lambda d: (d / "prior.json").write_text("{oops")),
    "prior.json-no-kind": ("denoiser-gray", lambda d: (d / "prior.json").write_text("{}")),
    "weights-missing": ("denoiser-gray", lambda d: (d / "model.safetensors").unlink()),
    "weights-truncated": ("denoiser-gray", lambda d: _truncate(d / "model.safetensors")),
    "weights-zero-bytes": ("dncnn-blind", lambda d: (d / "dncnn17L.safetensors").write_bytes(b"")),
    "weights-wrong-shape": (
        "denoiser-gray",
        lambda d: (d / "prior.json").write_text(
            json.dumps({**json.loads((d / "prior.json").read_text()), "features": 8})
        ),
    ),
    "lpn-config-missing": ("lpn-gray", lambda d: (d / "config.json").unlink()),
    "lpn-weights-truncated": ("lpn-gray", lambda d: _truncate(d / "model.safetensors")),
    "diffusion-unet-truncated": (
        "diffusion-rgb",
        lambda d: _truncate(next((d / "unet").glob("*.safetensors"))),
    ),
    "diffusion-config-garbage": (
        "diffusion-rgb",
        lambda d: (d / "unet" / "config.json").write_text("garbage"),
    ),
    "diffusion-scheduler-missing": ("diffusion-rgb", lambda d: shutil.rmtree(d / "scheduler")),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_load_refuses_corrupt_checkpoint(case, tmp_path, monkeypatch):
    name, corrupt = CORRUPTIONS[case]
    corrupt(_copy_prior(tmp_path, monkeypatch, name))
    with pytest.raises(ValueError) as e:
        registry.load(name)
    assert name in str(e.value)


@pytest.mark.parametrize(
    "case", ["diffusion-unet-truncated", "diffusion-config-garbage", "diffusion-scheduler-missing"]
)
def test_from_pretrained_refuses_corrupt_directory(case, tmp_path, monkeypatch):
    name, corrupt = CORRUPTIONS[case]
    d = _copy_prior(tmp_path, monkeypatch, name)
    corrupt(d)
    with pytest.raises(ValueError) as e:
        DiffusionPrior.from_pretrained(str(d))
    assert "path_or_id" in str(e.value) or str(d) in str(e.value)


# ------------------------------------------------------------------------------ CLI cells
def _png(path, arr):
    from PIL import Image

    Image.fromarray(arr).save(path)
    return str(path)


def _files(tmp_path):
    """Bad image files a user may hand to ``restorekit solve``."""
    g = np.random.default_rng(0)
    f = {}
    tiff = tmp_path / "float255.tif"
    from skimage.io import imsave

    imsave(tiff, (g.random((32, 32)) * 255).astype(np.float32), check_contrast=False)
    f["float-tiff-255"] = str(tiff)
    inf = tmp_path / "inf.tif"
    a = g.random((32, 32)).astype(np.float32)
    a[3, 3] = np.inf
    imsave(inf, a, check_contrast=False)
    f["tiff-with-inf"] = str(inf)
    txt = tmp_path / "notes.png"
    txt.write_text("this is not an image")
    f["not-an-image"] = str(txt)
    npy = tmp_path / "array.npy"
    np.save(npy, g.random((32, 32)) * 255)
    f["npy-255"] = str(npy)
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    f["npy-pickle"] = str(pickled)
    f["missing-file"] = str(tmp_path / "missing.png")
    f["gray"] = _png(tmp_path / "gray.png", (g.random((32, 32)) * 255).astype(np.uint8))
    f["colour"] = _png(tmp_path / "colour.png", (g.random((32, 32, 3)) * 255).astype(np.uint8))
    return f


def _cli_cells():
    small = ["--size", "32", "--quiet", "--steps", "2"]
    return {
        # images
        "solve-float-tiff-0..255": (["solve", "{float-tiff-255}", *small], "normalize"),
        "solve-tiff-inf": (["solve", "{tiff-with-inf}", *small], "NaN or Inf"),
        "solve-not-an-image": (["solve", "{not-an-image}", *small], "image"),
        "solve-npy-0..255": (["solve", "{npy-255}", *small], "normalize"),
        "solve-npy-pickle": (["solve", "{npy-pickle}", *small], "image"),
        "solve-txt-extension": (["solve", "{not-an-image}".replace(".png", ".txt"), *small], "path"),
        "solve-missing-file": (["solve", "{missing-file}", *small], "does not exist"),
        # priors vs channels
        "solve-dncnn-on-colour": (
            ["solve", "{colour}", "--prior", "dncnn", "--solver", "pnp-hqs", *small],
            "--per-channel",
        ),
        "solve-denoiser-gray-on-colour": (
            ["solve", "astronaut", "--prior", "denoiser-gray", "--solver", "pnp-hqs", *small],
            "--per-channel",
        ),
        "solve-lpn-on-colour": (
            ["solve", "astronaut", "--prior", "lpn-gray", "--solver", "pnp-pgd", *small],
            "--per-channel",
        ),
        "solve-diffusion-gray-on-colour": (
            ["solve", "astronaut", "--prior", "diffusion-gray", "--solver", "dds", *small],
            "--per-channel",
        ),
        "solve-diffusion-rgb-on-gray": (
            ["solve", "{gray}", "--prior", "diffusion-rgb", "--solver", "dds", *small],
            "--color",
        ),
        "solve-ct-on-colour": (["solve", "astronaut", "--operator", "ct", *small], "channels"),
        # numbers
        "solve-weight-nan": (["solve", "camera", "--weight", "nan", *small], "weight"),
        "solve-noise-nan": (["solve", "camera", "--noise-sigma", "nan", *small], "--noise-sigma"),
        "solve-steps-0": (["solve", "camera", "--size", "32", "--steps", "0"], "steps"),
        "solve-size-0": (["solve", "camera", "--size", "0"], "size"),
        "solve-size-negative": (["solve", "camera", "--size", "-4"], "size"),
        "solve-sr-odd-size": (
            ["solve", "camera", "--operator", "sr-x2", "--size", "33", "--quiet"],
            "img_size",
        ),
        "solve-param-nan": (
            ["solve", "camera", "--solver", "pnp-admm", "--prior", "dncnn", "--param", "rho=nan", *small],
            "rho",
        ),
        "solve-param-unknown": (["solve", "camera", "--param", "nonsense=1", *small], "nonsense"),
        "solve-size-not-int": (["solve", "camera", "--size", "abc"], "--size"),
        # devices and outputs
        "solve-device-cuda": (["solve", "camera", "--device", "cuda", *small], "--device"),
        "solve-device-bogus": (["solve", "camera", "--device", "gpu0", *small], "--device"),
        "solve-out-no-extension": (["solve", "camera", *small, "--out", "{tmp}/result"], "--out"),
        "solve-out-dir": (["solve", "camera", *small, "--out", "{tmp}/"], "--out"),
        "solve-out-unwritable": (["solve", "camera", *small, "--out", "/proc/restorekit/x.png"], "--out"),
        "solve-out-exists": (["solve", "camera", *small, "--out", "{gray}"], "--overwrite"),
        "demo-device-cuda": (["demo", "--quick", "--device", "cuda", "--out", "{tmp}/demo"], "--device"),
        "demo-out-unwritable": (["demo", "--quick", "--out", "/proc/restorekit-demo"], "--out"),
        "demo-out-is-file": (["demo", "--quick", "--out", "{gray}"], "--out"),
        # restore / batch (measured files)
        "restore-device-cuda": (
            ["restore", "{gray}", "--operator", "denoising", "--device", "cuda", "--out", "{tmp}/r.png"],
            "--device",
        ),
        "restore-out-dir": (["restore", "{gray}", "--operator", "denoising", "--out", "{tmp}/"], "--out"),
        "restore-out-no-extension": (
            ["restore", "{gray}", "--operator", "denoising", "--out", "{tmp}/r"],
            "--out",
        ),
        "restore-float-tiff-0..255": (
            ["restore", "{float-tiff-255}", "--operator", "denoising", "--out", "{tmp}/r.tif"],
            "normalize",
        ),
        "restore-tiff-inf": (
            ["restore", "{tiff-with-inf}", "--operator", "denoising", "--out", "{tmp}/r.tif"],
            "NaN or Inf",
        ),
        "restore-steps-0": (
            ["restore", "{gray}", "--operator", "denoising", "--steps", "0", "--out", "{tmp}/r.png"],
            "steps",
        ),
        "restore-weight-nan": (
            ["restore", "{gray}", "--operator", "denoising", "--weight", "nan", "--out", "{tmp}/r.png"],
            "weight",
        ),
        "restore-noise-nan": (
            ["restore", "{gray}", "--operator", "denoising", "--noise-sigma", "nan", "--out", "{tmp}/r.png"],
            "noise",
        ),
        "restore-dncnn-on-colour": (
            [
                "restore",
                "{colour}",
                "--operator",
                "denoising",
                "--prior",
                "dncnn",
                "--solver",
                "pnp-hqs",
                "--out",
                "{tmp}/r.png",
            ],
            "per-channel",
        ),
        "restore-no-operator": (["restore", "{gray}"], "--operator"),
        "batch-workers-0": (
            ["batch", "{tmp}", "{tmp}/out", "--operator", "denoising", "--workers", "0"],
            "workers",
        ),
        "batch-device-cuda": (
            ["batch", "{tmp}", "{tmp}/out", "--operator", "denoising", "--device", "cuda"],
            "--device",
        ),
        "list-extra-argument": (["list", "--bogus"], "--bogus"),
        "no-command": ([], "command"),
        "unknown-command": (["restore-everything"], "restore-everything"),
    }


@pytest.mark.parametrize("case", sorted(_cli_cells()))
def test_cli_refuses_bad_input_with_one_line(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)  # the default --out lands here, where nothing may appear
    files = {**_files(tmp_path), "tmp": str(tmp_path)}
    argv, names = _cli_cells()[case]
    argv = [a.format(**files) for a in argv]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own exit: two lines (usage + error) is a failure here
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("restorekit: error:") and "\n" not in err, err
    assert names in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "a refused command wrote a file"


# ------------------------------------------------------------ the choices a refusal offers
def test_per_channel_choice_restores_each_channel_with_the_gray_prior():
    gray = registry.load("denoiser-gray")
    wrapped = rk.priors.PerChannel(gray)
    x = _x(3, b=2)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    by_hand = torch.cat([gray.denoise(noisy[:, c : c + 1], 0.1) for c in range(3)], 1)
    assert torch.allclose(wrapped.denoise(noisy, 0.1), by_hand)
    assert isinstance(wrapped, rk.priors.Denoiser) and not isinstance(wrapped, rk.priors.Diffusion)
    op = _op(3)
    y = op(_x(3))
    r = rk.solve(y, op, wrapped, solver="pnp-hqs", max_iter=8, x_true=_x(3))
    assert r.metrics.psnr.item() > rk.metrics.psnr(y.clamp(0, 1), _x(3)).item() + 1


# ------------------------------------------------------------------------------ divergence
class _PoisonAfter:
    """Calls ``fn`` normally ``n`` times, then returns NaN: a solver that blows up mid-run."""

    def __init__(self, fn, n):
        self.fn, self.n, self.calls = fn, n, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        out = self.fn(*args, **kwargs)
        if self.calls <= self.n:
            return out
        if isinstance(out, torch.Tensor):
            return out * NAN
        from restorekit.priors.base import Prediction

        return Prediction(out.x0 * NAN, out.eps * NAN, out.eps_renoise * NAN)


def _poisoned_prior(needs):
    from restorekit.priors import TV, Diffusion

    denoiser = rk.priors.DenoiserPrior(lambda x, s: 0.5 * x + 0.5 * x.mean())
    if needs is Diffusion:
        prior = _tiny_diffusion(1)
        prior.predict = _PoisonAfter(prior.predict, 3)
    elif isinstance(denoiser, needs):
        prior = denoiser
        prior.denoise = _PoisonAfter(prior.denoise, 3)
    else:  # TV's structure (chambolle-pock) or a scalable prox (spiral-tap)
        prior = TV(weight=0.01)
        prior.project = _PoisonAfter(prior.project, 3)
    return prior


@pytest.mark.parametrize("name", sorted(n for n, c in rk.SOLVERS.items() if not getattr(c, "volumes", False)))
def test_divergence_stops_with_the_iteration_and_last_finite_iterate(name):
    import inspect

    from restorekit.solvers.base import Diverged

    params = inspect.signature(rk.SOLVERS[name]).parameters
    steps = {"steps": 8} if "steps" in params else {"max_iter": 8}
    if "gain" in params:  # a Poisson solver on this Gaussian test problem: state the gain
        steps["gain"] = 0.05
    y = _y()
    with pytest.raises(Diverged) as e:
        rk.solve(y, _op(), _poisoned_prior(rk.SOLVERS[name].needs), solver=name, **steps)
    assert 0 <= e.value.iteration <= 6, e.value
    assert f"iteration {e.value.iteration}" in str(e.value) and name in str(e.value)
    if e.value.iteration > 0:  # a prior called several times per iteration may fail in the first
        assert e.value.last_finite is not None and torch.isfinite(e.value.last_finite).all()
        assert e.value.last_finite.shape == _x().shape


# ------------------------------------------------------------------------------- progress
def test_progress_bar_on_for_terminals_only(monkeypatch):
    import io

    from restorekit.solvers.base import progress_bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert progress_bar(range(3), "t").disable  # pytest's stderr is not a terminal
    monkeypatch.setattr("sys.stderr", Terminal())
    bar = progress_bar(range(3), "t")
    assert not bar.disable and bar.leave and progress_bar(range(3), "t", False).disable
    list(bar)


# ------------------------------------------------------------------------ weight integrity
def test_every_shipped_weight_file_has_its_sha256_in_prior_json():
    for name in registry.available():
        directory = registry.WEIGHTS / name
        listed = json.loads((directory / "prior.json").read_text()).get("sha256", {})
        files = {str(p.relative_to(directory)) for p in directory.rglob("*.safetensors")}
        assert files <= set(listed), f"{name}: {sorted(files - set(listed))} without a sha256"
        registry.verify(directory)  # and they match


def test_a_flipped_weight_byte_is_refused(tmp_path, monkeypatch):
    """One changed value deep in the tensor data still loads as valid safetensors; only the
    SHA-256 catches it."""
    d = _copy_prior(tmp_path, monkeypatch, "dncnn")
    path = d / "dncnn17N.safetensors"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    from safetensors.torch import load_file

    load_file(str(path))  # still a readable file
    with pytest.raises(ValueError, match="sha256") as e:
        registry.load("dncnn")
    assert "dncnn" in str(e.value)
