"""The documentation site builds with warnings as errors: the API reference from the
docstrings, the guides, and the gallery (every demo with ``--quick`` run at its quick size, its
figure on its page). Slow (several minutes: the demos run); needs the ``docs`` extra."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS_EXTRA = ("sphinx", "furo", "sphinx_gallery")


def _missing_docs_extra() -> list[str]:
    import importlib.util

    return [name for name in DOCS_EXTRA if importlib.util.find_spec(name) is None]


@pytest.mark.slow
@pytest.mark.skipif(
    bool(_missing_docs_extra()),
    reason="the docs extra is not installed "
    "(pip install -e '.[docs]'): missing " + ", ".join(_missing_docs_extra()),
)
def test_site_builds_without_warnings(tmp_path):
    out = tmp_path / "html"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RESTOREKIT_DOCS_GALLERY": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", str(ROOT / "docs"), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    # every public object has an entry (an HTML anchor with its full name) on its module's page
    import importlib.util

    spec = importlib.util.spec_from_file_location("restorekit_docs_conf", ROOT / "docs" / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    anchors = set()
    for page in (out / "generated").glob("*.html"):
        anchors |= set(re.findall(r'id="(restorekit[^"]*)"', page.read_text(encoding="utf-8")))
    expected = {
        f"{name}.{member}"
        for name, module in conf._MODULES.items()
        for member in conf._own_members(name, module)
    }
    assert {
        "restorekit.solvers.solve",
        "restorekit.priors.tv.TV",
        "restorekit.operators.blur.blur",
        "restorekit.solvers.dds.DDS",
        "restorekit.io.read_measurement",
    } <= expected
    assert not expected - anchors, f"missing from the API reference: {sorted(expected - anchors)}"
    demos = [p for p in (ROOT / "demos").glob("*.py") if "--quick" in p.read_text(encoding="utf-8")]
    assert demos
    for demo in demos:
        page = (out / "gallery" / f"{demo.stem}.html").read_text(encoding="utf-8")
        assert re.search(rf"<img[^>]+sphx_glr_{demo.stem}_\d+\.png", page), f"{demo.name}: no figure"
    for guide in ("choosing", "own_diffusers_model", "measured_images", "batch_and_ray", "extending"):
        assert (out / "guides" / f"{guide}.html").exists()


DEMOS = sorted((ROOT / "demos").glob("*.py"))


@pytest.mark.parametrize("demo", DEMOS, ids=lambda p: p.name)
def test_demo_is_gallery_ready(demo):
    """What sphinx-gallery needs to run a demo and show it (fast; the build itself is slow):
    a first docstring opening with a reST title, a ``--quick`` flag and ``--out`` (the gallery
    runs ``--quick --out DIR`` and shows the PNGs written there), and no ``__file__`` or
    ``__doc__`` at run time (sphinx-gallery defines neither: it sets ``__doc__`` to "")."""
    import ast

    source = demo.read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source), clean=True) or ""
    lines = doc.splitlines()
    assert (
        len(lines) >= 2
        and lines[0].strip()
        and re.fullmatch(r"=+", lines[1])
        and len(lines[1]) >= len(lines[0])
    ), f"{demo.name}: the docstring must open with 'Title' over '====='"
    assert "--quick" in source and "--out" in source, f"{demo.name}: needs --quick and --out"
    code = source.split('"""', 2)[2]
    for name in ("__file__", "__doc__"):
        assert not re.search(rf"(?<![.\w]){name}", code), (
            f"{demo.name} uses {name}, which sphinx-gallery does not provide"
        )
