"""Train restorekit's small, fully convolutional DDPM priors on patches (CPU friendly).

Model: diffusers ``UNet2DModel`` with ResNet blocks only (DownBlock2D / UpBlock2D, no
attention anywhere, mid-block attention off), so it applies to any image size divisible by
2^(levels − 1). Schedule: DDPM (Ho et al. 2020), linear β from 1e-4 to 0.02 over 1000 steps,
ε-prediction. Loss: E_{x0, t, ε} ‖ε − ε_θ(√ᾱ_t·u0 + √(1 − ᾱ_t)·ε, t, c)‖², u0 = 2x0 − 1.

Class-conditional models (``--conditional``) use ``num_class_embeds = num_classes + 1``; the
last index is the null class (``null_class = num_class_embeds − 1``), used for 15 % of the
training labels (label dropout), so the null branch is an unconditional prior. Classes:
0 photo (TRAINING photographs), 1 phantom (random ellipse phantoms), 2 text (the 'page' and
'text' images), 3 dead_leaves. Their names are written to ``classes.json`` in the output dir.

Data never touches ``restorekit.data.HELD_OUT`` (``random_patches`` refuses it).

Example::

    python -m training.train_diffusion --out restorekit/weights/diffusion-gray-cond \
        --conditional --channels 1 --steps 7000 --ckpt runs/gray-cond --max-minutes 80

Interrupting (SIGTERM/SIGINT) or hitting ``--max-minutes`` checkpoints and exports the EMA
weights; running the same command again resumes from ``--ckpt``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

import torch

from restorekit import data
from training.common import (
    EMA,
    Budget,
    PatchPool,
    cosine_lr,
    hardware,
    load_checkpoint,
    save_checkpoint,
    training_device,
)

CLASSES = ("photo", "phantom", "text", "dead_leaves")
TEXT_IMAGES = ("page", "text")
PHOTO_IMAGES = tuple(n for n in data.TRAINING if n not in TEXT_IMAGES)
# share of each class in the conditional pool
CLASS_SHARES = (0.5, 0.15, 0.15, 0.2)


def phantom_patches(n: int, size: int, generator: torch.Generator, device=None) -> torch.Tensor:
    """Random crops of ellipse phantoms drawn at 1×, 2× or 4× the patch size (several scales)."""
    out = torch.empty(n, 1, size, size, device=device)
    for i in range(n):
        scale = (1, 2, 4)[int(torch.randint(3, (1,), generator=generator))]
        img = data.ellipse_phantom(size * scale, generator=generator, device=device)[0]
        top, left = (int(torch.randint(size * (scale - 1) + 1, (1,), generator=generator)) for _ in range(2))
        out[i] = img[:, top : top + size, left : left + size]
    return out


def dead_leaves_patches(n: int, size: int, channels: int, generator: torch.Generator, device=None):
    return torch.cat([data.dead_leaves(size, channels, generator=generator, device=device) for _ in range(n)])


def build_pool(args, generator: torch.Generator, device=None) -> PatchPool:
    """Pre-generate the training pool on ``device`` (deterministic given the seed)."""
    n, p, c = args.pool_size, args.patch, args.channels
    if not args.conditional:
        return PatchPool(data.random_patches(n, p, c, generator=generator, device=device))
    counts = [int(round(s * n)) for s in CLASS_SHARES]
    crops = dict(generator=generator, synthetic_fraction=0.0, device=device)
    parts = [
        data.random_patches(counts[0], p, c, images=PHOTO_IMAGES, **crops),
        phantom_patches(counts[1], p, generator, device).expand(-1, c, -1, -1),
        data.random_patches(counts[2], p, c, images=TEXT_IMAGES, **crops),
        dead_leaves_patches(counts[3], p, c, generator, device),
    ]
    labels = torch.cat([torch.full((k,), i, dtype=torch.long, device=device) for i, k in enumerate(counts)])
    return PatchPool(torch.cat(parts), labels)


def build_model(args):
    from diffusers import UNet2DModel

    levels = len(args.block_channels)
    return UNet2DModel(
        sample_size=args.patch,
        in_channels=args.channels,
        out_channels=args.channels,
        block_out_channels=tuple(args.block_channels),
        layers_per_block=args.layers_per_block,
        down_block_types=("DownBlock2D",) * levels,
        up_block_types=("UpBlock2D",) * levels,
        add_attention=False,
        norm_num_groups=8,
        num_class_embeds=len(CLASSES) + 1 if args.conditional else None,
    )


def build_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        prediction_type="epsilon",
        clip_sample=False,
    )


def export(args, ema: EMA, step: int, seconds: float, loss_ema: float, trained_on: str) -> None:
    """Write the EMA weights in diffusers format: out/unet, out/scheduler, out/classes.json."""
    model = build_model(args)
    model.load_state_dict({k: v.cpu() for k, v in ema.model.state_dict().items()})
    if args.fp16:
        model = model.half()
    model.save_pretrained(os.path.join(args.out, "unet"), safe_serialization=True)
    build_scheduler().save_pretrained(os.path.join(args.out, "scheduler"))
    info = {
        "steps": step,
        "train_seconds": round(seconds, 1),
        "final_loss_ema": round(loss_ema, 5),
        "params": sum(p.numel() for p in model.parameters()),
        "hardware": trained_on,
        "args": vars(args),
    }
    if args.conditional:
        info["classes"] = list(CLASSES)
        with open(os.path.join(args.out, "classes.json"), "w") as f:
            json.dump({"classes": list(CLASSES), "null_class": len(CLASSES)}, f, indent=2)
    with open(os.path.join(args.out, "training_info.json"), "w") as f:
        json.dump(info, f, indent=2)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output model directory")
    ap.add_argument("--ckpt", required=True, help="checkpoint directory (resumes if it holds one)")
    ap.add_argument("--channels", type=int, default=1, choices=(1, 3))
    ap.add_argument("--conditional", action="store_true")
    ap.add_argument("--block-channels", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--layers-per-block", type=int, default=1)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--pool-size", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=7000, help="total steps (sets the cosine LR)")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--ema-decay", type=float, default=0.999)
    ap.add_argument("--label-dropout", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop (checkpoint + export) after this much wall time in this run",
    )
    ap.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="total wall-time budget: the cosine LR follows whichever of --steps and this runs out first",
    )
    ap.add_argument("--fp16", action="store_true", help="export weights as float16")
    ap.add_argument(
        "--export-only",
        action="store_true",
        help="export the EMA weights of the checkpoint in --ckpt without training",
    )
    args = ap.parse_args(argv)

    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    device = training_device(args.device)
    torch.manual_seed(args.seed)  # only for the parameter initialisation of the network
    gen = torch.Generator(device).manual_seed(args.seed)
    model = build_model(args).to(device)
    ema = EMA(model, args.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    parts = {"model": model, "ema": ema, "optimizer": opt, "generator": gen}
    if args.export_only:
        step, extra = load_checkpoint(args.ckpt, **parts)
        if step == 0:
            raise ValueError(f"--ckpt {args.ckpt!r} holds no checkpoint to export")
        export(args, ema, step, float(extra["seconds"]), float(extra["loss_ema"]), hardware(device))
        return
    t0 = time.time()
    pool = build_pool(args, torch.Generator().manual_seed(args.seed + 1), device)
    print(
        f"pool {tuple(pool.patches.shape)} built in {time.time() - t0:.0f}s; "
        f"params {sum(p.numel() for p in model.parameters())}",
        flush=True,
    )
    step, extra = load_checkpoint(args.ckpt, **parts)
    seconds, loss_ema = float(extra.get("seconds", 0.0)), float(extra.get("loss_ema", 1.0))
    budget = Budget(args.steps, args.minutes, seconds)
    abar = build_scheduler().alphas_cumprod.clone().float().to(device)
    null = len(CLASSES)

    stop = {"flag": False}
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.update(flag=True))
    os.makedirs(args.ckpt, exist_ok=True)
    log = open(os.path.join(args.ckpt, "loss.csv"), "a")
    run_start = last_ckpt = time.time()
    bar = tqdm(total=args.steps, initial=step, mininterval=10, file=sys.stdout)

    def checkpoint():
        save_checkpoint(
            args.ckpt, step, {"seconds": seconds + time.time() - run_start, "loss_ema": loss_ema}, **parts
        )

    while not budget.done(step) and not stop["flag"]:
        # 1. batch: pooled patches with dihedral augmentation, mapped to u0 = 2x − 1
        x, labels = pool.sample(args.batch, gen)
        u0 = 2 * x - 1
        if labels is not None:
            labels = torch.where(
                torch.rand(args.batch, generator=gen, device=device) < args.label_dropout,
                torch.full_like(labels, null),
                labels,
            )
        # 2. forward diffusion u_t = √ᾱ_t u0 + √(1 − ᾱ_t) ε
        t = torch.randint(len(abar), (args.batch,), generator=gen, device=device)
        eps = torch.randn(u0.shape, generator=gen, device=device)
        a = abar[t].view(-1, 1, 1, 1)
        u_t = a.sqrt() * u0 + (1 - a).sqrt() * eps
        # 3. ε-prediction loss, clipped AdamW step with cosine LR, EMA update
        for g in opt.param_groups:
            g["lr"] = args.lr * cosine_lr(budget.progress(step))
        loss = (model(u_t, t, class_labels=labels).sample - eps).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model)
        step += 1
        loss_ema = 0.99 * loss_ema + 0.01 * loss.item() if step > 1 else loss.item()
        log.write(f"{step},{loss.item():.5f}\n")
        bar.update(1)
        bar.set_postfix(loss=f"{loss_ema:.4f}", refresh=False)
        now = time.time()
        if now - last_ckpt > 60 * args.ckpt_minutes:
            log.flush()
            checkpoint()
            last_ckpt = now
        if args.max_minutes is not None and now - run_start > 60 * args.max_minutes:
            break
    bar.close()
    log.close()
    checkpoint()
    seconds += time.time() - run_start
    export(args, ema, step, seconds, loss_ema, hardware(device))
    print(f"stopped at step {step}, {seconds / 60:.1f} min of training, loss(EMA) {loss_ema:.4f}", flush=True)


if __name__ == "__main__":
    main()
