"""Shared training utilities for the scripts that produce restorekit's shipped weights.

The API is deliberately small:

- :class:`EMA` — exponential moving average of a model's parameters, with warm-up
  (decay_n = min(decay, (1 + n) / (10 + n)) after n updates).
- :class:`PatchPool` — a pre-generated pool of training patches (optionally with integer class
  labels) and a cheap seeded sampler that applies random flips and 90° rotations.
- :class:`Budget` — training progress in [0, 1], by steps or by wall time, whichever runs
  out first, so one schedule serves a fixed step count on CPU and a fixed lease on a GPU.
- :func:`cosine_lr` — learning-rate factor of the progress: linear warm-up then cosine decay.
- :func:`training_device` — the torch device a script trains on (TF32 on for CUDA).
- :func:`save_checkpoint` / :func:`load_checkpoint` — resumable training state in one
  directory (``state.pt`` loaded with ``weights_only=True``, no arbitrary pickles).

Everything random takes a ``torch.Generator``; nothing here seeds the global RNG.
"""

from __future__ import annotations

import copy
import math
import os
import platform
import time

import torch


class EMA:
    """Parameter EMA: θ_ema ← d·θ_ema + (1 − d)·θ, with d = min(decay, (1 + n)/(10 + n))."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.num_updates += 1
        n = self.num_updates
        d = min(self.decay, (1 + n) / (10 + n))
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.num_updates = int(state["num_updates"])


class PatchPool:
    """A fixed pool of patches (N, C, P, P) in [0, 1] with optional labels (N,).

    :meth:`sample` draws a batch uniformly from the pool (with replacement) and applies one of
    the 8 dihedral transforms (rot90 × flip) per sample, so a pool of N patches yields 8N
    distinct training patches at almost no cost.
    """

    def __init__(self, patches: torch.Tensor, labels: torch.Tensor | None = None):
        if patches.ndim != 4:
            raise ValueError(f"patches must be (N, C, P, P), got shape {tuple(patches.shape)}")
        if labels is not None and labels.shape != (patches.shape[0],):
            raise ValueError(f"labels must be ({patches.shape[0]},), got {tuple(labels.shape)}")
        self.patches = patches.contiguous()
        self.labels = labels

    def __len__(self) -> int:
        return self.patches.shape[0]

    def sample(self, batch: int, generator: torch.Generator):
        """Return (x, labels) with x (batch, C, P, P); labels is None for an unlabelled pool."""
        dev = self.patches.device  # the generator lives on the pool's device
        idx = torch.randint(len(self), (batch,), generator=generator, device=dev)
        x = self.patches[idx]
        k = torch.randint(4, (batch,), generator=generator, device=dev)
        flip = torch.rand(batch, generator=generator, device=dev) < 0.5
        for r in range(1, 4):
            sel = k == r
            if sel.any():
                x[sel] = torch.rot90(x[sel], r, dims=(-2, -1))
        x[flip] = x[flip].flip(-1)
        return x, (self.labels.to(dev)[idx] if self.labels is not None else None)


def cosine_lr(progress: float, warmup: float = 0.03, floor: float = 0.05) -> float:
    """LR multiplier at ``progress`` ∈ [0, 1] of training: linear warm-up over the first
    ``warmup`` fraction, then cosine from 1 down to ``floor``."""
    if progress < warmup:
        return max(progress / warmup, 0.01)
    t = min(1.0, (progress - warmup) / max(1e-12, 1 - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


class Budget:
    """How far training has got: progress = max(step / steps, wall / (60·minutes)) ∈ [0, 1].

    ``minutes=None`` is a pure step budget (reproducible, the CPU default); with ``minutes`` the
    run ends when either budget is spent, and the learning-rate schedule and loss stages follow
    the same progress, so a time-limited run on a fast device still anneals fully. ``elapsed``
    carries the wall time of earlier runs (resume).
    """

    def __init__(self, steps: int, minutes: float | None = None, elapsed: float = 0.0):
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if minutes is not None and minutes <= 0:
            raise ValueError(f"minutes must be > 0, got {minutes}")
        self.steps, self.minutes = steps, minutes
        self._start = time.time() - elapsed

    @property
    def elapsed(self) -> float:
        """Wall seconds of training so far, earlier runs included."""
        return time.time() - self._start

    def progress(self, step: int) -> float:
        p = step / self.steps
        if self.minutes is not None:
            p = max(p, self.elapsed / (60 * self.minutes))
        return min(1.0, p)

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0


def hardware(device: torch.device) -> str:
    """What trained it, for the training records: the GPU's name, or the CPU and thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU thread(s) (torch)"


def training_device(name: str | None = None) -> torch.device:
    """``name`` ('cpu', 'cuda', 'cuda:1'), or CUDA when available; TF32 matmuls on CUDA."""
    device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return device


def _state(part):
    return part.get_state() if isinstance(part, torch.Generator) else part.state_dict()


def _restore(part, state) -> None:
    if isinstance(part, torch.Generator):
        part.set_state(state)
    else:
        part.load_state_dict(state)


def save_checkpoint(directory: str, step: int, extra: dict | None = None, **parts) -> str:
    """Atomically write the training state to ``directory/state.pt``; returns its path.

    ``parts`` name the objects to save: anything with ``state_dict()`` (model, optimiser,
    :class:`EMA`, LR scheduler) or a ``torch.Generator``; ``extra`` is a dict of plain values
    (elapsed time, running loss, …). :func:`load_checkpoint` takes the same names.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "state.pt")
    state = {"step": step, "extra": extra or {}, **{name: _state(p) for name, p in parts.items()}}
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)
    return path


def load_checkpoint(directory: str, **parts) -> tuple[int, dict]:
    """Restore ``parts`` (the names given to :func:`save_checkpoint`) from ``directory/state.pt``
    (``weights_only=True``); returns (step, extra), or (0, {}) when there is no checkpoint."""
    path = os.path.join(directory, "state.pt")
    if not os.path.exists(path):
        return 0, {}
    state = torch.load(path, map_location="cpu", weights_only=True)
    for name, part in parts.items():
        _restore(part, state[name])
    return int(state["step"]), dict(state["extra"])
