"""The ``restorekit`` command: ``solve``, ``list``, ``demo``.

    restorekit list
    restorekit solve camera --operator gaussian-blur --noise-sigma 0.01 --prior tv --weight 0.01 \
        --solver chambolle-pock --size 128 --out result.png
    restorekit demo                 # deblur a held-out image with every prior, write a figure

Bad arguments print one line ``restorekit: error: ...`` and exit with status 2.
"""
from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path


class CLIError(Exception):
    """An error to print as one line, without a traceback."""


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _params(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise CLIError(f"--param expects name=value, got {pair!r}")
        k, v = pair.split("=", 1)
        out[k.replace("-", "_")] = _parse_value(v)
    return out


def build_prior(name: str, weight: float | None = None, device=None):
    """A prior by CLI name: ``tv`` (with ``weight``) or a shipped prior from ``priors.load``."""
    from . import priors

    if name == "tv":
        return priors.TV(weight=0.02 if weight is None else weight)
    if weight is not None:
        raise CLIError("--weight applies to --prior tv only")
    try:
        return priors.load(name, device=device)
    except ValueError as e:
        raise CLIError(str(e)) from None


def _cmd_list(args) -> int:
    from . import priors
    from .operators import BUILDERS
    from .solvers import SOLVERS

    print("operators:")
    for name, spec in BUILDERS.items():
        print(f"  {name:24s} {spec.description}")
    print("priors:")
    print(f"  {'tv':24s} isotropic total variation (--weight)")
    for name, description in priors.available().items():
        print(f"  {name:24s} {description}")
    print("solvers:")
    for name, cls in sorted(SOLVERS.items()):
        doc = (cls.__doc__ or "").strip().splitlines()
        print(f"  {name:24s} {doc[0] if doc else ''}")
    return 0


def _cmd_solve(args) -> int:
    import torch

    from . import data, solve
    from .figures import comparison_figure
    from .operators import make

    if args.image.endswith(".npy"):
        return _solve_volume(args)
    try:
        x = data.load_image(args.image, size=args.size, color=args.color, device=args.device)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None
    gen = torch.Generator(device=x.device).manual_seed(args.seed)
    op_kwargs = {"noise_sigma": args.noise_sigma}
    if _accepts_generator(args.operator):
        op_kwargs["generator"] = gen
    op_kwargs.update(_params(args.op_param))
    try:
        operator = make(args.operator, img_size=tuple(x.shape[-2:]), channels=x.shape[1],
                        device=x.device, **op_kwargs)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None
    y = operator(x)
    prior = build_prior(args.prior, args.weight, device=x.device)
    params = _params(args.param)
    if args.steps is not None:
        from .solvers import SOLVERS

        accepted = inspect.signature(SOLVERS[args.solver]).parameters if args.solver in SOLVERS else {}
        params["steps" if "steps" in accepted else "max_iter"] = args.steps
    try:
        result = solve(y, operator, prior, solver=args.solver, x_true=x, generator=gen,
                       progress=not args.quiet, tile=_tile(args.tile), **params)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None
    out = Path(args.out)
    _save_png(result.x, out)
    start = operator.A_dagger(y).clamp(0, 1)
    fig = comparison_figure([("A†y", start), (f"{args.solver} + {args.prior}", result.x), ("ground truth", x)],
                            out.with_name(out.stem + "_comparison.png"), reference=x,
                            title=f"{args.image}: {args.operator}")
    m = result.metrics
    print(f"{args.solver} + {args.prior}: PSNR {m.psnr.mean():.2f} dB, SSIM {m.ssim.mean():.3f}, "
          f"{result.seconds:.1f} s, {result.nfe} network evaluations")
    print(f"wrote {out} and {fig}")
    return 0


def _tile(text: str):
    """--tile: 'auto', 'none' or a window side in pixels."""
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    try:
        return int(text)
    except ValueError:
        raise CLIError(f"--tile must be 'auto', 'none' or an int, got {text!r}") from None


def _solve_volume(args) -> int:
    """``restorekit solve volume.npy``: a (D, H, W) array in [0, 1] as the ground-truth volume,
    slice-wise CT (``--op-param views=… angle_range=…``), TV3D (``--prior tv``) or a 2D diffusion
    prior (``dds-3d``); writes the restored volume to ``--out`` (.npy)."""
    import numpy as np
    import torch

    from . import solve
    from .operators import volume_ct
    from .priors import TV3D

    try:
        arr = np.load(args.image, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CLIError(f"cannot read volume {args.image!r}: {e}") from None
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise CLIError(f"a volume .npy must be a (D, N, N) array, got shape {arr.shape}")
    if args.operator != "ct":
        raise CLIError(f"volumes support --operator ct (slice-wise CT), got {args.operator!r}")
    x = torch.as_tensor(arr, dtype=torch.float32, device=args.device)[None, None].clamp(0, 1)
    gen = torch.Generator(device=x.device).manual_seed(args.seed)
    try:
        op = volume_ct(img_size=arr.shape[1], noise_sigma=args.noise_sigma, generator=gen,
                       device=x.device, **_params(args.op_param))
        prior = TV3D(args.weight if args.weight is not None else 0.001) if args.prior == "tv" \
            else build_prior(args.prior, None, device=x.device)
        params = _params(args.param)
        if args.steps is not None:
            params["steps" if args.solver == "dds-3d" else "max_iter"] = args.steps
        result = solve(op(x), op, prior, solver=args.solver, x_true=x, generator=gen,
                       progress=not args.quiet, tile=_tile(args.tile), **params)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None
    out = Path(args.out).with_suffix(".npy")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, result.x[0, 0].cpu().numpy())
    print(f"{args.solver} + {args.prior}: PSNR {result.metrics.psnr.mean():.2f} dB, "
          f"{result.seconds:.1f} s; wrote {out}")
    return 0


def _accepts_generator(name: str) -> bool:
    from .operators import BUILDERS

    return name in BUILDERS and "generator" in inspect.signature(BUILDERS[name].build).parameters


def _save_png(x, path: Path) -> None:
    import numpy as np
    from skimage.io import imsave

    arr = (x[0].detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, arr[..., 0] if arr.shape[2] == 1 else arr, check_contrast=False)


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(out=Path(args.out), quick=args.quick, device=args.device)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="restorekit", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list operators, priors and solvers")
    s = sub.add_parser("solve", help="degrade a sample image (or file) and restore it")
    s.add_argument("image", help="sample image name (see restorekit.data.IMAGES) or a file path")
    s.add_argument("--operator", default="gaussian-blur", help="operator name (restorekit list)")
    s.add_argument("--noise-sigma", type=float, default=0.01, help="measurement noise std in [0, 1] units")
    s.add_argument("--op-param", action="append", default=[], metavar="NAME=VALUE",
                   help="extra operator argument, e.g. factor=2 (repeatable)")
    s.add_argument("--prior", default="tv", help="tv or a shipped prior name (restorekit list)")
    s.add_argument("--weight", type=float, default=None, help="TV weight (prior tv only)")
    s.add_argument("--solver", default="chambolle-pock", help="solver name (restorekit list)")
    s.add_argument("--steps", type=int, default=None, help="iterations / diffusion steps")
    s.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="solver hyperparameter, e.g. lr=0.5 (repeatable)")
    s.add_argument("--size", type=int, default=256, help="crop/resize the image to this side")
    s.add_argument("--color", action=argparse.BooleanOptionalAction, default=None,
                   help="force colour (--color) or gray (--no-color)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--out", default="restored.png")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--tile", default="auto", help="network window side for large images: 'auto' "
                   "(256 px above 512 px), 'none' or an int")
    d = sub.add_parser("demo", help="restore held-out sample images with every prior; write a figure")
    d.add_argument("--out", default="restorekit-demo", help="output folder")
    d.add_argument("--quick", action="store_true", help="small image, few steps")
    d.add_argument("--device", default="cpu")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler = {"list": _cmd_list, "solve": _cmd_solve, "demo": _cmd_demo}[args.command]
    try:
        return handler(args)
    except CLIError as e:
        print(f"restorekit: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
