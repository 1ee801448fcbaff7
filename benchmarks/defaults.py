"""The defaults matrix: every solver × compatible shipped prior × operator family, at defaults.

    python benchmarks/defaults.py                               # everything not cached yet
    python benchmarks/defaults.py --solvers dds,ddrm --priors diffusion-gray --operators sr-x4
    python benchmarks/defaults.py --tag before                  # label the cells (e.g. before/after a fix)
    python benchmarks/defaults.py --report                      # only rewrite the markdown from the cache

Each cell is one batched solve of all :data:`restorekit.data.HELD_OUT` images (gray, or colour
with ``--color``) at ``--size``² with the solver's and prior's defaults (TV at the CLI's default
weight, noise-scaled), σ_y = 0.01 (denoising: the operator's own 0.1), operator and noise drawn from
seeded generators. Recorded: mean PSNR and SSIM of the result clipped to [0, 1], seconds, NFE;
a solver that refuses the pair (ValueError, or a warning) is recorded with its message. Per
operator the baselines are the measurement (where it is an image), the truncated-CG start
(:func:`~restorekit.operators.truncated_pinv`, the classical solvers' start) and TV
(``chambolle-pock`` at TV's default, noise-scaled weight).

The rule checked (issue 14): every compatible pair at its defaults beats both the truncated-CG
start and the measurement by ≥ 0.5 dB on the mean, or refuses the pair with a clear message.

Finished cells go to a JSON cache (``--cache``, keyed by tag, size, colour, operator, prior,
solver), so the matrix can be run in pieces and resumed; ``--report`` writes
``benchmarks/defaults_results.md`` from whatever is cached.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
import warnings

import torch

import restorekit as rk
from restorekit.evaluation import tuning_batch
from restorekit.operators import BUILDERS, make, truncated_pinv
from restorekit.priors.base import require
from restorekit.solvers import SOLVERS, solve
from restorekit.solvers.steps import weak_default

HERE = os.path.dirname(os.path.abspath(__file__))
#: Operator families of the matrix (the registry's presets).
OPERATORS = (
    "gaussian-blur",
    "motion-blur",
    "inpainting-random",
    "inpainting-box",
    "sr-x2",
    "sr-x4",
    "ct-sparse",
    "ct-limited",
    "mri",
    "mri-multicoil",
    "denoising",
)
#: Shipped priors plus TV; ``diffusion-gray-cond`` is the same network as ``diffusion-gray``.
PRIORS = ("tv", "denoiser-gray", "dncnn", "lpn-gray", "diffusion-gray", "diffusion-rgb")
SIGMA_Y = 0.01
MARGIN_DB = 0.5


def cell_key(tag, size, color, op, prior, solver) -> str:
    return "|".join([tag, str(size), "rgb" if color else "gray", op, prior, solver])


def load_cache(path: str) -> dict:
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def write_cache(path: str, cache: dict) -> None:
    """Write the whole cache atomically (a temporary file, then a rename)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(cache, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def save_cache(path: str, key: str, cell: dict) -> None:
    """Add one cell to the cache file, re-reading it first (several runs may share it)."""
    cache = load_cache(path)
    cache[key] = cell
    write_cache(path, cache)


def load_all(paths: list[str]) -> dict:
    """The union of several caches (e.g. a "before" run kept in its own file)."""
    merged = {}
    for path in paths:
        merged.update(load_cache(path))
    return merged


def prior_channels(name: str) -> int | None:
    """1 or 3 for a shipped network prior, None for TV (any number of channels)."""
    if name == "tv":
        return None
    return 3 if name.endswith("rgb") else 1


def build_prior(name: str, device="cpu"):
    return rk.priors.TV() if name == "tv" else rk.priors.load(name, device=device)


def training_images(color: bool) -> tuple[str, ...]:
    """Every shipped TRAINING image of the kind (gray or colour), the set defaults are chosen on:
    nine gray (textures, text, a clock, microscopy) or seven colour images, more varied than the
    four tuning images of :data:`restorekit.evaluation.TUNING_IMAGES`."""
    kind = rk.data.COLOR_IMAGES if color else rk.data.GRAY_IMAGES
    return tuple(n for n in rk.data.TRAINING if n in kind)


def problem(op_name: str, size: int, color: bool, training: bool = False):
    """(x, operator, y) for the HELD_OUT batch (or, with ``training``, :func:`training_images`);
    None when the operator is gray-only and color."""
    if color and BUILDERS[op_name].gray_only:
        return None
    if training:
        x = tuning_batch(training_images(color), size, color)
    else:
        x = rk.data.held_out(size, color=color)
    sigma = {} if op_name == "denoising" else {"noise_sigma": SIGMA_Y}
    op = make(op_name, size, x.shape[1], generator=torch.Generator().manual_seed(0), **sigma)
    with torch.no_grad():
        y = op(x)
    return x, op, y


def metrics(x_hat: torch.Tensor, x: torch.Tensor) -> dict:
    x_hat = x_hat.clamp(0, 1)
    return {"psnr": rk.metrics.psnr(x_hat, x).mean().item(), "ssim": rk.metrics.ssim(x_hat, x).mean().item()}


def baselines(x, op, y) -> dict:
    """PSNR/SSIM of the measurement (if image-shaped) and of the truncated-CG start."""
    with torch.no_grad():
        out = {"cg": metrics(truncated_pinv(op, y), x)}
        if y.shape == x.shape:
            out["y"] = metrics(y, x)
    return out


def run_cell(solver: str, prior, x, op, y) -> dict:
    """One solve at defaults; a ValueError or a warning from the solver counts as a refusal.
    The problem is drawn on the CPU on every device; the solver's noise comes from a generator
    seeded alike on the solve's device, so a cell measured on a GPU has other draws than a CPU
    run. Such a cell records its device (its seconds are that device's)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            start = time.perf_counter()
            generator = torch.Generator(y.device).manual_seed(0)
            result = solve(y, op, prior, solver, generator=generator)
            seconds = time.perf_counter() - start
        except ValueError as e:
            return {"refused": str(e)}
    own = [
        str(w.message)
        for w in caught
        if "restorekit" in (w.filename or "")
        or issubclass(w.category, UserWarning)
        and "solver" in str(w.message)
    ]
    cell = {**metrics(result.x, x), "seconds": seconds, "nfe": result.nfe}
    if y.device.type != "cpu":
        cell["device"] = torch.cuda.get_device_name(y.device) if y.device.type == "cuda" else y.device.type
    if own:
        cell["warning"] = own[0]
    return cell


def compatible(solver: str, prior) -> bool:
    try:
        require(prior, SOLVERS[solver].needs, solver)
    except TypeError:
        return False
    return True


def run(args) -> None:
    cache = load_cache(args.cache)
    solvers = args.solvers.split(",") if args.solvers else sorted(SOLVERS)
    priors = args.priors.split(",") if args.priors else list(PRIORS)
    operators = args.operators.split(",") if args.operators else list(OPERATORS)
    color = args.color
    for op_name in operators:
        built = problem(op_name, args.size, color, training=args.training)
        if built is None:
            continue
        x, op, y = (t.to(args.device) for t in built)  # drawn on the CPU, then moved
        base_key = cell_key("baseline", args.size, color, op_name, "-", "-")
        if base_key not in cache:
            cache[base_key] = baselines(x, op, y)
            save_cache(args.cache, base_key, cache[base_key])
        for prior_name in priors:
            channels = prior_channels(prior_name)
            if channels is not None and channels != x.shape[1]:
                continue
            prior = None
            for solver in solvers:
                tag = "tv" if (solver, prior_name) == ("chambolle-pock", "tv") else args.tag
                key = cell_key(tag, args.size, color, op_name, prior_name, solver)
                if key in cache and not args.force:
                    continue
                prior = prior if prior is not None else build_prior(prior_name, args.device)
                if not compatible(solver, prior):
                    continue
                print(f"{key} ...", end=" ", flush=True)
                weak = weak_default(solver, op, prior) if args.skip_warned else None
                cache[key] = (
                    {"warning": weak.message(), "not_run": True}
                    if weak
                    else run_cell(solver, prior, x, op, y)
                )
                print(json.dumps(cache[key]), flush=True)
                save_cache(args.cache, key, cache[key])
    report(load_all([args.cache, *args.also]), args.out, args.training)


@functools.cache
def preset_operator(op_name: str, size: int, color: bool):
    """The operator preset at the cell's size, as WEAK_DEFAULTS read it (family, SR factor,
    inpainting hole width)."""
    return make(op_name, size, 3 if color else 1, generator=torch.Generator().manual_seed(0))


def current_warning(solver: str, op_name: str, size: int, color: bool, prior) -> str | None:
    """The message today's :data:`~restorekit.solvers.steps.WEAK_DEFAULTS` give for the pair on
    the operator preset, or None."""
    weak = weak_default(solver, preset_operator(op_name, int(size), color), prior)
    return None if weak is None else weak.message()


def rewarn(path: str) -> None:
    """Re-read every measured cell's warning from :func:`current_warning` (a warning changes no
    result), so the report shows the warnings a user gets now."""
    cache, priors = load_cache(path), {}
    for key, cell in cache.items():
        tag, size, col, op_name, prior_name, solver = key.split("|")
        if tag in ("baseline", "tv") or "psnr" not in cell:
            continue
        prior = priors.setdefault(prior_name, build_prior(prior_name))
        warning = current_warning(solver, op_name, size, col == "rgb", prior)
        cell.pop("warning", None)
        if warning is not None:
            cell["warning"] = warning
    write_cache(path, cache)


# ---- the report ------------------------------------------------------------------------------
def cells(cache: dict, tag: str):
    """(size, colour, operator, prior, solver, cell, baseline, tv) for every cached cell of ``tag``
    and the TV cells (Chambolle–Pock + TV, the pair every tag shares, cached under "tv")."""
    for key, cell in sorted(cache.items()):
        t, size, col, op, prior, solver = key.split("|")
        if t not in (tag, "tv"):
            continue
        base = cache.get(cell_key("baseline", size, col == "rgb", op, "-", "-"), {})
        tv = cache.get(cell_key("tv", size, col == "rgb", op, "tv", "chambolle-pock"), {})
        yield size, col, op, prior, solver, cell, base, tv


def margin(cell: dict, base: dict) -> float | None:
    """PSNR above the better of the truncated-CG start and the measurement (None if refused)."""
    if "psnr" not in cell or "cg" not in base:
        return None
    ref = max(base["cg"]["psnr"], base.get("y", {"psnr": -1e9})["psnr"])
    return cell["psnr"] - ref


def worst(cache: dict, tag: str, n: int = 10, silent_only: bool = False) -> list[str]:
    """The ``n`` cells with the lowest margin; ``silent_only``: among those that do not warn."""
    rows = []
    for size, col, op, prior, solver, cell, base, tv in cells(cache, tag):
        m = margin(cell, base)
        if m is not None and not (silent_only and "warning" in cell):
            status = "warns" if "warning" in cell else ("✓" if m >= MARGIN_DB else "✗")
            rows.append(
                (
                    m,
                    f"| {solver} | {prior} | {op} ({col}, {size}²) | {cell['psnr']:.2f} | {m:+.2f} | {status} |",
                )
            )
    rows.sort()
    return [
        "| solver | prior | operator | PSNR (dB) | vs max(CG start, y) (dB) | |",
        "|---|---|---|---|---|---|",
    ] + [r for _, r in rows[:n]]


def summary(cache: dict, tag: str) -> list[str]:
    """Per solver × prior: cells measured, passing (margin ≥ 0.5 dB or refused/warned), mean
    margin over the measured cells and the worst operator."""
    groups: dict[tuple[int, str, str], list] = {}
    for size, col, op, prior, solver, cell, base, tv in cells(cache, tag):
        groups.setdefault((int(size), solver, prior), []).append((op, cell, margin(cell, base)))
    lines = [
        "| size | solver | prior | cells | pass | refused | mean margin (dB) | worst (dB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (size, solver, prior), rows in sorted(groups.items()):
        measured = [(m, op) for op, cell, m in rows if m is not None]
        refused = sum("refused" in cell for _, cell, _ in rows)
        not_run = sum("not_run" in cell for _, cell, _ in rows)
        passed = (
            refused
            + not_run
            + sum(m >= MARGIN_DB or "warning" in cell for op, cell, m in rows if m is not None)
        )
        mean = f"{sum(m for m, _ in measured) / len(measured):+.2f}" if measured else ""
        low = min(measured) if measured else None
        worst_op = f"{low[0]:+.2f} ({low[1]})" if low else ""
        lines.append(
            f"| {size}² | {solver} | {prior} | {len(rows)} | {passed} | {refused} | {mean} | {worst_op} |"
        )
    return lines


def report(cache: dict, out: str, training: bool = False) -> None:
    tags = sorted({k.split("|")[0] for k in cache} - {"baseline", "tv"})
    main_tag = next((t for t in ("current", "after") if t in tags), tags[-1] if tags else None)
    lines = [
        "# Defaults matrix",
        "",
        "Generated by `python benchmarks/defaults.py` (see its docstring) on "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s), "
        f"torch {torch.__version__}; a shared 2-core machine, so seconds are indicative only. "
        "Seconds marked † were measured on the GPU named in the cache (`--device cuda`).",
        "",
        (
            f"TRAINING images (where defaults are chosen): gray {', '.join(training_images(False))}; "
            f"colour {', '.join(training_images(color=True))}. "
            if training
            else f"Every cell: the HELD_OUT images ({', '.join(rk.data.HELD_OUT)}) in one batch, "
        )
        + f"σ_y = {SIGMA_Y} (denoising 0.1), the solver and prior at their defaults. "
        "`margin` = PSNR − max(truncated-CG start, measurement where it is an image); the rule is "
        f"margin ≥ {MARGIN_DB} dB or a refusal with a message. ✗ marks a failing cell.",
        "",
    ]
    for tag in tags:
        lines += [f"## Summary, tag `{tag}`", "", *summary(cache, tag), ""]
    if main_tag is not None:
        lines += [
            f"## Cells (tag `{main_tag}`)",
            "",
            "| operator | prior | solver | PSNR (dB) | SSIM | s | NFE | margin (dB) | vs TV (dB) | |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for size, col, op, prior, solver, cell, base, tv in cells(cache, main_tag):
            label = f"{op} ({col}, {size}²)"
            if "refused" in cell or "not_run" in cell:
                why = (
                    f"refused: {cell['refused'][:140]}"
                    if "refused" in cell
                    else f"not run (warns: {cell['warning'][:100]})"
                )
                lines.append(f"| {label} | {prior} | {solver} | {why} | | | | | | ✓ |")
                continue
            m = margin(cell, base)
            vs_tv = f"{cell['psnr'] - tv['psnr']:+.2f}" if "psnr" in tv else ""
            ok = "✓" if (m is not None and m >= MARGIN_DB) or "warning" in cell else "✗"
            warn = f" (warns: {cell['warning'][:80]})" if "warning" in cell else ""
            lines.append(
                f"| {label} | {prior} | {solver} | {cell['psnr']:.2f} | {cell['ssim']:.3f} | "
                f"{cell['seconds']:.1f}{' †' * ('device' in cell)} | {cell['nfe']} | {m:+.2f} | {vs_tv} | {ok}{warn} |"
            )
        lines += [
            "",
            "## Baselines",
            "",
            "| operator | measurement PSNR | truncated-CG PSNR | TV PSNR |",
            "|---|---|---|---|",
        ]
        for key, base in sorted(cache.items()):
            t, size, col, op, _, _ = key.split("|")
            if t == "baseline":
                tv = cache.get(cell_key("tv", size, col == "rgb", op, "tv", "chambolle-pock"), {})
                ymeas = f"{base['y']['psnr']:.2f}" if "y" in base else "—"
                tvp = f"{tv['psnr']:.2f}" if "psnr" in tv else ""
                lines.append(f"| {op} ({col}, {size}²) | {ymeas} | {base['cg']['psnr']:.2f} | {tvp} |")
    for tag in tags:
        lines += ["", f"## Worst ten cells, tag `{tag}`", "", *worst(cache, tag)]
        lines += [
            "",
            f"## Worst ten cells that do not warn, tag `{tag}`",
            "",
            *worst(cache, tag, silent_only=True),
        ]
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solvers", default="", help="comma-separated solver names (default: all)")
    ap.add_argument("--priors", default="", help=f"comma-separated priors (default: {','.join(PRIORS)})")
    ap.add_argument(
        "--operators", default="", help=f"comma-separated operators (default: {','.join(OPERATORS)})"
    )
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--color", action="store_true", help="colour images (default gray)")
    ap.add_argument("--tag", default="after", help="label of the cells (e.g. before/after a change)")
    ap.add_argument("--force", action="store_true", help="recompute cached cells")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--device",
        default="cpu",
        help="torch device of the solves (the problem is drawn on the CPU, then moved)",
    )
    ap.add_argument("--cache", default=None, help="default: benchmarks/defaults[_training]_cache.json")
    ap.add_argument("--out", default=None, help="default: benchmarks/defaults[_training]_results.md")
    ap.add_argument(
        "--also",
        nargs="*",
        default=[os.path.join(HERE, "defaults_cache_before.json")],
        help="more caches merged into the report (default: the 'before' cells)",
    )
    ap.add_argument(
        "--skip-warned",
        action="store_true",
        help="record pairs that warn (restorekit.solvers.steps.WEAK_DEFAULTS) as 'not run' without solving",
    )
    ap.add_argument(
        "--rewarn",
        action="store_true",
        help="refresh the cached cells' warnings from WEAK_DEFAULTS, then report",
    )
    ap.add_argument("--report", action="store_true", help="only rewrite the markdown from the cache")
    ap.add_argument(
        "--training",
        action="store_true",
        help="the tuning images instead of HELD_OUT (where defaults are chosen), in their own "
        "cache and report",
    )
    args = ap.parse_args()
    suffix = "_training" if args.training else ""
    args.cache = args.cache or os.path.join(HERE, f"defaults{suffix}_cache.json")
    args.out = args.out or os.path.join(HERE, f"defaults{suffix}_results.md")
    if args.training:
        args.also = []
    torch.set_num_threads(args.threads)
    if args.rewarn:
        rewarn(args.cache)
    if args.report or args.rewarn:
        report(load_all([args.cache, *args.also]), args.out, args.training)
    else:
        run(args)


if __name__ == "__main__":
    main()
