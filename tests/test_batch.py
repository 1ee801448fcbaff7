"""restorekit.batch: per-item seeds, manifest, resume, bad items, and kill tests (a worker or the
driver SIGKILLed mid-run) for the local process pool and for Ray."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import restorekit as rk
from restorekit import data, io, operators
from restorekit.batch import Task, item_seed, read_manifest, run
from restorekit.cli import main
from restorekit.metrics import psnr

NAMES = ("camera", "coins", "shepp_logan_phantom", "astronaut")


def _inputs(tmp_path, n=4, size=32, sigma=1.0):
    """n blurred, noisy 16-bit PNGs in tmp_path/in and their ground truths in tmp_path/ref."""
    (tmp_path / "in").mkdir()
    (tmp_path / "ref").mkdir()
    k = operators.gaussian_kernel(sigma)
    np.save(tmp_path / "k.npy", k.numpy())
    for i in range(n):
        name = NAMES[i] if i < len(NAMES) else None
        x = (
            data.load_image(name, size=size, color=False)
            if name
            else data.dead_leaves(size, generator=torch.Generator().manual_seed(i))
        )
        y = operators.blur(k, noise_sigma=0.02, generator=torch.Generator().manual_seed(i))(x)
        io.write_image(tmp_path / "in" / f"img{i:02d}.png", y.clamp(0, 1), bit_depth=16)
        io.write_image(tmp_path / "ref" / f"img{i:02d}.png", x, bit_depth=16)
    return tmp_path / "in"


def _task(tmp_path, steps=60, **params):
    args = {"kernel": str(tmp_path / "k.npy"), "noise_sigma": None}
    return Task(
        operator="blur",
        operator_args=args,
        prior="tv",
        weight=0.01,
        solver="chambolle-pock",
        params={"max_iter": steps, **params},
    )


def _slow_task(tmp_path):
    """About a second per 48² item on one core: no early stop."""
    return _task(tmp_path, steps=400, tol=1e-12)


def _lines(manifest):
    return [json.loads(line) for line in Path(manifest).read_text().splitlines() if line.strip()]


def _done_once(manifest, names):
    done = [r["item"] for r in _lines(manifest) if r["status"] == "done"]
    assert sorted(done) == sorted(names), f"done lines {sorted(done)} != items {sorted(names)}"


def _bytes(folder, names):
    return {n: (Path(folder) / n).read_bytes() for n in names}


def test_item_seed_depends_on_name_and_task_seed_only():
    assert item_seed("a.png") == item_seed("a.png") != item_seed("b.png")
    assert item_seed("a.png", 1) != item_seed("a.png", 0)
    assert 0 <= item_seed("a.png") < 2**63


def test_batch_restores_folder_records_manifest_and_quality(tmp_path):
    src = _inputs(tmp_path)
    summary = run(src, tmp_path / "out", _task(tmp_path), reference=tmp_path / "ref")
    assert (summary.done, summary.skipped, summary.failed) == (4, 0, 0)
    lines = _lines(summary.manifest)
    assert [r["item"] for r in lines] == [f"img{i:02d}.png" for i in range(4)]
    for r in lines:
        y, info = io.read_image(r["input"])
        x, out_info = io.read_image(r["output"])
        ref, _ = io.read_image(tmp_path / "ref" / r["item"])
        assert out_info.bit_depth == 16  # the input's
        assert r["psnr"] == pytest.approx(psnr(x, ref).item(), abs=1e-3)
        assert r["psnr"] > psnr(y, ref).item() + 0.5  # restored, not the measurement
        assert r["seed"] == item_seed(r["item"]) and r["nfe"] == 0 and r["seconds"] > 0
        assert (r["operator"], r["prior"], r["solver"], r["params"]) == (
            "blur",
            "tv",
            "chambolle-pock",
            {"max_iter": 60},
        )
        assert r["noise_estimated"] and 0.01 < r["noise_sigma"] < 0.04


def test_bad_items_fail_alone_and_cli_exit_code_counts_them(tmp_path, capsys):
    src = _inputs(tmp_path, n=2)
    (src / "junk.png").write_bytes(b"not an image")
    np.save(src / "far.npy", np.full((32, 32), 300.0, np.float32))  # float outside [0, 1]
    np.save(src / "nan.npy", np.full((32, 32), np.nan, np.float32))
    argv = [
        "batch",
        str(src),
        str(tmp_path / "out"),
        "--operator",
        "blur",
        "--kernel",
        str(tmp_path / "k.npy"),
        "--steps",
        "30",
        "--quiet",
    ]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "junk.png" in err and "not a readable" in err and "far.npy" in err and "normalize" in err
    status = {r["item"]: r["status"] for r in _lines(tmp_path / "out" / "manifest.jsonl")}
    assert status == {
        "img00.png": "done",
        "img01.png": "done",
        "junk.png": "failed",
        "far.npy": "failed",
        "nan.npy": "failed",
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "img00.png",
        "img01.png",
        "manifest.jsonl",
    ]


def test_nan_result_and_wrong_size_are_recorded_failed(tmp_path, monkeypatch):
    src = _inputs(tmp_path, n=2)
    io.write_image(src / "small.png", torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)))
    io.write_image(src / "flat.png", torch.full((1, 1, 32, 32), 0.25))
    np.save(tmp_path / "mask.npy", (np.arange(32 * 32).reshape(32, 32) % 3 > 0).astype(np.float32))
    solve = rk.solve

    def nan_for_flat(y, *args, **kwargs):  # a solver that diverges on one item
        result = solve(y, *args, **kwargs)
        if abs(y.max().item() - 0.25) < 1e-3:
            result.x[:] = float("nan")
        return result

    monkeypatch.setattr(rk, "solve", nan_for_flat)
    task = Task(
        operator="inpainting",
        operator_args={"mask": str(tmp_path / "mask.npy"), "noise_sigma": 0.0},
        prior="tv",
        weight=0.01,
        solver="chambolle-pock",
        params={"max_iter": 20},
    )
    summary = run(src, tmp_path / "out", task)
    errors = {r["item"]: r["error"] for r in summary.records}
    assert summary.failed == 2 and summary.done == 2
    assert "NaN" in errors["flat.png"] and "mask must have shape" in errors["small.png"]
    assert errors["img00.png"] is None and not (tmp_path / "out" / "flat.png").exists()


def test_resume_skips_done_items_redoes_missing_failed_and_torn(tmp_path):
    src = _inputs(tmp_path, n=4)
    task = _task(tmp_path, steps=30)
    first = run(src, tmp_path / "out", task)
    names = [f"img{i:02d}.png" for i in range(4)]
    clean = _bytes(tmp_path / "out", names)
    manifest = first.manifest
    lines = manifest.read_text().splitlines()
    # img01: output lost; img02: recorded failed; img03: its line torn by a kill mid-write
    (tmp_path / "out" / "img01.png").unlink()
    failed = {**json.loads(lines[2]), "status": "failed", "error": "earlier failure"}
    manifest.write_text("\n".join([lines[0], lines[1], json.dumps(failed), lines[3][:40]]))
    (tmp_path / "out" / ".img03.abc.tmp.png").write_bytes(b"half")  # a killed write's leftover
    second = run(src, tmp_path / "out", task)
    assert (second.done, second.skipped, second.failed) == (3, 1, 0)
    assert sorted(r["item"] for r in second.records) == names[1:]
    assert read_manifest(manifest)["img03.png"]["status"] == "done"
    assert _bytes(tmp_path / "out", names) == clean  # the redone items are bit-identical
    assert not (tmp_path / "out" / ".img03.abc.tmp.png").exists()
    third = run(src, tmp_path / "out", task)
    assert (third.done, third.skipped) == (0, 4)
    with pytest.raises(ValueError, match="another task.*max_iter"):
        run(src, tmp_path / "out", _task(tmp_path, steps=31))
    reseeded = run(src, tmp_path / "out", dataclasses.replace(task, seed=5))  # other seeds: redone
    assert (reseeded.done, reseeded.skipped) == (4, 0)


def test_stochastic_solver_is_bit_identical_per_item_and_seeded_by_name(tmp_path):
    """DDS draws noise at every step: the output depends on the seed, which comes from the name
    alone, so running one item alone or among others gives the same bits."""
    src = _inputs(tmp_path, n=2, size=32)
    task = Task(
        operator="denoising",
        operator_args={"noise_sigma": 0.05},
        prior="diffusion-gray",
        solver="dds",
        params={"steps": 2},
    )
    both = run(src, tmp_path / "a", task)
    alone = run([src / "img01.png"], tmp_path / "b", task)
    reseeded = run([src / "img01.png"], tmp_path / "c", dataclasses.replace(task, seed=1))
    assert both.failed == alone.failed == reseeded.failed == 0
    one = (tmp_path / "b" / "img01.png").read_bytes()
    assert (tmp_path / "a" / "img01.png").read_bytes() == one != (tmp_path / "c" / "img01.png").read_bytes()


def test_prior_is_loaded_once_per_worker(tmp_path, monkeypatch):
    from restorekit.batch import task as task_module

    calls = []
    load = rk.priors.load
    monkeypatch.setattr(rk.priors, "load", lambda *a, **k: calls.append(a) or load(*a, **k))
    monkeypatch.setattr(task_module, "_PRIORS", {})
    src = _inputs(tmp_path, n=3)
    run(
        src,
        tmp_path / "out",
        Task(
            operator="denoising",
            operator_args={"noise_sigma": 0.05},
            prior="denoiser-gray",
            solver="pnp-hqs",
            params={"max_iter": 2},
        ),
    )
    assert calls == [("denoiser-gray",)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"engine": "spark"}, "engine must be one of"),
        ({"workers": 0}, "workers must be a positive int"),
        ({"out_ext": ".gif"}, "out_ext must be one of"),
        ({"reference": "/nonexistent"}, "reference must be a folder"),
        ({"address": "10.0.0.1:6379"}, "address applies to engine='ray' only"),
    ],
)
def test_run_refusals(tmp_path, kwargs, message):
    src = _inputs(tmp_path, n=1)
    with pytest.raises(ValueError, match=message):
        run(src, tmp_path / "out", _task(tmp_path), **kwargs)


def test_run_refuses_to_write_over_its_inputs(tmp_path):
    src = _inputs(tmp_path, n=1)
    before = (src / "img00.png").read_bytes()
    with pytest.raises(ValueError, match="overwrite the inputs"):
        run(src, src, _task(tmp_path))
    assert (src / "img00.png").read_bytes() == before


def test_list_file_and_duplicate_names(tmp_path):
    from restorekit.batch import list_items

    src = _inputs(tmp_path, n=2)
    (tmp_path / "list.txt").write_text("# measured\nin/img01.png\n\nin/img00.png\n")
    assert [p.name for p in list_items(tmp_path / "list.txt")] == ["img01.png", "img00.png"]
    with pytest.raises(ValueError, match="distinct file names"):
        list_items([src / "img00.png", tmp_path / "ref" / "img00.png"])


# --------------------------------------------------------------------------- kill tests


def _cli(src, out, tmp_path, *extra, steps=400):
    return [
        sys.executable,
        "-m",
        "restorekit.cli",
        "batch",
        str(src),
        str(out),
        "--operator",
        "blur",
        "--kernel",
        str(tmp_path / "k.npy"),
        "--weight",
        "0.01",
        "--steps",
        str(steps),
        "--param",
        "tol=1e-12",
        "--quiet",
        *extra,
    ]


def _env():
    root = str(Path(rk.__file__).parent.parent)
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root}


def _wait_lines(manifest, n, proc=None, timeout=240):
    end = time.time() + timeout
    while time.time() < end:
        if Path(manifest).exists() and len(_lines(manifest)) >= n:
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the batch ended early with {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} manifest lines after {timeout} s")


@pytest.fixture
def clean_run(tmp_path):
    """Inputs and the outputs of an uninterrupted in-process run (the reference bits)."""
    src = _inputs(tmp_path, n=6, size=48)
    run(src, tmp_path / "clean", _slow_task(tmp_path))
    names = sorted(p.name for p in src.iterdir())
    return src, names, _bytes(tmp_path / "clean", names)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_local_driver_sigkill_then_rerun_resumes(tmp_path, clean_run, workers):
    src, names, clean = clean_run
    out = tmp_path / "out"
    proc = subprocess.Popen(_cli(src, out, tmp_path, "--workers", str(workers)), env=_env())
    _wait_lines(out / "manifest.jsonl", 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(_lines(out / "manifest.jsonl")) < len(names), "killed too late to test resume"
    rerun = subprocess.run(_cli(src, out, tmp_path, "--workers", str(workers)), env=_env())
    assert rerun.returncode == 0
    _done_once(out / "manifest.jsonl", names)
    assert _bytes(out, names) == clean
    assert not io.stale_temporaries(out)


@pytest.mark.slow
def test_local_pool_worker_sigkill_is_retried(tmp_path, clean_run):
    import psutil

    src, names, clean = clean_run
    out = tmp_path / "out"
    proc = subprocess.Popen(_cli(src, out, tmp_path, "--workers", "2"), env=_env())
    _wait_lines(out / "manifest.jsonl", 1, proc)
    workers = [
        p for p in psutil.Process(proc.pid).children() if any("spawn_main" in part for part in p.cmdline())
    ]
    assert len(workers) == 2
    workers[0].send_signal(signal.SIGKILL)
    assert proc.wait(timeout=600) == 0
    lines = _lines(out / "manifest.jsonl")
    _done_once(out / "manifest.jsonl", names)
    assert len(lines) == len(names) and max(r["attempts"] for r in lines) == 2
    assert _bytes(out, names) == clean


# --------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster with 2 CPUs, started by this test module and stopped after it."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'restorekit[distributed]')")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": _env()["PYTHONPATH"], "OMP_NUM_THREADS": "1"}},
    )
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_every_item_exactly_once_and_same_bits_as_local(tmp_path, clean_run, ray_cluster):
    src, names, clean = clean_run
    task = _slow_task(tmp_path)
    summary = run(src, tmp_path / "out", task, engine="ray", workers=2)
    assert (summary.done, summary.failed) == (len(names), 0)
    _done_once(summary.manifest, names)
    assert len({r["worker"] for r in summary.records}) == 2  # both actors worked
    assert _bytes(tmp_path / "out", names) == clean


@pytest.mark.slow
def test_ray_actor_sigkill_is_retried(tmp_path, clean_run, ray_cluster):
    src, names, clean = clean_run
    task = _slow_task(tmp_path)
    out = tmp_path / "out"
    box = {}
    thread = threading.Thread(target=lambda: box.update(s=run(src, out, task, engine="ray", workers=2)))
    thread.start()
    _wait_lines(out / "manifest.jsonl", 1)
    pid = int(_lines(out / "manifest.jsonl")[0]["worker"].split("@")[0])
    os.kill(pid, signal.SIGKILL)  # the actor that just finished an item is busy with the next
    thread.join(timeout=600)
    assert box["s"].failed == 0
    lines = _lines(out / "manifest.jsonl")
    _done_once(out / "manifest.jsonl", names)
    assert len(lines) == len(names)
    assert len({r["worker"] for r in lines}) == 3  # two actors, one of them restarted after the kill
    assert _bytes(out, names) == clean


@pytest.mark.slow
def test_ray_driver_sigkill_then_rerun_resumes(tmp_path, clean_run, ray_cluster):
    src, names, clean = clean_run
    out = tmp_path / "out"
    address = ray_cluster.get_runtime_context().gcs_address
    argv = _cli(src, out, tmp_path, "--engine", "ray", "--workers", "2", "--address", address)
    proc = subprocess.Popen(argv, env=_env())
    _wait_lines(out / "manifest.jsonl", 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(_lines(out / "manifest.jsonl")) < len(names), "killed too late to test resume"
    assert subprocess.run(argv, env=_env()).returncode == 0
    _done_once(out / "manifest.jsonl", names)
    assert _bytes(out, names) == clean
