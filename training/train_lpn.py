"""Train the shipped grey-scale LPN (restorekit/weights/lpn-gray) on CPU.

Recipe (Fang, Buchanan & Sulam, ICLR 2024, shortened for a CPU budget):
  1. ℓ1 pre-training: loss ‖f(x + σn) − x‖₁ (mean over pixels), Adam lr 1e-3.
  2. proximal matching: loss 1 − exp(−‖f(y) − x‖²/γ²) per image, Adam lr 1e-4, in four stages
     γ = 0.08·sqrt(n)·{8, 4, 2, 1} (n = pixels × channels of a patch).
W_k ≥ 0 and a ≥ 0 are restored by ``clamp_weights()`` after every optimiser step.

Data: ``restorekit.data.random_patches`` (training images + synthetic dead leaves and
phantoms; never HELD_OUT), a fixed pool of patches drawn once from the seed; each step draws a
batch from the pool (with a random dihedral transform) and fresh Gaussian noise σ = 0.1.
Seeded and resumable: a checkpoint (``training.common.save_checkpoint``: model, optimiser,
generator state, step, elapsed seconds, loss curve) is written to the ``--checkpoint`` folder
every ``--save-every`` steps and picked up on restart.

The stages are fractions of the budget (:class:`training.common.Budget`): of ``--l1-steps +
4·--pm-steps`` steps, or of ``--minutes`` of wall time when that runs out first (a GPU lease).

    OMP_NUM_THREADS=1 nohup python -m training.train_lpn > training/lpn.log 2>&1 &
    python -m training.train_lpn --device cuda --hidden 64 --layers 6 --patch 64 --batch 32 \
        --l1-steps 100000 --pm-steps 20000 --minutes 6      # a time-limited GPU run
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from tqdm import tqdm

from restorekit.data import random_patches
from restorekit.priors.lpn import LPN
from training.common import Budget, PatchPool, hardware, load_checkpoint, save_checkpoint, training_device

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "restorekit" / "weights" / "lpn-gray"))
    p.add_argument(
        "--checkpoint", default=str(ROOT / "runs" / "lpn"), help="folder of the resumable training state"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sigma", type=float, default=0.1)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--patch", type=int, default=40)
    p.add_argument("--pool", type=int, default=3000, help="number of training patches drawn once")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--l1-steps", type=int, default=500)
    p.add_argument("--pm-steps", type=int, default=75, help="steps per proximal-matching stage")
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--minutes", type=float, default=None, help="wall-time budget (stages scale to it)")
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def schedule(args) -> list[tuple[str, float, float, int]]:
    """(loss, lr, gamma, steps) per stage; gamma is unused by the ℓ1 stage."""
    n = args.patch**2
    stages = [("l1", 1e-3, 0.0, args.l1_steps)]
    stages += [("pm", 1e-4, 0.08 * math.sqrt(n) * k, args.pm_steps) for k in (8, 4, 2, 1)]
    return stages


def loss_fn(kind: str, gamma: float, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if kind == "l1":
        return (out - x).abs().mean()
    # proximal matching: 1 − exp(−‖f(y) − x‖²/γ²) per image, averaged over the batch
    d2 = (out - x).flatten(1).pow(2).sum(1)
    return (1 - torch.exp(-d2 / gamma**2)).mean()


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    device = training_device(args.device)
    model = LPN(channels=1, hidden=args.hidden, layers=args.layers, sigma=args.sigma)
    model.reset_parameters(torch.Generator().manual_seed(args.seed))
    model.to(device)
    gen = torch.Generator(device).manual_seed(args.seed + 1)
    # 1. the fixed patch pool (drawn from its own seed so resume reproduces it)
    pool = PatchPool(
        random_patches(
            args.pool, args.patch, generator=torch.Generator().manual_seed(args.seed + 2), device=device
        )
    )
    stages = schedule(args)
    total = sum(s[3] for s in stages)
    opt = torch.optim.Adam(model.parameters(), lr=stages[0][1])
    parts = {"model": model, "optimizer": opt, "generator": gen}
    step, extra = load_checkpoint(args.checkpoint, **parts)
    losses = list(extra.get("losses", []))
    budget = Budget(total, args.minutes, float(extra.get("elapsed", 0.0)))
    if step:
        print(f"resumed from {args.checkpoint} at step {step}", flush=True)

    def save():
        save_checkpoint(args.checkpoint, step, {"elapsed": budget.elapsed, "losses": losses}, **parts)

    bar = tqdm(total=total, initial=step, mininterval=30, desc="lpn")
    ends = [sum(s[3] for s in stages[: i + 1]) / total for i in range(len(stages))]
    running = 0.0
    while not budget.done(step):
        # 2. the stage this point of the budget belongs to
        progress = budget.progress(step)
        i = next(k for k, e in enumerate(ends) if progress < e)
        kind, lr, gamma, _ = stages[i]
        for group in opt.param_groups:
            group["lr"] = lr
        # 3. a batch of clean patches and fresh noise
        x, _ = pool.sample(args.batch, gen)
        y = x + args.sigma * torch.randn(x.shape, generator=gen, device=device)
        # 4. gradient step on the loss, then project W, a ≥ 0
        loss = loss_fn(kind, gamma, model(y), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.clamp_weights()
        step += 1
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        bar.update(1)
        if step % args.save_every == 0 or budget.done(step):
            losses.append(running)
            save()
            bar.write(
                f"step {step} stage {i} ({kind}, gamma={gamma:.2f}) loss {running:.5f} "
                f"elapsed {budget.elapsed / 60:.1f} min"
            )
    bar.close()
    elapsed = budget.elapsed
    model.cpu()
    # 5. the shipped weights and a record of how they were made
    out = Path(args.out)
    model.save_pretrained(out)
    (out / "prior.json").write_text(
        json.dumps(
            {
                "kind": "lpn",
                "description": f"Learned proximal network, grey images, prox of a learned prior at "
                f"training noise sigma={args.sigma} (Fang et al. 2024)",
            },
            indent=2,
        )
        + "\n"
    )
    (out / "training.json").write_text(
        json.dumps(
            {
                "args": vars(args) | {"out": None, "checkpoint": None},
                "stages": [dict(loss=k, lr=lr, gamma=g, steps=s) for k, lr, g, s in stages],
                "steps": step,
                "wall_seconds": round(elapsed, 1),
                "hardware": hardware(device),
                "params": sum(p.numel() for p in model.parameters()),
                "torch": torch.__version__,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"done: {step} steps in {elapsed / 60:.1f} min, saved to {out}", flush=True)


if __name__ == "__main__":
    main()
