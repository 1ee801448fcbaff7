"""
Class-guided generation
=======================

Class-guided generation and restoration with the class-conditional house diffusion prior.

Three guidance rules wrap the same class-conditional prior (restorekit.priors.guidance):
CFG (scale w), CFG++ (λ in [0, 1]) and APG (scale w, η = 0, momentum −0.5, r = 15). This demo

1. draws a grid of samples for every class at several guidance strengths, per method
   (``grid_cfg.png``, ``grid_cfgpp.png``, ``grid_apg.png``; the same initial noise everywhere);
2. measures oversaturation against guidance strength: mean intensity, pixel standard
   deviation and the fraction of pixels clipped at 0 or 1 (``oversaturation.png``); sampling
   clips û0 to [−1, 1] at every DDIM step (diffusers' default), ``--no-clip`` shows the raw
   effect;
3. inpaints a box out of the held-out Shepp–Logan phantom with DDS, unguided (null class) and
   guided towards the "phantom" class, and reports PSNR (``restoration.png``).

Run it from a checkout::

    python -m demos.guided_generation [--quick] [--out demo-out/guidance]
    python -m demos.guided_generation --random-init --quick    # smoke test without weights

``--random-init`` replaces the shipped weights by a randomly initialised tiny network (the
pictures are then noise; it only checks that everything runs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import restorekit as rk
from restorekit.priors.diffusion import DiffusionPrior
from restorekit.priors.guidance import APG, CFG, CFGpp

WEIGHTS = Path(rk.__file__).parent / "weights" / "diffusion-gray-cond"
PHANTOM = "phantom"

# method name → (wrapper, guidance strengths); CFG++'s λ ∈ [0, 1] is likened to CFG's w ∈ [1, 12.5]
METHODS = {
    "CFG": (lambda prior, cond, s: CFG(prior, cond, s), (1.0, 3.0, 7.5, 15.0)),
    "CFG++": (lambda prior, cond, s: CFGpp(prior, cond, s), (0.0, 0.3, 0.6, 1.0)),
    "APG": (lambda prior, cond, s: APG(prior, cond, s), (1.0, 3.0, 7.5, 15.0)),
}
QUICK_STRENGTHS = {"CFG": (1.0, 4.0, 15.0), "CFG++": (0.25, 0.5, 1.0), "APG": (1.0, 4.0, 15.0)}


def load_prior(weights: Path, random_init: bool, seed: int):
    """A class-conditional prior and its class names (``weights``: a diffusers folder with
    ``unet/``, ``scheduler/`` and ``classes.json``), or a random stand-in."""
    if random_init:
        from diffusers import DDPMScheduler, UNet2DModel

        classes = ["photo", "phantom", "text", "dead_leaves"]
        torch.manual_seed(seed)
        unet = UNet2DModel(
            sample_size=32,
            in_channels=1,
            out_channels=1,
            layers_per_block=1,
            block_out_channels=(16, 32),
            norm_num_groups=8,
            down_block_types=("DownBlock2D",) * 2,
            up_block_types=("UpBlock2D",) * 2,
            add_attention=False,
            num_class_embeds=len(classes) + 1,
        )
        return DiffusionPrior(unet, DDPMScheduler(beta_schedule="linear")), classes
    if not (weights / "classes.json").exists():
        raise SystemExit(
            f"no class-conditional weights at {weights}; run with --random-init for a smoke test"
        )
    classes = json.loads((weights / "classes.json").read_text())["classes"]
    return DiffusionPrior.from_pretrained(str(weights)), classes


def saturation(x: torch.Tensor) -> dict[str, float]:
    """Mean intensity, pixel std and the fraction of pixels at 0 or 1 (clipped) of samples."""
    return {
        "mean": x.mean().item(),
        "std": x.std().item(),
        "clipped": ((x <= 0) | (x >= 1)).float().mean().item(),
    }


def draw_all(prior, classes, sweep, *, per_class, size, steps, seed, clip):
    """Samples for every method and strength: {method: {strength: (len(classes)·per_class, 1, S, S)}}."""
    labels = torch.arange(len(classes)).repeat_interleave(per_class)
    shape = (len(labels), 1, size, size)
    out = {}
    for name, (make, _) in METHODS.items():
        out[name] = {}
        for s in sweep[name]:
            start = time.perf_counter()
            out[name][s] = rk.sample(
                make(prior, labels, float(s)),
                shape,
                steps=steps,
                clip=clip,
                generator=torch.Generator().manual_seed(seed),
            )
            print(f"  {name:5s} {s:>4}: {time.perf_counter() - start:5.1f} s", flush=True)
    return out


def grid_figure(samples, classes, strengths, name, per_class, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(classes),
        len(strengths),
        squeeze=False,
        figsize=(1.3 * per_class * len(strengths) + 0.8, 1.35 * len(classes) + 0.5),
    )
    symbol = "λ" if name == "CFG++" else "w"
    for j, s in enumerate(strengths):
        x = samples[s]
        for i, cls in enumerate(classes):
            row = torch.cat(list(x[i * per_class : (i + 1) * per_class, 0]), dim=1)
            ax = axes[i, j]
            ax.imshow(row.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{symbol} = {s}", fontsize=10)
            if j == 0:
                ax.set_ylabel(cls, fontsize=10)
    fig.suptitle(f"{name}: samples per class", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def saturation_figure(stats, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5))
    for row, names, xlabel in ((0, ("CFG", "APG"), "guidance scale w"), (1, ("CFG++",), "CFG++ λ")):
        for col, key, ylabel in (
            (0, "mean", "mean intensity"),
            (1, "clipped", "fraction of pixels clipped at 0 or 1"),
        ):
            ax = axes[row, col]
            for name in names:
                s = sorted(stats[name])
                ax.plot(s, [stats[name][v][key] for v in s], "o-", label=name)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            ax.legend()
    fig.suptitle("Oversaturation against guidance strength (all classes pooled)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def restoration(prior, classes, *, size, steps, runs, seed):
    """Box inpainting of the held-out phantom by DDS, unguided and guided to 'phantom'.

    ``runs`` independent DDS runs go as one batch (the same image and mask, own noise each).
    """
    x = rk.data.load_image("shepp_logan_phantom", size=size).repeat(runs, 1, 1, 1)
    op = rk.operators.inpainting(
        "box", img_size=size, noise_sigma=0.01, generator=torch.Generator().manual_seed(seed)
    )
    y = op(x)
    c = classes.index(PHANTOM)
    priors = {
        "unguided (null class)": prior,
        "conditional (CFG w=1)": CFG(prior, c, 1.0),
        "CFG w=3": CFG(prior, c, 3.0),
        "CFG++ λ=0.6": CFGpp(prior, c, 0.6),
        "APG w=3": APG(prior, c, 3.0),
    }
    truth = x[:1]
    rows, panels = [], [("measurement", y[:1]), ("ground truth", truth)]
    for label, p in priors.items():
        r = rk.solve(
            y, op, p, solver="dds", steps=steps, x_true=x, generator=torch.Generator().manual_seed(seed)
        )
        v = r.metrics.psnr
        rows.append((label, v.mean().item(), v.std().item() if runs > 1 else 0.0, r.seconds))
        panels.append((label, r.x[:1]))
    return truth, panels, rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description="Class-guided generation and restoration with CFG, CFG++ and APG"
    )
    ap.add_argument("--out", default="demo-out/guidance", help="output folder for the PNGs")
    ap.add_argument("--quick", action="store_true", help="few steps, small images, few strengths")
    ap.add_argument(
        "--weights",
        type=Path,
        default=WEIGHTS,
        help="class-conditional model folder (default: the shipped diffusion-gray-cond)",
    )
    ap.add_argument(
        "--random-init",
        action="store_true",
        help="use a random tiny network instead of the shipped weights (smoke test)",
    )
    ap.add_argument(
        "--no-clip",
        action="store_true",
        help="sample without clipping û0 to [-1, 1] at each DDIM step (raw oversaturation)",
    )
    ap.add_argument("--skip-restoration", action="store_true", help="only the generation part")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (1 is fastest for these small networks on a busy machine)",
    )
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prior, classes = load_prior(args.weights, args.random_init, args.seed)
    size, steps, per_class = (32, 10, 2) if args.quick else (32, 50, 3)
    sweep = QUICK_STRENGTHS if args.quick else {k: v[1] for k, v in METHODS.items()}
    print(
        f"prior: {'random tiny network' if args.random_init else args.weights}; classes {classes}; "
        f"{size}x{size}, {steps} DDIM steps{' without clipping' if args.no_clip else ''}, "
        f"{per_class} samples per class"
    )

    # 1. samples per class and strength, for every method
    samples = draw_all(
        prior,
        classes,
        sweep,
        per_class=per_class,
        size=size,
        steps=steps,
        seed=args.seed,
        clip=not args.no_clip,
    )
    for name in METHODS:
        path = out / f"grid_{name.lower().replace('+', 'p')}.png"
        grid_figure(samples[name], classes, sweep[name], name, per_class, path)
        print(f"wrote {path}")

    # 2. oversaturation against strength
    stats = {name: {s: saturation(x) for s, x in by_s.items()} for name, by_s in samples.items()}
    print(f"\n{'method':6s} {'strength':>8s} {'mean':>7s} {'std':>7s} {'clipped':>8s}")
    for name, by_s in stats.items():
        for s, v in by_s.items():
            print(f"{name:6s} {s:>8} {v['mean']:7.3f} {v['std']:7.3f} {v['clipped']:8.3%}")
    saturation_figure(stats, out / "oversaturation.png")
    print(f"wrote {out / 'oversaturation.png'}")

    # 3. guided vs unguided restoration
    if args.skip_restoration:
        return
    runs, rsize, rsteps = (2, 32, 20) if args.quick else (2, 64, 50)
    x, panels, rows = restoration(prior, classes, size=rsize, steps=rsteps, runs=runs, seed=args.seed)
    print(
        f"\nbox inpainting of shepp_logan_phantom ({rsize}x{rsize}, σ = 0.01), DDS "
        f"{rsteps} steps, {runs} runs"
    )
    print(f"{'prior':24s} {'PSNR dB':>8s} {'± std':>6s} {'s':>6s}")
    for label, mean, std, sec in rows:
        print(f"{label:24s} {mean:8.2f} {std:6.2f} {sec:6.1f}")
    from restorekit.figures import comparison_figure

    comparison_figure(
        panels,
        out / "restoration.png",
        reference=x,
        title="DDS box inpainting: unguided vs guided to the 'phantom' class",
    )
    print(f"wrote {out / 'restoration.png'}")


if __name__ == "__main__":
    main()
