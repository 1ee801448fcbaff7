"""Docstring truth: every ``>>>`` example in restorekit's docstrings and every ```python block of
the README runs as written.

The README's blocks run in a temporary folder holding the files they name (``blurry.tif``,
``psf.npy``, ``frames/``), made here from a held-out image. In the default suite each block runs
at a small size (a few textual substitutions, each checked to apply, so a README edit that drops
one fails here); the ``slow`` variant runs every block verbatim.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import restorekit

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["restorekit"] + sorted(
    info.name
    for info in pkgutil.walk_packages(restorekit.__path__, "restorekit.")
    if not any(part.startswith("_") for part in info.name.split("."))
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    return [
        t
        for t in tests
        if t.examples
        and (t.filename is None or Path(t.filename).resolve() == Path(module.__file__).resolve())
    ]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    torch.manual_seed(0)
    for test in _examples(name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} examples of {name} failed (output above)"
    )


def test_docstrings_have_examples():
    """The public entry points carry examples (so the doctest above checks something)."""
    counted = {name: sum(len(t.examples) for t in _examples(name)) for name in MODULES}
    for name in (
        "restorekit.solvers",
        "restorekit.operators.blur",
        "restorekit.priors.tv",
        "restorekit.metrics",
        "restorekit.io",
        "restorekit.data",
    ):
        assert counted[name] > 0, f"{name} has no >>> example"
    assert sum(counted.values()) >= 20


# ------------------------------------------------------------------------------- the README
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```", README, flags=re.S | re.M)
PREAMBLE = "import torch\nimport restorekit as rk\n"  # the README's first block defines these
# a block containing the key -> (old, new) replacements that make it fast; each must apply
SMALL = {
    'solver="dds"': [
        ("size=128", "size=32"),
        ('solver="dds", x_true=x, progress=True)', 'solver="dds", x_true=x, steps=4)'),
    ],
    "rk.batch.run(": [("workers=2", "workers=1")],
}


@pytest.fixture
def readme_files(tmp_path, monkeypatch):
    """The files the README's blocks read: a blurred 8-bit TIFF, its kernel, a folder of them."""
    x = restorekit.data.load_image("camera", size=32)
    kernel = restorekit.operators.gaussian_kernel(1.5)
    op = restorekit.operators.blur(kernel, noise_sigma=0.01, generator=torch.Generator().manual_seed(0))
    y = op(x).clamp(0, 1)
    np.save(tmp_path / "psf.npy", kernel.numpy())
    restorekit.io.write_image(tmp_path / "blurry.tif", y, bit_depth=8)
    (tmp_path / "frames").mkdir()
    for k in range(2):
        restorekit.io.write_image(tmp_path / "frames" / f"f{k}.png", y.roll(k, -1), bit_depth=8)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run_block(index: int, source: str, where: Path) -> dict:
    namespace: dict = {"__name__": "readme"}
    exec(compile(PREAMBLE + source, f"README.md python block {index}", "exec"), namespace)
    # what each block promises, checked against the files it wrote
    if "write_image(" in source:
        out, out_info = restorekit.io.read_image(where / "sharp.tif")
        blurry, blurry_info = restorekit.io.read_image(where / "blurry.tif")
        assert out_info.bit_depth == blurry_info.bit_depth == 8
        assert out.shape == blurry.shape and not torch.equal(out, blurry)
    if "rk.batch.run(" in source:
        summary = namespace["summary"]
        assert sorted(p.name for p in (where / "restored").iterdir() if p.suffix == ".png") == [
            "f0.png",
            "f1.png",
        ]
        assert summary.failed == 0
    return namespace


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_small(index, readme_files):
    source = BLOCKS[index]
    for key, replacements in SMALL.items():
        for old, new in replacements if key in source else []:
            assert old in source, f"README block {index} no longer contains {old!r}: update SMALL"
            source = source.replace(old, new)
    _run_block(index, source, readme_files)


def test_readme_small_keys_match():
    """Every shortcut of SMALL still finds its block (else a block would run at full size)."""
    for key in SMALL:
        assert any(key in block for block in BLOCKS), f"no README python block contains {key!r}"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_verbatim(index, readme_files):
    _run_block(index, BLOCKS[index], readme_files)


# ------------------------------------------------------------------------- the guides' code
GUIDES = sorted((ROOT / "docs" / "guides").glob("*.rst"))
GUIDE_BLOCKS = [
    (g.stem, k, block)
    for g in GUIDES
    for k, block in enumerate(
        re.findall(
            r"^\.\. code-block:: python\n\n((?:   .*\n|\n)+)", g.read_text(encoding="utf-8"), flags=re.M
        )
    )
]
GUIDE_SMALL = {("batch_and_ray", 0): [("workers=2", "workers=1")]}


def _guide_setup(stem: str, where: Path) -> dict:
    """What a guide's block takes as given: a measurement, or a model directory."""
    if stem != "own_diffusers_model":
        return {}
    from diffusers import DDPMScheduler

    torch.manual_seed(0)
    unet = restorekit.priors.diffusion.conv_unet(1, (8, 16), sample_size=16)
    model = where / "path" / "to" / "pipeline_or_unet_dir"
    unet.save_pretrained(model / "unet")
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(model / "scheduler")
    operator = restorekit.operators.inpainting(
        "random", img_size=16, generator=torch.Generator().manual_seed(0)
    )
    return {"operator": operator, "y": operator(restorekit.data.load_image("camera", size=16))}


@pytest.mark.parametrize("stem,index", [(s, k) for s, k, _ in GUIDE_BLOCKS])
def test_guide_block_runs(stem, index, readme_files):
    source = "\n".join(
        line[3:] for line in dict(((s, k), b) for s, k, b in GUIDE_BLOCKS)[stem, index].splitlines()
    )
    for old, new in GUIDE_SMALL.get((stem, index), []):
        assert old in source, f"docs/guides/{stem}.rst block {index} no longer contains {old!r}"
        source = source.replace(old, new)
    namespace = {"__name__": "guide", **_guide_setup(stem, readme_files)}
    solvers_before = dict(restorekit.solvers.SOLVERS)
    try:
        exec(compile(source, f"docs/guides/{stem}.rst python block {index}", "exec"), namespace)
        if stem == "extending":  # the new solver is registered and runs
            x = restorekit.data.load_image("camera", size=16)
            op = restorekit.operators.blur("gaussian", sigma=1.0)
            result = restorekit.solve(
                op(x), op, restorekit.priors.TV(weight=0.01), solver="landweber-pnp", x_true=x
            )
            assert result.nfe == 50 and torch.isfinite(result.x).all()
    finally:
        restorekit.solvers.SOLVERS.clear()
        restorekit.solvers.SOLVERS.update(solvers_before)


def test_guides_have_python_blocks():
    assert {s for s, _, _ in GUIDE_BLOCKS} >= {
        "choosing",
        "own_diffusers_model",
        "measured_images",
        "batch_and_ray",
        "extending",
    }
