"""Learned priors against the classical peers (BM3D, CBM3D, BM3D-deblurring, Wiener, biharmonic
inpainting, TV), on the HELD_OUT images only (128², never used to train or tune anything).

    python benchmarks/peers.py                       # every section (slow: an hour on 1 core)
    python benchmarks/peers.py --sections denoise colour
    python benchmarks/peers.py --sections restore --tasks deblur --methods TV DDS

Sections (results merge into ``benchmarks/peers_results.json``; the markdown
``benchmarks/peers_results.md`` is rewritten from all of it after every run):

- ``denoise``: grey Gaussian denoising at σ = 0.02/0.05/0.1/0.2 — TV (skimage Chambolle) at the
  best weight of a grid (an oracle choice), BM3D, and the shipped denoisers.
- ``colour``: colour denoising at σ = 0.1 — colour (channel-coupled) TV at its best weight,
  CBM3D, the grey ``dncnn`` per RGB channel and in the decorrelated opponent space
  (``Decorrelated``), ``diffusion-rgb`` as a one-step denoiser; on the colour held-out image
  (astronaut) and on all four (three are grey images in RGB).
- ``restore``: Gaussian deblurring (σ_b = 2 px), 4× SR (bicubic) and 50 % random inpainting,
  noise 0.01 — TV by Chambolle–Pock at the default weight and at the best weight of a grid,
  Wiener deconvolution and BM3D-deblurring (deblurring), biharmonic inpainting (inpainting),
  PnP-HQS with ``dncnn``, DDS with ``diffusion-gray`` and with ``composite(diffusion-gray,
  dncnn, switch_sigma=0.15)``, and the ``implicit-prior`` solver with that composite as its
  denoiser (it starts at σ₀ = 1, beyond dncnn's range).

BM3D is the ``bm3d`` package (Tampere University, free for non-commercial use only): install the
optional extra ``pip install 'restorekit[peers]'``; without it its rows are skipped. Settings of
the peers are their defaults or were chosen on TRAINING images (Wiener balance, stated below).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

import restorekit as rk
from restorekit import data, metrics
from restorekit.evaluation import (
    BAR_NOISE,
    DDS_COMPOSITE,
    PEERS_TV_WEIGHTS,
    SWITCH_SIGMA,
    add_noise,
    bar_methods,
    bar_restore,
    bar_tv_oracle,
    composite_prior,
    dds,
    tv_cp,
    tv_prox_oracle,
)
from restorekit.evaluation import shipped_prior as load
from restorekit.priors.denoisers import Decorrelated

HERE = os.path.dirname(os.path.abspath(__file__))
JSON = os.path.join(HERE, "peers_results.json")
SIZE = 128
SIGMAS = (0.02, 0.05, 0.1, 0.2)
#: skimage Wiener ``balance`` (chosen on TRAINING images moon/brick/clock, deblurring:
#: 30.5, 32.2, 32.9, 32.9, 32.5 dB at balance 0.003, 0.01, 0.03, 0.1, 0.3)
WIENER_BALANCE = 0.1
#: the implicit-prior solver's β: the paper's faster, less stochastic setting (β = 0.01 takes
#: about ten times more denoiser calls)
IMPLICIT_BETA = 0.5


def _have_bm3d() -> bool:
    from restorekit.priors.bm3d import import_bm3d

    try:
        import_bm3d()
        return True
    except ImportError:
        return False


def _mean_psnr(x_hat, x) -> float:
    return metrics.psnr(x_hat.clamp(0, 1), x).mean().item()


# ------------------------------------------------------------------------------ denoising
def section_denoise() -> dict:
    from restorekit.priors.bm3d import bm3d_denoise

    x = data.held_out(SIZE)
    nets = {
        name: load(name).denoise
        for name in ("dncnn", "dncnn-6", "dncnn-blind", "denoiser-gray", "diffusion-gray")
    }
    if _have_bm3d():
        nets = {"BM3D": bm3d_denoise, **nets}
    out = {}
    for s in SIGMAS:
        y = add_noise(x, s)
        tv = tv_prox_oracle(y, x, coupled=False)
        row = {"noisy": _mean_psnr(y, x), f"TV (best weight {tv.value:g})": tv.psnr.mean().item()}
        with torch.no_grad():
            row.update({k: _mean_psnr(f(y, s), x) for k, f in nets.items()})
            lpn = load("lpn-gray")
            if s >= lpn.sigma:  # the LPN refuses σ below its training level
                row["lpn-gray (rescaled for σ > 0.1)"] = _mean_psnr(lpn.denoise(y, s), x)
        out[f"σ = {s:g}"] = row
        print(s, {k: round(v, 2) for k, v in row.items()}, flush=True)
    return out


def section_colour() -> dict:
    from restorekit.priors.bm3d import bm3d_denoise

    s = 0.1
    x = data.held_out(SIZE, color=True)
    y = add_noise(x, s)
    dn = load("dncnn")
    methods = {
        "dncnn per RGB channel": dn.denoise,
        "dncnn in opponent space (Decorrelated)": Decorrelated(dn).denoise,
        "diffusion-rgb (one step)": load("diffusion-rgb").denoise,
    }
    if _have_bm3d():
        methods = {"CBM3D": bm3d_denoise, **methods}
    out = {}
    for label, idx in (("astronaut", [data.HELD_OUT.index("astronaut")]), ("all four", list(range(len(x))))):
        xs, ys = x[idx], y[idx]
        tv = tv_prox_oracle(ys, xs, coupled=True)
        row = {"noisy": _mean_psnr(ys, xs), f"colour TV (best weight {tv.value:g})": tv.psnr.mean().item()}
        with torch.no_grad():
            row.update({k: _mean_psnr(f(ys, s), xs) for k, f in methods.items()})
        out[f"σ = 0.1, {label}"] = row
        print(label, {k: round(v, 2) for k, v in row.items()}, flush=True)
    return out


# ------------------------------------------------------------------------------ restoration
@torch.no_grad()
def per_image(task: str, x: torch.Tensor, fn) -> list[float]:
    """PSNR of ``fn(y, op)`` per image (:func:`~restorekit.evaluation.bar_restore`: image i gets
    its own operator and noise, seed i)."""
    return metrics.psnr(bar_restore(task, x, fn), x).tolist()


def _wiener(y, op):
    from skimage.restoration import wiener

    k = op.filter.reshape(op.filter.shape[-2:]).double().numpy()
    return torch.from_numpy(wiener(y[0, 0].double().numpy(), k, WIENER_BALANCE, clip=False)).float()[
        None, None
    ]


def _bm3d_deblur(y, op):
    from restorekit.priors.bm3d import bm3d_deblur

    return bm3d_deblur(y, op.filter, BAR_NOISE)


def _biharmonic(y, op):
    from skimage.restoration import inpaint_biharmonic

    missing = (op.mask.reshape(y.shape[-2:]) == 0).numpy()
    return torch.from_numpy(inpaint_biharmonic(y[0, 0].double().numpy(), missing)).float()[None, None]


def restore_methods(task: str) -> dict:
    bar = bar_methods(task)
    m = {
        "TV-CP, default weight (noise-scaled)": tv_cp(None),
        "TV-CP, weight 0.1 (round-1 default)": tv_cp(0.1),
    }
    if task == "deblur":
        m[f"Wiener (skimage, balance {WIENER_BALANCE:g})"] = _wiener
        if _have_bm3d():
            m["BM3D-deblurring"] = _bm3d_deblur
    if task == "inpaint":
        m["biharmonic (skimage)"] = _biharmonic
    m["PnP-HQS dncnn"] = bar["PnP-HQS dncnn"]
    m["DDS diffusion-gray"] = bar["DDS diffusion-gray"]
    m[f"DDS composite(diffusion-gray, dncnn, {SWITCH_SIGMA:g})"] = dds(composite_prior)
    m["DDS composite, η = 1 (chosen on training images)"] = dds(composite_prior, **DDS_COMPOSITE)
    m[f"implicit-prior composite (β = {IMPLICIT_BETA:g})"] = lambda y, op: (
        rk.solve(
            y,
            op,
            composite_prior(),
            solver="implicit-prior",
            beta=IMPLICIT_BETA,
            generator=torch.Generator().manual_seed(0),
        ).x
    )
    return m


def section_restore(tasks, method_words) -> dict:
    x = data.held_out(SIZE)
    out = {}
    for task in tasks:
        methods = {"TV-CP oracle": None, **restore_methods(task)}
        rows = {}
        for name, fn in methods.items():
            if method_words and not any(wd in name for wd in method_words):
                continue
            t0 = time.time()
            if fn is None:
                tv = bar_tv_oracle(task, x, PEERS_TV_WEIGHTS)
                p, name = tv.psnr.tolist(), f"TV-CP, best weight {tv.value:.3g} (oracle)"
            else:
                p = per_image(task, x, fn)
            rows[name] = p
            print(
                task,
                name,
                [round(v, 2) for v in p],
                f"mean {np.mean(p):.2f}",
                f"({time.time() - t0:.0f} s)",
                flush=True,
            )
        out[task] = rows
    return out


# ------------------------------------------------------------------------------ report
def markdown(results: dict) -> str:
    lines = [
        "# Priors against classical peers (HELD_OUT, 128²)",
        "",
        "Written by `python benchmarks/peers.py`; mean PSNR (dB) over camera, astronaut, coins, "
        "shepp_logan_phantom unless stated. BM3D rows: the `bm3d` package (non-commercial licence, "
        "optional extra `peers`). Oracle rows choose their weight on these same images (upper bounds).",
        "",
    ]
    for key, title in (("denoise", "Grey denoising"), ("colour", "Colour denoising")):
        if key in results:  # one column per case; TV's best weight differs per case, so its row is "TV"
            cases = list(results[key])
            rows: dict[str, list[str]] = {}
            for j, case in enumerate(cases):
                for name, v in results[key][case].items():
                    label = (
                        name.split(" (best weight")[0] + " (best weight)" if "best weight" in name else name
                    )
                    rows.setdefault(label, ["—"] * len(cases))[j] = f"{v:.2f}"
            lines += [
                f"## {title}",
                "",
                "| method | " + " | ".join(cases) + " |",
                "|---" * (len(cases) + 1) + "|",
            ]
            lines += [f"| {k} | " + " | ".join(v) + " |" for k, v in rows.items()] + [""]
    if "restore" in results:
        lines += ["## Restoration (noise 0.01)", ""]
        for task, rows in results["restore"].items():
            tv = next((np.mean(v) for k, v in rows.items() if "oracle" in k), float("nan"))
            lines += [
                f"**{task}**",
                "",
                "| method | " + " | ".join(data.HELD_OUT) + " | mean | vs TV oracle |",
                "|---" * (len(data.HELD_OUT) + 3) + "|",
            ]
            lines += [
                f"| {k} | " + " | ".join(f"{v:.2f}" for v in p) + f" | {np.mean(p):.2f} | "
                f"{np.mean(p) - tv:+.2f} |"
                for k, p in rows.items()
            ] + [""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--sections",
        nargs="+",
        default=["denoise", "colour", "restore"],
        choices=["denoise", "colour", "restore"],
    )
    ap.add_argument("--tasks", nargs="+", default=["deblur", "sr4", "inpaint"])
    ap.add_argument(
        "--methods", nargs="+", default=None, help="restore: only methods whose name contains one of these"
    )
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    for sec in args.sections:
        new = {"denoise": section_denoise, "colour": section_colour}.get(sec)
        new = new() if new else section_restore(args.tasks, args.methods)
        # merge into what other (possibly concurrent) runs wrote: replace only what was measured
        results = json.load(open(JSON)) if os.path.exists(JSON) else {}
        for k, v in new.items():
            if sec == "restore":
                rows = results.setdefault(sec, {}).setdefault(k, {})
                if any("oracle" in name for name in v):
                    for old in [name for name in rows if "oracle" in name]:
                        del rows[old]
                rows.update(v)
            else:
                results.setdefault(sec, {})[k] = v
        with open(JSON, "w") as f:
            json.dump(results, f, indent=1)
        with open(os.path.join(HERE, "peers_results.md"), "w") as f:
            f.write(markdown(results) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
