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
import functools
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import restorekit as rk  # noqa: E402
from restorekit import data, metrics  # noqa: E402
from restorekit.priors import TV, composite  # noqa: E402
from restorekit.priors import load as load_prior  # noqa: E402
from restorekit.priors.denoisers import Decorrelated  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
JSON = os.path.join(HERE, "peers_results.json")
NOISE = 0.01
SIZE = 128
SIGMAS = (0.02, 0.05, 0.1, 0.2)
TV_DENOISE_GRID = (0.01, 0.02, 0.04, 0.06, 0.08, 0.12, 0.16, 0.24, 0.32)
TV_RESTORE_GRID = tuple(float(w) for w in np.geomspace(3e-4, 3e-2, 7))
#: image-unit level below which the composite prior asks dncnn (denoising crossover on TRAINING
#: images moon/brick/grass/clock/cell/page at 64²: dncnn − diffusion-gray = +0.39 dB at σ = 0.15,
#: −0.20 dB at σ = 0.2)
SWITCH_SIGMA = 0.15
#: skimage Wiener ``balance`` (chosen on TRAINING images moon/brick/clock, deblurring:
#: 30.5, 32.2, 32.9, 32.9, 32.5 dB at balance 0.003, 0.01, 0.03, 0.1, 0.3)
WIENER_BALANCE = 0.1
#: DDS settings for the composite prior, chosen on TRAINING images (moon, clock, chelsea at 64²,
#: deblurring; mean PSNR): (η, γ) = (0.85, 10) 31.36 dB (the defaults), (0.3, 10) 26.69,
#: (1, 10) 31.90, (0.85, 30) 31.10, (1, 30) 31.82; TV at its best weight 33.54
DDS_COMPOSITE = {"eta": 1.0}
#: the implicit-prior solver's β: the paper's faster, less stochastic setting (β = 0.01 takes
#: about ten times more denoiser calls)
IMPLICIT_BETA = 0.5
load = functools.cache(load_prior)


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
def _noisy(x, sigma, seed=0):
    return x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


def tv_denoise_best(y, x, coupled: bool) -> tuple[float, float]:
    """(PSNR, weight) of TV denoising (prox of weight·TV) at the best weight of the grid."""
    return max(
        ((_mean_psnr(TV(w, channel_coupled=coupled).prox(y, 1.0), x), w) for w in TV_DENOISE_GRID),
        key=lambda t: t[0],
    )


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
        y = _noisy(x, s)
        tv, w = tv_denoise_best(y, x, coupled=False)
        row = {"noisy": _mean_psnr(y, x), f"TV (best weight {w:g})": tv}
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
    y = _noisy(x, s)
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
        tv, w = tv_denoise_best(ys, xs, coupled=True)
        row = {"noisy": _mean_psnr(ys, xs), f"colour TV (best weight {w:g})": tv}
        with torch.no_grad():
            row.update({k: _mean_psnr(f(ys, s), xs) for k, f in methods.items()})
        out[f"σ = 0.1, {label}"] = row
        print(label, {k: round(v, 2) for k, v in row.items()}, flush=True)
    return out


# ------------------------------------------------------------------------------ restoration
def operator(task: str, seed: int, size: int = SIZE):
    g = torch.Generator().manual_seed(seed)
    if task == "deblur":
        return rk.operators.blur("gaussian", sigma=2.0, noise_sigma=NOISE, generator=g)
    if task == "sr4":
        return rk.operators.super_resolution(4, img_size=size, noise_sigma=NOISE, generator=g)
    if task == "inpaint":
        return rk.operators.inpainting("random", img_size=size, fraction=0.5, noise_sigma=NOISE, generator=g)
    raise ValueError(f"task must be one of deblur, sr4, inpaint, got {task!r}")


def per_image(task: str, x: torch.Tensor, fn) -> list[float]:
    """PSNR of ``fn(y, op)`` per image; image i gets its own operator and noise (seed i)."""
    out = []
    for i, xi in enumerate(x.split(1)):
        op = operator(task, i, xi.shape[-1])
        with torch.no_grad():
            out.append(_mean_psnr(fn(op(xi), op), xi))
    return out


def _tv_cp(weight):
    return lambda y, op: rk.solve(y, op, TV(weight), solver="chambolle-pock", max_iter=300).x


def _wiener(y, op):
    from skimage.restoration import wiener

    k = op.filter.reshape(op.filter.shape[-2:]).double().numpy()
    return torch.from_numpy(wiener(y[0, 0].double().numpy(), k, WIENER_BALANCE, clip=False)).float()[
        None, None
    ]


def _bm3d_deblur(y, op):
    from restorekit.priors.bm3d import bm3d_deblur

    return bm3d_deblur(y, op.filter, NOISE)


def _biharmonic(y, op):
    from skimage.restoration import inpaint_biharmonic

    missing = (op.mask.reshape(y.shape[-2:]) == 0).numpy()
    return torch.from_numpy(inpaint_biharmonic(y[0, 0].double().numpy(), missing)).float()[None, None]


def _dds(prior_fn, **params):
    return lambda y, op: (
        rk.solve(y, op, prior_fn(), solver="dds", generator=torch.Generator().manual_seed(0), **params).x
    )


def composite_prior():
    return composite(high=load("diffusion-gray"), low=load("dncnn"), switch_sigma=SWITCH_SIGMA)


def restore_methods(task: str) -> dict:
    hqs_iter = 24 if task == "deblur" else 40
    m = {"TV-CP, default weight 0.1": _tv_cp(0.1)}
    if task == "deblur":
        m[f"Wiener (skimage, balance {WIENER_BALANCE:g})"] = _wiener
        if _have_bm3d():
            m["BM3D-deblurring"] = _bm3d_deblur
    if task == "inpaint":
        m["biharmonic (skimage)"] = _biharmonic
    m["PnP-HQS dncnn"] = lambda y, op: rk.solve(y, op, load("dncnn"), solver="pnp-hqs", max_iter=hqs_iter).x
    m["DDS diffusion-gray"] = _dds(lambda: load("diffusion-gray"))
    m[f"DDS composite(diffusion-gray, dncnn, {SWITCH_SIGMA:g})"] = _dds(composite_prior)
    m["DDS composite, η = 1 (chosen on training images)"] = _dds(composite_prior, **DDS_COMPOSITE)
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


def tv_oracle(task: str, x: torch.Tensor) -> tuple[list[float], float]:
    """Chambolle–Pock TV at the grid weight of best mean PSNR on these images: (PSNRs, weight)."""
    return max(((per_image(task, x, _tv_cp(w)), w) for w in TV_RESTORE_GRID), key=lambda t: np.mean(t[0]))


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
                p, w = tv_oracle(task, x)
                name = f"TV-CP, best weight {w:.3g} (oracle)"
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
