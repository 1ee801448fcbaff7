"""Batch benchmark: items/s of ``restorekit.batch.run`` per engine, and its per-item overhead
against a bare ``rk.solve`` loop over the same measurements already in memory.

The same N blurred, noisy 16-bit PNGs (held-out images and dead-leaves, ``--size``²) are
restored by TV Chambolle–Pock with a fixed iteration count (``--iters``, no early stop; pick it
so one solve takes about a second) in four ways, each into a fresh folder:

1. a bare loop: ``rk.solve(y, op, prior)`` on tensors prepared beforehand (no reading, writing,
   manifest or noise estimate) — the peer;
2. ``batch.run(engine="local", workers=1)`` (in this process);
3. ``batch.run(engine="local", workers=2)`` (two spawned processes);
4. ``batch.run(engine="ray", workers=2)`` (two actors on a local Ray cluster; skipped without Ray).

Reported: wall time (with start-up: process spawn, Ray start, prior load), items/s over the wall
time and in steady state (between the first and the last item finished, start-up excluded), and for
the one-worker engine the overhead per item, (t_batch − t_bare)/N (best of ``--repeat``), as a
share of the bare solve time per item, and the same overhead measured inside each item.
Run: ``python benchmarks/batch.py [--n 32] [--size 64] [--iters 300] [--repeat 2]``; the table is
printed and written to ``benchmarks/batch_results.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import restorekit as rk
from restorekit import batch, data, io, operators


def make_inputs(folder: Path, n: int, size: int) -> Path:
    (folder / "in").mkdir(parents=True)
    k = operators.gaussian_kernel(1.5)
    np.save(folder / "k.npy", k.numpy())
    for i in range(n):
        name = data.HELD_OUT[i % len(data.HELD_OUT)]
        x = (
            data.load_image(name, size=size, color=False)
            if i < len(data.HELD_OUT)
            else data.dead_leaves(size, generator=torch.Generator().manual_seed(i))
        )
        y = operators.blur(k, noise_sigma=0.02, generator=torch.Generator().manual_seed(i))(x)
        io.write_image(folder / "in" / f"img{i:03d}.png", y.clamp(0, 1), bit_depth=16)
    return folder / "in"


def bare_loop(src: Path, task: batch.Task) -> float:
    """rk.solve over the measurements, read and built before the clock starts."""
    problems = [io.read_measurement(p, task.operator, **task.operator_args) for p in sorted(src.iterdir())]
    prior = rk.priors.TV(weight=task.weight)
    start = time.perf_counter()
    for m in problems:
        rk.solve(m.y, m.operator, prior, solver=task.solver, **task.params)
    return time.perf_counter() - start


def timed_run(src, out, task, **kwargs) -> tuple[float, float]:
    """(wall seconds with start-up, steady items/s = (N − 1) / (last finish − first finish))."""
    from datetime import datetime

    start = time.perf_counter()
    summary = batch.run(src, out, task, progress=False, **kwargs)
    seconds = time.perf_counter() - start
    if summary.failed or summary.done != len(list(src.iterdir())):
        raise RuntimeError(f"benchmark run failed: {summary}")
    ends = sorted(datetime.fromisoformat(r["finished"]).timestamp() for r in summary.records)
    return seconds, (len(ends) - 1) / (ends[-1] - ends[0]), summary.records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--repeat", type=int, default=2, help="runs of the bare loop and the 1-worker batch")
    p.add_argument("--out", default=str(Path(__file__).with_name("batch_results.md")))
    args = p.parse_args()
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    root = Path(tempfile.mkdtemp(prefix="rk-batch-bench-"))
    try:
        src = make_inputs(root, args.n, args.size)
        task = batch.Task(
            operator="blur",
            operator_args={"kernel": str(root / "k.npy"), "noise_sigma": 0.02},
            prior="tv",
            weight=0.01,
            solver="chambolle-pock",
            params={"max_iter": args.iters, "tol": 1e-12},
        )
        # bare loop and 1-worker batch alternate, best of --repeat: the machine's load drifts
        bare, local1 = float("inf"), (float("inf"),)
        for r in range(args.repeat):
            bare = min(bare, bare_loop(src, task))
            local1 = min(local1, timed_run(src, root / f"l1-{r}", task), key=lambda t: t[0])
        rows = [("bare rk.solve loop (peer)", (bare, args.n / bare)), ("batch local, 1 worker", local1[:2])]
        rows.append(("batch local, 2 workers", timed_run(src, root / "l2", task, workers=2)[:2]))
        try:
            import ray  # noqa: F401

            rows.append(
                ("batch ray, 2 workers", timed_run(src, root / "r2", task, engine="ray", workers=2)[:2])
            )
        except ImportError:
            print("ray not installed: skipping the Ray engine")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    per_item = bare / args.n
    overhead = (local1[0] - bare) / args.n
    # the same overhead measured inside each item (same moment, so robust to load drift)
    inner = np.median([r["seconds"] - r["solve_seconds"] for r in local1[2]])
    inner_share = inner / np.median([r["solve_seconds"] for r in local1[2]])
    lines = [
        f"# Batch benchmark ({platform.machine()}, {os.cpu_count()} CPUs, torch threads 1 per worker, "
        f"load average {os.getloadavg()[0]:.1f} at the end)",
        "",
        f"{args.n} blurred 16-bit PNGs of {args.size}², TV Chambolle–Pock, {args.iters} iterations "
        f"(bare solve {per_item:.3f} s per item). Wall times include start-up.",
        "",
        "| engine | wall (s) | items/s (wall) | items/s (steady) | wall / bare loop |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (seconds, steady) in rows:
        lines.append(
            f"| {name} | {seconds:.2f} | {args.n / seconds:.2f} | {steady:.2f} | {seconds / bare:.2f} |"
        )
    lines += [
        "",
        f"Per-item overhead of the 1-worker batch (read, operator build, atomic 16-bit write, "
        f"manifest line), best of {args.repeat}: wall difference to the bare loop "
        f"{overhead * 1000:.1f} ms = {100 * overhead / per_item:.1f} % of a {per_item:.2f} s solve; "
        f"measured inside each item (item seconds − solve seconds, median, manifest line "
        f"excluded): {inner * 1000:.1f} ms = {100 * inner_share:.1f} %.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with io.atomic_write(args.out) as tmp:
        tmp.write_text(text)


if __name__ == "__main__":
    main()
