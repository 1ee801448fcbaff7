"""Shared training utilities for the scripts that produce restorekit's shipped weights.

The API is deliberately small:

- :class:`EMA` — exponential moving average of a model's parameters, with warm-up
  (decay_n = min(decay, (1 + n) / (10 + n)) after n updates).
- :class:`PatchPool` — a pre-generated pool of training patches (optionally with integer class
  labels) and a cheap seeded sampler that applies random flips and 90° rotations.
- :func:`cosine_lr` — learning-rate factor: linear warm-up then cosine decay to ``floor``.
- :func:`save_checkpoint` / :func:`load_checkpoint` — resumable training state in one
  directory (``state.pt`` loaded with ``weights_only=True``, no arbitrary pickles).

Everything random takes a ``torch.Generator``; nothing here seeds the global RNG.
"""

from __future__ import annotations

import copy
import math
import os

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
        idx = torch.randint(len(self), (batch,), generator=generator)
        x = self.patches[idx]
        k = torch.randint(4, (batch,), generator=generator)
        flip = torch.rand(batch, generator=generator) < 0.5
        for r in range(1, 4):
            sel = k == r
            if sel.any():
                x[sel] = torch.rot90(x[sel], r, dims=(-2, -1))
        x[flip] = x[flip].flip(-1)
        return x, (self.labels[idx] if self.labels is not None else None)


def cosine_lr(step: int, total: int, warmup: int = 200, floor: float = 0.05) -> float:
    """LR multiplier: linear warm-up over ``warmup`` steps, then cosine from 1 to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


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
