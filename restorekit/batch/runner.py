"""The batch driver: items, manifest, resume, progress; engines run the items.

Each engine gets the items still to do and calls ``record(item, result)`` in the driver as
results arrive; only the driver appends to the manifest (one writer, one ``write`` per line,
fsynced). Outputs are written by the workers themselves through
:func:`restorekit.io.write_image` (temporary file + rename), so with the Ray engine the input
and output folders must be on a file system every node sees.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .task import Task, item_seed, restore_item

ENGINES = ("local", "ray")
#: Attempts after the first when a worker process dies under an item (not when the item fails).
RETRIES = 2
_LIST_SUFFIXES = (".txt", ".lst")
#: Task fields every manifest line records; a resumed run must match them.
_TASK_FIELDS = ("operator", "operator_args", "prior", "weight", "solver", "params", "device")


@dataclass(frozen=True)
class Item:
    name: str
    source: str
    output: str
    reference: str | None


@dataclass
class Summary:
    """How a :func:`run` went: counts, the manifest path and this run's manifest records."""

    done: int
    skipped: int
    failed: int
    manifest: Path
    seconds: float
    records: list[dict] = field(default_factory=list)


def list_items(inputs) -> list[Path]:
    """The measured files of ``inputs``: a folder (its image/``.npy`` files, sorted, hidden ones
    left out), a ``.txt``/``.lst`` file with one path per line (relative to the list's folder;
    blank lines and ``#`` comments skipped), or a list of paths."""
    from ..io import READ_EXTENSIONS

    if isinstance(inputs, (list, tuple)):
        paths = [Path(p) for p in inputs]
    elif isinstance(inputs, (str, os.PathLike)) and Path(inputs).is_dir():
        paths = sorted(
            p
            for p in Path(inputs).iterdir()
            if p.is_file() and p.suffix.lower() in READ_EXTENSIONS and not p.name.startswith(".")
        )
    elif isinstance(inputs, (str, os.PathLike)) and Path(inputs).suffix.lower() in _LIST_SUFFIXES:
        if not Path(inputs).is_file():
            raise ValueError(f"inputs list {str(inputs)!r} does not exist")
        lines = [ln.strip() for ln in Path(inputs).read_text().splitlines()]
        paths = [Path(inputs).parent / ln for ln in lines if ln and not ln.startswith("#")]
    else:
        raise ValueError(
            f"inputs must be a folder, a .txt/.lst list of paths or a list of paths, got {inputs!r}"
        )
    if not paths:
        raise ValueError(f"inputs {str(inputs)!r} holds no measured files")
    _refuse_repeats(
        [p.name for p in paths],
        "inputs must have distinct file names (they name outputs and seeds), repeated: {}",
    )
    return paths


def _refuse_repeats(values: list[str], problem: str) -> None:
    """A ValueError ``problem`` (a format string) naming up to five values given more than once."""
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(problem.format(", ".join(repeated[:5])))


def _extension(source: Path, operator: str) -> str:
    return ".tif" if operator in ("ct", "mri") else source.suffix.lower()


def default_output(source, operator: str) -> Path:
    """``NAME_restored.EXT`` next to ``source``: its own extension, ``.tif`` (float) for a
    sinogram or k-space."""
    source = Path(source)
    return source.with_name(source.stem + "_restored" + _extension(source, operator))


def read_manifest(path) -> dict[str, dict]:
    """The last record of every item in a JSONL manifest; a torn last line (the driver killed
    mid-write) is ignored."""
    last = {}
    if Path(path).exists():
        for line in Path(path).read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            last[record["item"]] = record
    return last


class _Manifest:
    """Append-only JSONL file; each record is one ``write`` of one line, flushed and fsynced."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        if os.fstat(self.fd).st_size:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    os.write(self.fd, b"\n")  # end a line torn by a killed run; read_manifest skips it

    def append(self, record: dict) -> None:
        os.write(self.fd, (json.dumps(record) + "\n").encode())
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def _check_same_task(previous: dict, described: dict, manifest: Path) -> None:
    """Resume only the task that wrote the manifest: skipping items done with other settings
    would pass their results off as this task's."""
    for record in previous.values():
        if record.get("status") != "done":
            continue
        differ = [k for k in _TASK_FIELDS if record.get(k) != described[k]]
        if differ:
            raise ValueError(
                f"output_dir already holds results of another task (manifest {str(manifest)!r}: "
                f"{', '.join(f'{k}={record.get(k)!r}' for k in differ)}); use a new output "
                "folder, or delete the manifest to redo everything"
            )


