"""Train restorekit's own grey-level denoiser, ``restorekit/weights/denoiser-gray/``.

A bias-free residual CNN D(x, σ) (:class:`restorekit.priors.dncnn.BiasFreeDenoiser`, a
noise-level map as second input channel) trained by plain MSE,

    min_θ  E_{x, σ ~ U[0, σ_max], n ~ N(0, I)} ‖D_θ(x + σ n, σ) − x‖²,

on ``restorekit.data.random_patches`` (training images plus dead-leaves and phantoms; never
the HELD_OUT images) with Adam and a cosine learning-rate decay. Seeded and resumable: the
checkpoint holds model, optimizer, generator state, step and accumulated wall time.

    python training/train_denoiser.py                      # train (resumes from --checkpoint)
    python training/train_denoiser.py --evaluate-only      # re-measure and rewrite the card
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restorekit.data import random_patches  # noqa: E402
from restorekit.priors.dncnn import BiasFreeDenoiser  # noqa: E402
from training.denoiser_eval import heldout_table, markdown_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "restorekit" / "weights" / "denoiser-gray")
    p.add_argument("--checkpoint", type=Path, default=Path("/tmp/denoiser-gray-ckpt.pt"))
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=40)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--features", type=int, default=48)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--sigma-max", type=float, default=1.0)
    p.add_argument(
        "--low-sigma",
        type=float,
        default=0.2,
        help="half of every batch draws σ ~ U[0, low-sigma] (where restoration needs detail), "
        "the other half σ ~ U[0, sigma-max]",
    )
    p.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start from these safetensors weights (same architecture) instead of a random init",
    )
    p.add_argument(
        "--snapshot-every",
        type=int,
        default=500,
        help="also keep the weights of every N-th step (for held-out training curves)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop early (and export) once this much training wall time is spent",
    )
    p.add_argument("--evaluate-only", action="store_true")
    p.add_argument("--card-note", default="", help="a sentence added to the card's training paragraph")
    return p.parse_args(argv)


def build(args, generator: torch.Generator) -> BiasFreeDenoiser:
    net = BiasFreeDenoiser(depth=args.depth, features=args.features)
    if args.init_from is not None:
        net.load_state_dict(load_file(args.init_from))
        return net
    for conv in net.convs[:-1]:
        torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu", generator=generator)
    # a small last layer: the network starts close to the identity D(x, σ) ≈ x
    torch.nn.init.normal_(net.convs[-1].weight, std=1e-3, generator=generator)
    return net


def save_atomic(obj, path: Path):
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(args) -> dict:
    g = torch.Generator().manual_seed(args.seed)
    net = build(args, g)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps))
    )
    step, wall = 0, 0.0
    if args.checkpoint.exists():
        ck = torch.load(args.checkpoint, weights_only=True)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        g.set_state(ck["generator"])
        step, wall = int(ck["step"]), float(ck["wall"])
        print(f"resumed at step {step} ({wall / 60:.1f} min so far)", flush=True)

    def checkpoint():
        save_atomic(
            {
                "model": net.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "generator": g.get_state(),
                "step": step,
                "wall": wall,
            },
            args.checkpoint,
        )

    net.train()
    bar = tqdm(total=args.steps, initial=step, mininterval=30, file=sys.stdout)
    ema = None
    while step < args.steps and (args.max_minutes is None or wall < 60 * args.max_minutes):
        t0 = time.perf_counter()
        # 1. a batch of clean training patches; half the noise levels σ ~ U[0, σ_low], half U[0, σ_max]
        x = random_patches(args.batch, args.patch, generator=g)
        top = torch.full((args.batch,), args.sigma_max)
        top[: args.batch // 2] = args.low_sigma
        sigma = torch.rand(args.batch, generator=g) * top
        y = x + sigma[:, None, None, None] * torch.randn(x.shape, generator=g)
        # 2. MSE on the clean image, Adam step, cosine decay
        loss = (net(y, sigma) - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        wall += time.perf_counter() - t0
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{ema:.2e}", lr=f"{sched.get_last_lr()[0]:.1e}")
        if step % args.checkpoint_every == 0 or step == args.steps:
            checkpoint()
        if args.snapshot_every and step % args.snapshot_every == 0:
            snap = args.checkpoint.with_name(f"{args.checkpoint.stem}-step{step}.safetensors")
            save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, snap)
    bar.close()

    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, args.out / "model.safetensors")
    meta = {
        "kind": "denoiser",
        "description": f"restorekit's bias-free residual CNN, grey, noise-level input, σ ∈ [0, {args.sigma_max:g}]",
        "architecture": "BiasFreeDenoiser",
        "depth": args.depth,
        "features": args.features,
    }
    (args.out / "prior.json").write_text(json.dumps(meta, indent=2) + "\n")
    info = {
        "steps": step,
        "planned_steps": args.steps,
        "wall_min": wall / 60,
        "batch": args.batch,
        "patch": args.patch,
        "lr": args.lr,
        "sigma_max": args.sigma_max,
        "low_sigma": args.low_sigma,
        "init_from": None if args.init_from is None else args.init_from.name,
        "seed": args.seed,
        "threads": args.threads,
    }
    (args.out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def write_card(args):
    from restorekit.priors.registry import load_network

    info = json.loads((args.out / "training.json").read_text())
    meta = json.loads((args.out / "prior.json").read_text())
    net = BiasFreeDenoiser(depth=meta["depth"], features=meta["features"])
    net.load_state_dict(load_file(args.out / "model.safetensors"))
    net.eval()
    nets = {"denoiser-gray (ours)": net}
    try:
        nets["DnCNN-17 L/M/H (scico)"] = load_network("dncnn")
    except ValueError:
        pass
    table = heldout_table(nets, sigmas=(0.05, 0.1, 0.2))
    params = sum(p.numel() for p in net.parameters())
    stopped = (
        ""
        if info["steps"] >= info["planned_steps"]
        else f" (of {info['planned_steps']} planned: stopped by the wall-time limit before the "
        "learning rate had fully decayed)"
    )
    size_kb = (args.out / "model.safetensors").stat().st_size / 1024
    card = f"""# denoiser-gray — restorekit's bias-free CNN denoiser

