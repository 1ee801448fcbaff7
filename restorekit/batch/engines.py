"""Engines: run items with :func:`~restorekit.batch.runner.attempt` and hand each result to
``record`` in the driver, as it arrives.

Both keep at most ``workers`` items in flight (a sliding window), so a worker that dies costs
only its own item, which is retried up to :data:`~restorekit.batch.runner.RETRIES` times; an
item that merely fails (bad file, NaN result) comes back as a ``failed`` result and is not
retried.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

from .runner import RETRIES, attempt


def _died(item, task, attempts: int, error: str) -> dict:
    from .task import item_seed

    return {
        "status": "failed",
        "error": f"worker died {attempts} times under this item ({error})",
        "seed": item_seed(item.name, task.seed),
        "seconds": None,
        "attempts": attempts,
    }


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def local(items, task, workers: int, record, *, address=None) -> None:
    """One worker: in this process. More: a pool of spawned processes (each loads the prior once,
    on its first item, and keeps it); a pool broken by a dying worker is rebuilt and the items
    that were in flight are retried."""
    if address is not None:
        raise ValueError("address applies to engine='ray' only")
    if workers == 1:
        for item in items:
            record(item, {**attempt(task, item), "attempts": 1})
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, (os.cpu_count() or 1) // workers)
    pending = deque(items)
    tries: dict[str, int] = {}
    while pending:
        with ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads,),
        ) as pool:
            inflight: dict[Any, Any] = {}  # future → item
            while pending or inflight:
                while pending and len(inflight) < workers:
                    item = pending.popleft()
                    tries[item.name] = tries.get(item.name, 0) + 1
                    inflight[pool.submit(attempt, task, item)] = item
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                lost = []
                for future in done:
                    item = inflight.pop(future)
                    try:
                        record(item, {**future.result(), "attempts": tries[item.name]})
                    except BrokenProcessPool:
                        lost.append(item)
                if lost:  # a worker died: the pool is broken and every item in flight is lost
                    for item in lost + list(inflight.values()):
                        if tries[item.name] > RETRIES:
                            record(item, _died(item, task, tries[item.name], "process pool broken"))
                        else:
                            pending.appendleft(item)
                    break


class _RayWorker:
    """A Ray actor holding one loaded prior (through the per-process cache of ``load_prior``)."""

    def __init__(self, task):
        import torch

        from .task import load_prior

        torch.set_num_threads(1)
        self.task = task
        load_prior(task.prior, task.weight, task.device)

    def run(self, item) -> dict:
        return attempt(self.task, item)


def ray(items, task, workers: int, record, *, address=None) -> None:
    """``workers`` Ray actors (1 CPU each, and 1 GPU each when the task's device is CUDA) on the
    cluster at ``address``, the one this process is already connected to, or a local cluster
    started here (and stopped at the end). A dead actor is restarted and its item retried by Ray
    (``max_restarts`` / ``max_task_retries``); an item whose retries run out is recorded failed."""
    try:
        import ray as rayl
    except ImportError:
        raise ValueError("engine='ray' needs Ray: pip install 'restorekit[distributed]'") from None
    started = not rayl.is_initialized()
    if started:
        rayl.init(
            address=address,
            num_cpus=workers if address is None else None,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    gpus = 1 if str(task.device).startswith("cuda") else 0
    # Any: Ray's stubs type an actor handle's methods as plain functions, without .remote
    actor: Any = rayl.remote(num_cpus=1, num_gpus=gpus, max_restarts=RETRIES, max_task_retries=RETRIES)(
        _RayWorker
    )
    actors = [actor.remote(task) for _ in range(workers)]
    try:
        pending, idle = deque(items), list(actors)
        inflight: dict[Any, tuple[Any, Any]] = {}  # object ref → (item, actor)
        while pending or inflight:
            while pending and idle:
                a, item = idle.pop(), pending.popleft()
                inflight[a.run.remote(item)] = (item, a)
            ready, _ = rayl.wait(list(inflight), num_returns=1)
            for ref in ready:
                item, a = inflight.pop(ref)
                try:
                    result = rayl.get(ref)
                except rayl.exceptions.RayError as e:
                    result = _died(item, task, RETRIES + 1, type(e).__name__)
                    a = actor.remote(task)  # the old actor is gone for good: replace it
                    actors.append(a)
                record(item, result)
                idle.append(a)
    finally:
        for a in actors:
            rayl.kill(a)
        if started:
            rayl.shutdown()