def attempt(task: Task, item: Item) -> dict:
    """Run one item in a worker; never raises for a bad item: failures come back as data."""
    start = time.perf_counter()
    try:
        result = restore_item(task, item.source, item.output, name=item.name, reference=item.reference)
        result["status"], result["error"] = "done", None
    except Exception as e:  # one bad item must not stop the batch: recorded as failed
        result = {
            "status": "failed",
            "error": f"{type(e).__name__}: {e}",
            "seed": item_seed(item.name, task.seed),
            "seconds": round(time.perf_counter() - start, 4),
        }
    result["worker"] = f"{os.getpid()}@{socket.gethostname()}"
    return result


def _items(inputs, output_dir: Path, task: Task, reference, out_ext) -> list[Item]:
    items = []
    for source in list_items(inputs):
        ext = out_ext if out_ext is not None else _extension(source, task.operator)
        ref = None
        if reference is not None and (Path(reference) / source.name).is_file():
            ref = str(Path(reference) / source.name)
        items.append(Item(source.name, str(source), str(output_dir / (source.stem + ext)), ref))
    sources = {os.path.realpath(i.source) for i in items}
    over = [i.output for i in items if os.path.realpath(i.output) in sources]
    if over:
        raise ValueError(f"output_dir would overwrite the inputs ({over[0]!r}); choose another folder")
    _refuse_repeats(
        [i.output for i in items],
        "inputs with the same stem would share an output: {}; rename them or pass distinct folders",
    )
    return items


def run(
    inputs,
    output_dir,
    task: Task,
    *,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    reference=None,
    out_ext: str | None = None,
    manifest=None,
    progress: bool | None = None,
) -> Summary:
    """Restore every measured file of ``inputs`` into ``output_dir`` with ``task``.

    Parameters
    ----------
    inputs : a folder, a ``.txt`` list of paths, or a list of paths (see :func:`list_items`).
    output_dir : outputs go to ``output_dir/STEM.EXT``; the manifest to
        ``output_dir/manifest.jsonl`` unless ``manifest`` names another file.
    task : the :class:`Task` every item runs.
    engine : ``"local"`` (in this process for one worker, else a pool of ``workers`` spawned
        processes) or ``"ray"`` (``workers`` Ray actors, on the cluster at ``address`` or a local
        one started here).
    reference : a folder of ground-truth images with the same file names; items with one get
        PSNR/SSIM in the manifest.
    out_ext : output extension (default: the input's; ``.tif`` for a sinogram or k-space).
    progress : a bar with items/s and ETA; default on when stderr is a terminal.

    Each item is restored with the seed :func:`item_seed` of its name, so a rerun gives the same
    bits on CPU; items already ``done`` in the manifest with their output present are skipped.
    """
    from tqdm.auto import tqdm

    from ..io import WRITE_BIT_DEPTHS, stale_temporaries

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if not isinstance(task, Task):
        raise TypeError(f"task must be a restorekit.batch.Task, got {type(task).__name__}")
    if out_ext is not None and out_ext.lower() not in WRITE_BIT_DEPTHS:
        raise ValueError(f"out_ext must be one of {', '.join(WRITE_BIT_DEPTHS)}, got {out_ext!r}")
    if reference is not None and not Path(reference).is_dir():
        raise ValueError(f"reference must be a folder of ground-truth images, got {str(reference)!r}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    manifest = output_dir / "manifest.jsonl" if manifest is None else Path(manifest)
    items = _items(inputs, output_dir, task, reference, out_ext)
    # resume: done items with their output on disk are skipped; leftovers of killed writes go
    previous = read_manifest(manifest)
    described = task.describe()
    try:
        json.dumps(described)
    except TypeError as e:
        raise TypeError(
            f"task fields must be JSON values (file paths as str, numbers), for the manifest: {e}"
        ) from None
    _check_same_task(previous, described, manifest)
    finished = {
        i.name
        for i in items
        if previous.get(i.name, {}).get("status") == "done"
        and Path(i.output).exists()
        and previous[i.name]["seed"] == item_seed(i.name, task.seed)
    }
    todo = [i for i in items if i.name not in finished]
    for tmp in stale_temporaries(output_dir):
        tmp.unlink(missing_ok=True)
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=len(todo), unit="item", desc="restorekit batch", disable=not show, leave=True)
    log, records, failures, start = _Manifest(manifest), [], [0], time.perf_counter()

    def record(item: Item, result: dict) -> None:
        line = {
            "item": item.name,
            "input": item.source,
            "output": item.output,
            **result,
            "engine": engine,
            **{k: described[k] for k in _TASK_FIELDS},
            "reference": item.reference,
            "finished": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        }
        log.append(line)
        records.append(line)
        failures[0] += line["status"] == "failed"
        bar.update(1)
        bar.set_postfix(failed=failures[0], refresh=False)

    try:
        if todo:
            from . import engines

            getattr(engines, engine)(todo, task, workers, record, address=address)
    finally:
        bar.close()
        log.close()
    return Summary(
        done=len(records) - failures[0],
        skipped=len(finished),
        failed=failures[0],
        manifest=manifest,
        seconds=time.perf_counter() - start,
        records=records,
    )
