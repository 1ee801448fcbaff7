"""One restoration task (operator × prior × solver, same for every item) and one item's run.

A :class:`Task` is plain data (picklable, JSON-able) so that it travels to pool processes and
Ray actors unchanged; :func:`restore_item` is the whole per-item work:

1. read the measured file and build its operator (:func:`restorekit.io.read_measurement`);
2. solve with the item's own generator, seeded by :func:`item_seed` from the item's name;
3. write the output atomically with the input's bit depth (a non-finite result never gets
   here: the solver raises FloatingPointError);
4. with a reference image, measure PSNR/SSIM against it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

_PRIORS: dict[tuple, object] = {}


@dataclass(frozen=True)
class Task:
    """What to do with every item.

    ``operator``: one of :data:`restorekit.io.MEASURED_OPERATORS`; ``operator_args``: the keyword
    arguments of :func:`~restorekit.io.read_measurement` (file paths as strings, ``noise_sigma``
    None to estimate it per item); ``prior``: ``"tv"`` or a shipped prior name with
    ``weight`` for TV; ``solver`` and its ``params``; ``bit_depth`` of the outputs (None: the
    input's); ``seed``: mixed into every item's seed.
    """

    operator: str
    prior: str
    solver: str
    operator_args: dict = field(default_factory=dict)
    weight: float | None = None
    params: dict = field(default_factory=dict)
    device: str = "cpu"
    bit_depth: int | None = None
    seed: int = 0

    def describe(self) -> dict:
        """The task as JSON-able data, for manifests."""
        return asdict(self)


def item_seed(name: str, seed: int = 0) -> int:
    """A 63-bit seed from an item's name (and the task seed): SHA-256 of ``"seed:name"``.

    The same name gives the same seed in any process, order or engine, so a rerun of one item
    is bit-identical on CPU whatever else ran with it.

    >>> item_seed("frame_001.png") == item_seed("frame_001.png")
    True
    >>> item_seed("frame_001.png") != item_seed("frame_001.png", seed=1) != item_seed("frame_002.png")
    True
    >>> 0 <= item_seed("frame_001.png") < 2 ** 63
    True
    """
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def load_prior(name: str, weight: float | None = None, device="cpu"):
    """The prior ``name`` (``"tv"`` with ``weight``, default None: noise-scaled, or a shipped prior), loaded once
    per process and reused: networks are not reloaded for every item."""
    from .. import priors

    key = (name, weight, str(device))
    if key not in _PRIORS:
        if name == "tv":
            _PRIORS[key] = priors.TV(weight=weight)
        elif weight is not None:
            raise ValueError(f"weight applies to prior 'tv' only, got prior {name!r}")
        else:
            _PRIORS[key] = priors.load(name, device=device)
    return _PRIORS[key]


def restore_item(
    task: Task,
    source,
    output,
    *,
    name: str | None = None,
    reference=None,
    overwrite: bool = True,
    progress: bool = False,
) -> dict:
    """Restore the measured file ``source`` into ``output``; returns the manifest fields
    (seed, seconds, nfe, noise_sigma, notes, psnr/ssim with ``reference``). Errors propagate."""
    from .. import solve
    from ..io import WRITE_BIT_DEPTHS, read_image, read_measurement, write_image
    from ..metrics import psnr, ssim

    name = Path(source).name if name is None else name
    seed = item_seed(name, task.seed)
    start = time.perf_counter()
    # 1. the measurement and its operator
    m = read_measurement(source, task.operator, device=task.device, **task.operator_args)
    prior = load_prior(task.prior, task.weight, task.device)
    # 2. the solve, with the item's own generator
    gen = torch.Generator(device=m.y.device).manual_seed(seed)
    result = solve(
        m.y, m.operator, prior, solver=task.solver, generator=gen, progress=progress, **task.params
    )
    # 3. the output, written atomically: the input's bit depth, or for a sinogram or k-space
    #    (no input bit depth) the most precise the format holds
    bit_depth = task.bit_depth
    if bit_depth is None and m.info is None:
        bit_depth = max(WRITE_BIT_DEPTHS.get(Path(output).suffix.lower(), (8,)))
    write_image(output, result.x, like=m.info, bit_depth=bit_depth, overwrite=overwrite)
    record = {
        "seed": seed,
        "seconds": round(time.perf_counter() - start, 4),
        "solve_seconds": round(result.seconds, 4),
        "nfe": result.nfe,
        "noise_sigma": m.noise_sigma,
        "noise_estimated": m.noise_estimated,
        "notes": list(m.notes),
    }
    # 4. quality against a reference, when there is one
    if reference is not None:
        ref, _ = read_image(reference)
        x = result.x.clamp(0, 1).cpu()
        if ref.shape != x.shape:
            raise ValueError(
                f"reference {str(reference)!r} has shape {tuple(ref.shape)}, the result {tuple(x.shape)}"
            )
        record.update(psnr=round(psnr(x, ref).item(), 4), ssim=round(ssim(x, ref).item(), 5))
    return record