**What it is.** A bias-free residual CNN D(x, σ) = x − R(x, σ) (Mohan et al., ICLR 2020,
"Robust and interpretable blind image denoising via bias-free CNNs"): {meta["depth"]} 3×3 conv
layers, {meta["features"]} features, ReLU, zero padding, no biases anywhere, and a constant
noise-level map σ as a second input channel. Grey images (B, 1, H, W) in [0, 1], Gaussian
noise σ ∈ [0, {info["sigma_max"]}] in the same units; colour images are denoised per channel.
Class `restorekit.priors.dncnn.BiasFreeDenoiser`; load with
`restorekit.priors.registry.load("denoiser-gray")`. {params:,} parameters, float32,
{size_kb:.0f} KB (safetensors).

**Training** (`training/train_denoiser.py`, seed {info["seed"]}): MSE to the clean patch,
σ ~ U[0, {info["sigma_max"]}]; {info["steps"]} Adam steps{stopped}, batch {info["batch"]} of
{info["patch"]}×{info["patch"]} patches from `restorekit.data.random_patches` (scikit-image
training images, lfw faces, dead leaves, ellipse phantoms — never the HELD_OUT images),
lr {info["lr"]} with cosine decay to 1 % over {info["planned_steps"]} steps. Wall time {info["wall_min"]:.0f} min on
{info["threads"]} CPU thread(s) ({platform.processor() or platform.machine()},
shared machine), no GPU. This is a short CPU run: the network is under-trained compared with
published DnCNN models. {args.card_note}

**Denoising PSNR (dB)** on `restorekit.data.held_out(128)` (camera, astronaut, coins,
shepp_logan_phantom; grey, 128×128), mean over the four images, noise seed 0. TV = skimage
`denoise_tv_chambolle` with the best weight of a grid per σ (an oracle choice, so an upper
bound for TV).

{markdown_table(table)}
"""
    (args.out / "MODEL_CARD.md").write_text(card)
    print(card)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.evaluate_only:
        train(args)
    write_card(args)


if __name__ == "__main__":
    main()
