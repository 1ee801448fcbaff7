"""Ctrl-C and kill: the command line stops with one line and status 130 on SIGINT, and neither
SIGINT nor SIGKILL leaves a partial output file (every file is written to a temporary name and
renamed whole). The signals are sent to a real ``restorekit`` subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _start(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "restorekit.cli", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(proc, prefix: str, timeout: float = 120.0) -> str:
    """Read the child's stdout until a line starting with ``prefix``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"no line starting with {prefix!r}; stderr: {proc.stderr.read()}")


def _complete_images(folder: Path) -> list[Path]:
    """Every visible file in ``folder`` must be a whole image (readable, non-empty); returns them.
    Hidden ``.NAME.*.tmp.EXT`` files are the temporaries a SIGKILL may leave."""
    from PIL import Image

    files = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")]
    for p in files:
        assert p.stat().st_size > 0, f"{p} is empty"
        if p.suffix == ".png":
            with Image.open(p) as im:
                im.load()  # raises on a truncated file
            assert np.asarray(im).size > 0
    return files


@pytest.mark.slow
def test_sigint_during_solve_exits_130_with_one_line_and_no_file(tmp_path):
    proc = _start(
        [
            "solve",
            "camera",
            "--size",
            "64",
            "--quiet",
            "--steps",
            "1000000",
            "--param",
            "tol=1e-30",
            "--out",
            "out/r.png",
        ],
        tmp_path,
    )
    _wait_for_line(proc, "restoring")
    time.sleep(1.0)  # inside the solver loop
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("restorekit: interrupted"), err
    assert not any((tmp_path / "out").iterdir()), "an interrupted solve left a file"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_demo_leaves_only_complete_files(tmp_path, sig):
    proc = _start(["demo", "--quick", "--out", "demo"], tmp_path)
    _wait_for_line(proc, "[1/6] Deblurring done", timeout=600)
    time.sleep(0.2)  # the next task has started; its figure is not written yet
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and len(err.strip().splitlines()) == 1, err
        assert not list((tmp_path / "demo").glob(".*")), "a temporary file was left behind"
    else:
        assert proc.returncode == -signal.SIGKILL
    files = _complete_images(tmp_path / "demo")
    assert [p.name for p in files] == ["deblurring.png"]


@pytest.mark.slow
def test_sigkill_while_solve_writes_leaves_old_or_whole_file(tmp_path):
    """Kill a solve at many moments around the writes: the output is absent or a whole image."""
    out = tmp_path / "out"
    out.mkdir()
    for delay in (0.0, 0.1, 0.3):
        proc = _start(
            [
                "solve",
                "camera",
                "--size",
                "32",
                "--quiet",
                "--steps",
                "3",
                "--out",
                "out/r.png",
                "--overwrite",
            ],
            tmp_path,
        )
        _wait_for_line(proc, "restoring")
        time.sleep(delay)
        proc.kill()
        proc.communicate(timeout=60)
        _complete_images(out)
