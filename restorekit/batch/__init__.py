"""Restore many measured files: per-item seeds, atomic outputs, a JSONL manifest, resume.

    import restorekit as rk
    task = rk.batch.Task(operator="blur", operator_args={"kernel": "psf.npy"}, prior="tv",
                         solver="chambolle-pock")
    summary = rk.batch.run("frames/", "restored/", task, workers=2)          # process pool
    summary = rk.batch.run("frames/", "restored/", task, engine="ray")       # Ray actors

Rerunning the same call resumes: items whose output and ``done`` manifest line exist are
skipped, missing or failed ones are redone. One bad item never stops the batch.
"""

from .runner import ENGINES, Summary, default_output, list_items, read_manifest, run
from .task import Task, item_seed, load_prior, restore_item

__all__ = [
    "ENGINES",
    "Summary",
    "Task",
    "default_output",
    "item_seed",
    "list_items",
    "load_prior",
    "read_manifest",
    "restore_item",
    "run",
]
