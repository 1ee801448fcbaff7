"""Train restorekit's own grey-level denoiser, ``restorekit/weights/denoiser-gray/``.

A bias-free residual CNN D(x, σ) (:class:`restorekit.priors.dncnn.BiasFreeDenoiser`, a
noise-level map as second input channel) trained by plain MSE,

    min_θ  E_{x, σ ~ U[0, σ_max], n ~ N(0, I)} ‖D_θ(x + σ n, σ) − x‖²,

on a fixed pool of ``restorekit.data.random_patches`` (training images plus dead-leaves and
phantoms; never the HELD_OUT images) with random dihedral transforms, Adam and a cosine
learning-rate decay over the budget (``--steps``, or ``--minutes`` of wall time when that runs
out first). Seeded and resumable: the checkpoint folder holds model, optimizer, generator
state, step and accumulated wall time (``training.common.save_checkpoint``).

    python -m training.train_denoiser                      # train (resumes from --checkpoint)
    python -m training.train_denoiser --evaluate-only      # re-measure and rewrite the card
    python -m training.train_denoiser --device cuda --depth 17 --features 64 --batch 64 \
        --patch 64 --steps 200000 --minutes 6             # a time-limited GPU run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from restorekit.data import random_patches
from restorekit.evaluation import heldout_table, markdown_table
from restorekit.priors.dncnn import BiasFreeDenoiser
from training.common import (
    Budget,
    PatchPool,
    cosine_lr,
    hardware,
    load_checkpoint,
    save_checkpoint,
    training_device,
)

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "restorekit" / "weights" / "denoiser-gray")
    p.add_argument("--checkpoint", type=Path, default=ROOT / "runs" / "denoiser-gray")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--minutes", type=float, default=None, help="wall-time budget (the LR decays over it)")
    p.add_argument("--pool", type=int, default=20000, help="number of training patches drawn once")
    p.add_argument("--device", default="cpu")
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
    p.add_argument("--evaluate-only", action="store_true")
    p.add_argument("--no-card", action="store_true", help="train and export only (measure later)")
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


def train(args) -> dict:
    device = training_device(args.device)
    g = torch.Generator().manual_seed(args.seed)
    net = build(args, g).to(device)
    gen = torch.Generator(device).manual_seed(args.seed + 1)
    pool = PatchPool(random_patches(args.pool, args.patch, generator=g, device=device))
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    parts = {"model": net, "optimizer": opt, "generator": gen}
    args.checkpoint.mkdir(parents=True, exist_ok=True)
    step, extra = load_checkpoint(str(args.checkpoint), **parts)
    budget = Budget(args.steps, args.minutes, float(extra.get("elapsed", 0.0)))
    if step:
        print(f"resumed at step {step} ({budget.elapsed / 60:.1f} min so far)", flush=True)

    def checkpoint():
        save_checkpoint(str(args.checkpoint), step, {"elapsed": budget.elapsed}, **parts)

    net.train()
    bar = tqdm(total=args.steps, initial=step, mininterval=30, file=sys.stdout)
    ema = None
    while not budget.done(step):
        # 1. a batch of clean pool patches; half the noise levels σ ~ U[0, σ_low], half U[0, σ_max]
        x, _ = pool.sample(args.batch, gen)
        top = torch.full((args.batch,), args.sigma_max, device=device)
        top[: args.batch // 2] = args.low_sigma
        sigma = torch.rand(args.batch, generator=gen, device=device) * top
        y = x + sigma[:, None, None, None] * torch.randn(x.shape, generator=gen, device=device)
        # 2. MSE on the clean image; clipped Adam step, warm-up then cosine decay to 1 % of the lr
        for group in opt.param_groups:
            group["lr"] = args.lr * cosine_lr(budget.progress(step), warmup=0.02, floor=0.01)
        loss = (net(y, sigma) - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{ema:.2e}", lr=f"{opt.param_groups[0]['lr']:.1e}")
        if step % args.checkpoint_every == 0 or budget.done(step):
            checkpoint()
        if args.snapshot_every and step % args.snapshot_every == 0:
            snap = args.checkpoint / f"step{step}.safetensors"
            save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, snap)
    bar.close()
    net.cpu()

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
        "wall_min": budget.elapsed / 60,
        "batch": args.batch,
        "patch": args.patch,
        "lr": args.lr,
        "sigma_max": args.sigma_max,
        "low_sigma": args.low_sigma,
        "init_from": None if args.init_from is None else args.init_from.name,
        "minutes": args.minutes,
        "pool": args.pool,
        "seed": args.seed,
        "hardware": hardware(device),
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
    budget = (
        f"a {info['minutes']:g}-minute wall-time budget"
        if info.get("minutes") and info["steps"] < info["planned_steps"]
        else f"{info['planned_steps']} steps"
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
σ ~ U[0, {info["sigma_max"]}] (half of each batch σ ~ U[0, {info.get("low_sigma", info["sigma_max"])}]); {info["steps"]} Adam steps, batch {info["batch"]} of
{info["patch"]}×{info["patch"]} patches from `restorekit.data.random_patches` (scikit-image
training images, lfw faces, dead leaves, ellipse phantoms — never the HELD_OUT images),
lr {info["lr"]} with cosine decay to 1 % over {budget}. Wall time {info["wall_min"]:.0f} min on
{info.get("hardware", "a CPU")}. {args.card_note}

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
    if not args.no_card:
        write_card(args)


if __name__ == "__main__":
    main()
