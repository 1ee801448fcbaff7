"""The ``restorekit`` command: ``solve``, ``list``, ``demo``.

    restorekit list
    restorekit solve camera --operator gaussian-blur --noise-sigma 0.01 --prior tv --weight 0.01 \
        --solver chambolle-pock --size 128 --out result.png
    restorekit demo                 # deblur a held-out image with every prior, write a figure
    restorekit restore blurry.png --operator blur --kernel psf.npy --out sharp.png
    restorekit batch frames/ restored/ --operator denoising --workers 2

Bad arguments print one line ``restorekit: error: ...`` and exit with status 2.
"""
from __future__ import annotations

import argparse
import inspect
import os
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
                       progress=not args.quiet, **params)
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


def _task_arguments(p: argparse.ArgumentParser) -> None:
    """The operator, noise, prior and solver options shared by ``restore`` and ``batch``."""
    from .io import MEASURED_OPERATORS

    p.add_argument("--operator", required=True, help=f"what produced the file: {', '.join(MEASURED_OPERATORS)}")
    p.add_argument("--kernel", help="blur: kernel file (.npy or image, normalised to sum 1) or a "
                   "Gaussian std in pixels")
    p.add_argument("--boundary", default="periodic", help="blur boundary: periodic or reflect")
    p.add_argument("--mask", "--mri-mask", dest="mask", help="inpainting: mask image of observed "
                   "pixels; mri: k-space sampling mask (.npy or image)")
    p.add_argument("--missing", type=int, default=0,
                   help="which mask value marks missing/unsampled pixels: 0 (black, default) or 1 (white)")
    p.add_argument("--factor", type=int, help="sr: upsampling factor, 2 or 4 (output = factor x input)")
    p.add_argument("--views", type=int, help="ct: number of views (default: the sinogram's columns)")
    p.add_argument("--angle-range", type=float, default=180.0, help="ct: angular range in degrees")
    p.add_argument("--img-size", type=int, help="ct: image side (default: from the detector rows)")
    p.add_argument("--noise-sigma", type=float, default=None,
                   help="noise std of the measurement in [0, 1] units (default: estimated)")
    p.add_argument("--normalize", action="store_true",
                   help="map float images outside [0, 1] to [0, 1] by min-max instead of refusing them")
    p.add_argument("--prior", default="tv", help="tv or a shipped prior name (restorekit list)")
    p.add_argument("--weight", type=float, default=None, help="TV weight (prior tv only)")
    p.add_argument("--solver", default="chambolle-pock", help="solver name (restorekit list)")
    p.add_argument("--steps", type=int, default=None, help="iterations / diffusion steps")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="solver hyperparameter, e.g. lr=0.5 (repeatable)")
    p.add_argument("--bit-depth", type=int, default=None,
                   help="output bit depth 8, 16 or 32 (float) (default: the input's)")
    p.add_argument("--seed", type=int, default=0, help="mixed with each file name into its seed")
    p.add_argument("--device", default="cpu")


def _task(args):
    """The batch Task the ``restore``/``batch`` arguments describe."""
    from .batch import Task
    from .solvers import SOLVERS

    kernel, mask = args.kernel, args.mask
    if kernel is not None:
        try:
            kernel = float(kernel)
        except ValueError:
            kernel = os.path.abspath(kernel)  # workers may run elsewhere (Ray actors)
    given = {"kernel": kernel, "mask": mask and os.path.abspath(mask), "factor": args.factor,
             "views": args.views, "img_size": args.img_size}
    operator_args = {k: v for k, v in given.items() if v is not None}
    operator_args.update(noise_sigma=args.noise_sigma, normalize=args.normalize)
    if args.operator == "blur":
        operator_args["boundary"] = args.boundary
    if args.operator in ("inpainting", "mri"):
        operator_args["missing"] = args.missing
    if args.operator == "ct":
        operator_args["angle_range"] = args.angle_range
    params = _params(args.param)
    if args.steps is not None:
        accepted = inspect.signature(SOLVERS[args.solver]).parameters if args.solver in SOLVERS else {}
        params["steps" if "steps" in accepted else "max_iter"] = args.steps
    return Task(operator=args.operator, prior=args.prior, solver=args.solver, operator_args=operator_args,
                weight=args.weight, params=params, device=args.device, bit_depth=args.bit_depth,
                seed=args.seed)


def _cmd_restore(args) -> int:
    from .batch import default_output, restore_item
    from .io import check_output_path

    task = _task(args)
    try:
        out = check_output_path(args.out or default_output(args.measurement, args.operator),
                                overwrite=args.overwrite, name="--out")
        record = restore_item(task, args.measurement, out, progress=not args.quiet,
                              overwrite=args.overwrite)
    except (ValueError, TypeError, FloatingPointError) as e:
        raise CLIError(str(e)) from None
    for note in record["notes"]:
        print(f"note: {note}")
    print(f"{args.solver} + {args.prior}: noise std {record['noise_sigma']:.4g}"
          f"{' (estimated)' if record['noise_estimated'] else ''}, {record['solve_seconds']:.1f} s, "
          f"{record['nfe']} network evaluations, seed {record['seed']}")
    print(f"wrote {out}")
    return 0


def _cmd_batch(args) -> int:
    from . import batch

    task = _task(args)
    try:
        summary = batch.run(args.inputs, args.output_dir, task, engine=args.engine, workers=args.workers,
                            address=args.address, reference=args.reference, out_ext=args.ext,
                            progress=None if not args.quiet else False)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None
    print(f"{summary.done} restored, {summary.skipped} already done, {summary.failed} failed; "
          f"manifest {summary.manifest}")
    for record in summary.records:
        if record["status"] == "failed":
            print(f"failed: {record['item']}: {record['error']}", file=sys.stderr)
    return min(summary.failed, 125)


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
    d = sub.add_parser("demo", help="restore held-out sample images with every prior; write a figure")
    d.add_argument("--out", default="restorekit-demo", help="output folder")
    d.add_argument("--quick", action="store_true", help="small image, few steps")
    d.add_argument("--device", default="cpu")
    r = sub.add_parser("restore", help="restore a measured file (the file is y; the operator comes from "
                       "flags and files)")
    r.add_argument("measurement", help="the measured image (.png/.jpg/.tif/.npy), sinogram or k-space (.npy)")
    _task_arguments(r)
    r.add_argument("--out", default=None, help="output file (default: NAME_restored with the input's "
                   "extension, .tif for ct/mri)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    b = sub.add_parser("batch", help="restore every measured file of a folder (or a list file); "
                       "exit status = number of failed items")
    b.add_argument("inputs", help="a folder of measured files, or a .txt file listing one path per line")
    b.add_argument("output_dir", help="where outputs and manifest.jsonl go; a rerun resumes")
    _task_arguments(b)
    b.add_argument("--workers", type=int, default=1, help="parallel worker processes / Ray actors")
    b.add_argument("--engine", default="local", help="local (process pool) or ray")
    b.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    b.add_argument("--reference", default=None, help="folder of ground-truth images with the same "
                   "names, for PSNR/SSIM in the manifest")
    b.add_argument("--ext", default=None, help="output extension, e.g. .png (default: the input's)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler = {"list": _cmd_list, "solve": _cmd_solve, "demo": _cmd_demo, "restore": _cmd_restore,
               "batch": _cmd_batch}[args.command]
    try:
        return handler(args)
    except CLIError as e:
        print(f"restorekit: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
