"""The restorekit command: solve, list, demo.

    restorekit list
    restorekit solve camera --operator gaussian-blur --noise-sigma 0.01 --prior tv --weight 0.01 \
        --solver chambolle-pock --size 128 --out result.png
    restorekit demo                 # deblur a held-out image with every prior, write a figure
    restorekit restore blurry.png --operator blur --kernel psf.npy --out sharp.png
    restorekit batch frames/ restored/ --operator denoising --workers 2

Bad arguments print one line "restorekit: error: ..." and exit with status 2; Ctrl-C prints one
line and exits with status 130. Every file is written whole (temporary file, then rename) and an
existing file is replaced only with --overwrite.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import re
import sys
import warnings
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


def _solver_params(args) -> dict:
    """The solver hyperparameters of ``--param name=value`` and ``--steps``; ``--steps`` sets the
    solver's own iteration count, ``steps`` or ``max_iter`` (read from its signature)."""
    from .solvers import SOLVERS

    params = _params(args.param)
    if args.steps is not None:
        accepted = inspect.signature(SOLVERS[args.solver]).parameters if args.solver in SOLVERS else {}
        params["steps" if "steps" in accepted else "max_iter"] = args.steps
    params.update(_likelihood_params(args.likelihood, args.solver))
    if args.likelihood == "poisson" and args.peak is None:
        raise CLIError("--likelihood poisson needs photon-limited data: give --peak (photons at white)")
    return params


#: The option that switches each solver to the Poisson data term (spiral-tap has only that one).
POISSON_OPTIONS = {"pnp-admm": ("data_term", "poisson"), "dps": ("likelihood", "poisson"), "spiral-tap": None}


def _likelihood_params(likelihood: str, solver: str) -> dict:
    """--likelihood: ``gaussian`` (½‖Ax − y‖², every solver) or ``poisson`` (the Poisson NLL of
    :mod:`restorekit.operators.likelihood`, for the solvers of :data:`POISSON_OPTIONS`)."""
    if likelihood == "gaussian":
        if solver == "spiral-tap":
            raise CLIError("solver spiral-tap has a Poisson data term only: add --likelihood poisson")
        return {}
    if likelihood != "poisson":
        raise CLIError(f"--likelihood must be gaussian or poisson, got {likelihood!r}")
    if solver not in POISSON_OPTIONS:
        raise CLIError(
            f"--likelihood poisson: solver {solver} has a squared-error data term only; "
            f"use one of {', '.join(POISSON_OPTIONS)}"
        )
    option = POISSON_OPTIONS[solver]
    return {} if option is None else {option[0]: option[1]}


def build_prior(name: str, weight: float | None = None, device=None):
    """A prior by CLI name: ``tv`` (with ``weight``) or a shipped prior from ``priors.load``."""
    from . import priors

    if name == "tv":
        return priors.TV(weight=weight)
    if weight is not None:
        raise CLIError("--weight applies to --prior tv only")
    try:
        return priors.load(name, device=device)
    except ValueError as e:
        raise CLIError(str(e)) from None


def _first_sentence(doc: str | None) -> str:
    """The whole first sentence of a docstring (its first paragraph up to the first full stop)."""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    # a full stop ends the sentence unless it ends an abbreviation ("et al.", "J.", "e.g.")
    for match in re.finditer(r"(\S+)[.!?](?=\s+[A-Z]|$)", paragraph):
        word = match.group(1)
        if word not in ("al", "e.g", "i.e", "cf", "vs", "Eq", "Fig") and not re.fullmatch(r"[A-Z]", word):
            return paragraph[: match.end()]
    return paragraph


def _families(prior) -> str:
    """The solvers that accept ``prior`` (by the capability each needs)."""
    from .solvers import SOLVERS

    return ", ".join(name for name, cls in sorted(SOLVERS.items()) if isinstance(prior, cls.needs))


def _cmd_list(args) -> int:
    from . import priors
    from .operators import BUILDERS
    from .solvers import SOLVERS
    from .validate import prior_channels

    print("operators:")
    for name, spec in BUILDERS.items():
        print(f"  {name:24s} {spec.description}{' (gray only)' if spec.gray_only else ''}")
    print("priors (gray/colour: the images each takes; solvers: the ones that accept it):")
    tv = priors.TV()
    print(f"  {'tv':24s} [gray or colour] isotropic total variation (--weight); solvers: {_families(tv)}")
    for name, description in priors.available().items():
        try:
            prior = priors.load(name)
        except ValueError as e:
            print(f"  {name:24s} [unavailable: {e}]")
            continue
        kind = {1: "gray", 3: "colour", None: "gray or colour"}.get(prior_channels(prior), "?")
        print(f"  {name:24s} [{kind}] {description}; solvers: {_families(prior)}")
    print("solvers:")
    for name, cls in sorted(SOLVERS.items()):
        print(f"  {name:24s} {_first_sentence(cls.__doc__)} (prior: {cls.needs.__name__})")
    return 0


def _cmd_solve(args) -> int:
    import torch

    from . import data
    from .figures import comparison_figure, measurement_panels
    from .operators import make

    if _is_volume_file(args.image):
        return _solve_volume(args)
    device = _device(args.device)
    out = _output(args.out, args.overwrite)
    figure = _output(out.with_name(out.stem + "_comparison.png"), args.overwrite)
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always")
        try:
            x, info = data.load_image(
                args.image,
                size=args.size,
                color=args.color,
                device=device,
                normalize=args.normalize,
                with_info=True,
            )
        except (ValueError, TypeError) as e:
            raise CLIError(str(e)) from None
    for note in notes:
        if issubclass(note.category, UserWarning):  # the conversions read_image states
            print(f"restorekit: note: {note.message}", file=sys.stderr)
    gen = torch.Generator(device=x.device).manual_seed(args.seed)
    default_sigma = 0.01 if args.peak is None else 0.0
    op_kwargs = {"noise_sigma": default_sigma if args.noise_sigma is None else args.noise_sigma}
    if args.peak is not None:
        op_kwargs["poisson"] = 1 / args.peak
    if _accepts_generator(args.operator):
        op_kwargs["generator"] = gen
    op_kwargs.update(_params(args.op_param))
    try:
        operator = make(
            args.operator, img_size=tuple(x.shape[-2:]), channels=x.shape[1], device=x.device, **op_kwargs
        )
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None
    y = operator(x)
    prior = _matching_prior(build_prior(args.prior, args.weight, device=x.device), args, x.shape[1])
    if args.samples is not None:
        return _solve_with_intervals(args, x, y, operator, prior, gen, out, info)
    print(
        f"restoring {args.image} ({'×'.join(map(str, x.shape[-2:]))}, {args.operator}) with "
        f"{args.solver} + {args.prior}…",
        flush=True,
    )
    result = _run_solver(args, y, operator, prior, x, gen)
    _save_image(result.x, out, info)
    comparison_figure(
        [
            *measurement_panels(operator, y, x),
            (f"{args.solver} + {args.prior}", result.x),
            ("ground truth", x),
        ],
        figure,
        reference=x,
        title=f"{args.image}: {args.operator}",
    )
    m = result.metrics
    assert m is not None  # solve() fills metrics when x_true is given
    print(
        f"{args.solver} + {args.prior}: PSNR {m.psnr.mean():.2f} dB, SSIM {m.ssim.mean():.3f}, "
        f"{result.seconds:.1f} s, {result.nfe} network evaluations"
    )
    print(f"wrote {out} and {figure}")
    return 0


def _run_solver(args, y, operator, prior, x_true, generator):
    """:func:`restorekit.solve` with the command line's solver, ``--param``/``--steps`` options,
    ``--tile`` and ``--quiet``, for images and volumes alike; a CLIError for a rejected argument
    or a diverging run."""
    from . import solve
    from .solvers.base import Diverged

    try:
        return solve(
            y,
            operator,
            prior,
            solver=args.solver,
            x_true=x_true,
            generator=generator,
            progress=False if args.quiet else None,
            tile=_tile(args.tile),
            **_solver_params(args),
        )
    except (ValueError, TypeError, Diverged) as e:
        raise CLIError(str(e)) from None


def _solve_with_intervals(args, x, y, operator, prior, generator, out: Path, info) -> int:
    """``solve --samples K``: K posterior samples of the solver (one batched call), their mean
    as the output, per-pixel intervals from the (1 ∓ c)/2 sample quantiles (c = --coverage),
    written as float TIFFs ``_lower``/``_upper``, and a figure (mean, width, pixels outside).
    With ``--calibrate DIR`` the intervals are [l − λ, u + λ], λ calibrated by RCPS (or K-RCPS
    with ``--krcps``) on the images of DIR put through the same operator, so that the fraction
    of pixels outside is ≤ --epsilon with probability ≥ 1 − --delta
    (:mod:`restorekit.uncertainty`)."""
    import torch

    from . import data
    from .batch import list_items
    from .figures import uncertainty_figure
    from .io import write_image
    from .metrics import psnr
    from .uncertainty import krcps, mean_length, pixel_risk, posterior_samples, rcps, sample_statistics

    def intervals(y_batch, what: str):
        print(f"drawing {args.samples} samples of {what} with {args.solver} + {args.prior}…", flush=True)
        try:
            samples = posterior_samples(
                y_batch,
                operator,
                prior,
                args.samples,
                solver=args.solver,
                generator=generator,
                progress=False if args.quiet else None,
                tile=_tile(args.tile),
                **_solver_params(args),
            )
            stats = sample_statistics(samples, coverage=args.coverage)
        except ValueError as e:
            raise CLIError(str(e)) from None
        if float(stats.std.max()) == 0:
            raise CLIError(
                f"solver {args.solver} returned {args.samples} identical samples (it is deterministic "
                "here): --samples needs a sampler, e.g. dds, dps, mcg, ddrm or diffpir"
            )
        return stats

    stats = intervals(y, args.image)
    lower, upper, how = stats.lower, stats.upper, f"{args.coverage:.0%} sample-quantile intervals"
    if args.calibrate:
        try:
            files = list_items(args.calibrate)
            x_cal = torch.cat(
                [
                    data.load_image(str(f), size=args.size, color=x.shape[1] == 3, device=x.device)
                    for f in files
                ]
            )
        except (ValueError, TypeError) as e:
            raise CLIError(f"--calibrate: {e}") from None
        cal = intervals(operator(x_cal), f"{len(files)} calibration images")
        try:
            if args.krcps:
                kwargs = dict(
                    epsilon=args.epsilon, delta=args.delta, generator=torch.Generator().manual_seed(0)
                )
                calibration = krcps(cal.lower, cal.upper, x_cal, **kwargs)
            else:
                calibration = rcps(cal.lower, cal.upper, x_cal, epsilon=args.epsilon, delta=args.delta)
        except ValueError as e:
            raise CLIError(f"--calibrate: {e}") from None
        lower, upper = calibration.intervals(stats.lower, stats.upper)
        how = (
            f"{'K-RCPS' if args.krcps else 'RCPS'} intervals (risk ≤ {args.epsilon} with probability "
            f"≥ {1 - args.delta:g}, {len(files)} calibration images)"
        )
    _save_image(stats.mean, out, info)
    bounds = [out.with_name(f"{out.stem}_{side}.tif") for side in ("lower", "upper")]
    for path, bound in zip(bounds, (lower, upper)):
        write_image(_output(path, args.overwrite), bound.clamp(0, 1), bit_depth=32, overwrite=True)
    figure = uncertainty_figure(
        stats.mean,
        lower,
        upper,
        _output(out.with_name(out.stem + "_uncertainty.png"), args.overwrite),
        truth=x,
        title=f"{args.image}: {args.operator}, {args.solver} + {args.prior}, {how}",
    )
    print(
        f"posterior mean of {args.samples} samples: PSNR {float(psnr(stats.mean.clamp(0, 1), x).mean()):.2f} dB; {how}: mean length "
        f"{mean_length(lower, upper):.4f}, fraction of pixels outside {pixel_risk(lower, upper, x).mean():.4f}"
    )
    print(f"wrote {out}, {bounds[0]}, {bounds[1]} and {figure}")
    return 0


def _matching_prior(prior, args, channels: int):
    """``prior`` if it takes ``channels``-channel images, wrapped per channel with --per-channel;
    else a CLIError listing the choices."""
    from .priors import PerChannel
    from .validate import prior_channels

    want = prior_channels(prior)
    if want == 1 and channels != 1:
        if args.per_channel:
            return PerChannel(prior)
        raise CLIError(
            f"--prior {args.prior} takes gray images but {args.image} is colour; choose "
            "--per-channel (each channel restored with the gray prior), --no-color "
            "(restore the luminance) or a colour prior (--prior diffusion-rgb or tv)"
        )
    if want is not None and want != channels:
        raise CLIError(
            f"--prior {args.prior} takes {want}-channel (colour) images but {args.image} "
            "is gray; add --color (gray copied to 3 channels) or choose a gray prior"
        )
    return prior


def _tile(text: str):
    """--tile: 'auto', 'none' or a window side in pixels."""
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    try:
        return int(text)
    except ValueError:
        raise CLIError(f"--tile must be 'auto', 'none' or an int, got {text!r}") from None


def _is_volume_file(path: str) -> bool:
    """Whether ``path`` is a ``.npy`` volume (D, N, N) rather than an image: read as a volume
    only when it loads without pickles as a 3-D array of square slices wider than 4 pixels
    (an (H, W, 3) colour image has 3 columns per slice); anything else goes the image way."""
    import numpy as np

    if not path.endswith(".npy"):
        return False
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return arr.ndim == 3 and arr.shape[1] == arr.shape[2] > 4


def _solve_volume(args) -> int:
    """``restorekit solve volume.npy``: a (D, H, W) array in [0, 1] as the ground-truth volume,
    slice-wise CT (``--op-param views=… angle_range=…``), TV3D (``--prior tv``) or a 2D diffusion
    prior (``dds-3d``); writes the restored volume to ``--out`` (.npy)."""
    import numpy as np
    import torch

    from .io import atomic_write
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
    out = _output(Path(args.out).with_suffix(".npy"), args.overwrite, extensions=(".npy",))
    x = torch.as_tensor(arr, dtype=torch.float32, device=_device(args.device))[None, None].clamp(0, 1)
    gen = torch.Generator(device=x.device).manual_seed(args.seed)
    try:
        op = volume_ct(
            img_size=arr.shape[1],
            noise_sigma=args.noise_sigma,
            generator=gen,
            device=x.device,
            **_params(args.op_param),
        )
        prior = (
            TV3D(args.weight if args.weight is not None else 0.001)
            if args.prior == "tv"
            else build_prior(args.prior, None, device=x.device)
        )
        y = op(x)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None
    result = _run_solver(args, y, op, prior, x, gen)
    with atomic_write(out) as tmp:
        np.save(tmp, result.x[0, 0].cpu().numpy())
    assert result.metrics is not None  # solve() fills metrics when x_true is given
    print(
        f"{args.solver} + {args.prior}: PSNR {result.metrics.psnr.mean():.2f} dB, "
        f"{result.seconds:.1f} s; wrote {out}"
    )
    return 0


def _accepts_generator(name: str) -> bool:
    from .operators import BUILDERS

    return name in BUILDERS and "generator" in inspect.signature(BUILDERS[name].build).parameters


def _save_image(x, path: Path, info=None) -> None:
    """Write the result through :func:`restorekit.io.write_image` (atomic; the input's bit depth)."""
    from .io import write_image

    write_image(path, x, like=info, overwrite=True)


def _device(name: str):
    """--device as a torch.device that exists here, else a CLIError."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise CLIError(f"--device must be cpu, cuda, cuda:N or mps, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise CLIError(
            f"--device {name}: no CUDA GPU is visible to torch ({build}); use --device cpu"
            " (README: choosing a CPU-only or CUDA torch build)"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CLIError(f"--device {name}: MPS is not available here; use --device cpu")
    return device


def _output(path, overwrite: bool, extensions=(".png", ".tif", ".tiff", ".jpg", ".jpeg")) -> Path:
    """--out checked before any work: a file name with one of ``extensions`` (an image by
    default) in a writable folder, not an existing file unless --overwrite."""
    from .io import check_output_path

    try:
        return check_output_path(path, overwrite=overwrite, name="--out", extensions=extensions)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e).replace("overwrite=True (CLI: --overwrite)", "--overwrite")) from None


def _output_folder(path, overwrite: bool) -> Path:
    """The demo's --out folder: creatable and writable; holding no earlier outputs unless --overwrite."""
    import os

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise CLIError(f"--out {str(path)!r} is a file; give a folder for the figures")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CLIError(f"--out {str(path)!r}: cannot create the folder ({e.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CLIError(f"--out {str(path)!r}: the folder is not writable")
    if any(folder.iterdir()) and not overwrite:
        raise CLIError(
            f"--out {str(path)!r} is not empty; pass --overwrite to replace its files "
            "or choose another folder"
        )
    return folder


def _cmd_demo(args) -> int:
    from .demo import run_demo

    device = _device(args.device)
    run_demo(out=_output_folder(args.out, args.overwrite), quick=args.quick, device=str(device))
    return 0


class _Help(argparse.HelpFormatter):
    """--help in plain text: each option's default appended (unless None, False or empty, or
    already stated), and no line breaks inside hyphenated names."""

    def _get_help_string(self, action):
        text = action.help or ""
        shown = (
            not any(action.default is v for v in (None, False, argparse.SUPPRESS)) and action.default != []
        )
        if shown and "default" not in text:
            text += " (default: %(default)s)"
        return text

    def _split_lines(self, text, width):
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and defaults in --help."""

    def __init__(self, *a, **kw):
        kw.setdefault("formatter_class", _Help)
        super().__init__(*a, **kw)

    def error(self, message):
        raise CLIError(message)


def _number(kind, low=None, high=None, low_open=False):
    """An argparse type: a finite ``kind`` in [low, high] (or (low, high])."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        bad = (
            not math.isfinite(value)
            or (low is not None and (value <= low if low_open else value < low))
            or (high is not None and value > high)
        )
        if bad:
            lo = "-inf" if low is None else low
            hi = "inf" if high is None else high
            raise argparse.ArgumentTypeError(f"must be in {'(' if low_open else '['}{lo}, {hi}], got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _poisson_arguments(p: argparse.ArgumentParser, peak_help: str) -> None:
    p.add_argument(
        "--peak",
        type=_number(float, 0, low_open=True),
        default=None,
        help=f"Poisson (photon-limited) data: PEAK photons at white; {peak_help}",
    )
    p.add_argument(
        "--likelihood",
        default="gaussian",
        choices=("gaussian", "poisson"),
        help=f"data term: gaussian (every solver) or poisson (solvers {', '.join(POISSON_OPTIONS)})",
    )


def _task_arguments(p: argparse.ArgumentParser) -> None:
    """The operator, noise, prior and solver options shared by ``restore`` and ``batch``."""
    from .io import MEASURED_OPERATORS

    p.add_argument(
        "--operator", required=True, help=f"what produced the file: {', '.join(MEASURED_OPERATORS)}"
    )
    p.add_argument(
        "--kernel", help="blur: kernel file (.npy or image, normalised to sum 1) or a Gaussian std in pixels"
    )
    p.add_argument("--boundary", default="periodic", help="blur boundary: periodic or reflect")
    p.add_argument(
        "--mask",
        "--mri-mask",
        dest="mask",
        help="inpainting: mask image of observed pixels; mri: k-space sampling mask (.npy or image)",
    )
    p.add_argument(
        "--missing",
        type=int,
        default=0,
        help="which mask value marks missing/unsampled pixels: 0 (black, default) or 1 (white)",
    )
    p.add_argument("--factor", type=int, help="sr: upsampling factor, 2 or 4 (output = factor x input)")
    p.add_argument("--views", type=int, help="ct: number of views (default: the sinogram's columns)")
    p.add_argument("--angle-range", type=float, default=180.0, help="ct: angular range in degrees")
    p.add_argument("--img-size", type=int, help="ct: image side (default: from the detector rows)")
    p.add_argument(
        "--noise-sigma",
        type=float,
        default=None,
        help="noise std of the measurement in [0, 1] units (default: estimated)",
    )
    p.add_argument(
        "--normalize",
        action="store_true",
        help="map float images outside [0, 1] to [0, 1] by min-max instead of refusing them",
    )
    _poisson_arguments(p, "the file holds photon counts / PEAK (Gaussian read noise only with --noise-sigma)")
    p.add_argument("--prior", default="tv", help="tv or a shipped prior name (restorekit list)")
    p.add_argument("--weight", type=float, default=None, help="TV weight (prior tv only)")
    p.add_argument("--solver", default="chambolle-pock", help="solver name (restorekit list)")
    p.add_argument("--steps", type=_number(int, 1), default=None, help="iterations / diffusion steps")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="solver hyperparameter, e.g. lr=0.5 (repeatable)",
    )
    p.add_argument(
        "--bit-depth",
        type=int,
        default=None,
        help="output bit depth 8, 16 or 32 (float) (default: the input's)",
    )
    p.add_argument("--seed", type=int, default=0, help="mixed with each file name into its seed")
    p.add_argument("--device", default="cpu")


def _task(args):
    """The batch Task the ``restore``/``batch`` arguments describe."""
    from .batch import Task

    args.device = str(_device(args.device))  # a missing GPU is one line, before any work
    kernel, mask = args.kernel, args.mask
    if kernel is not None:
        try:
            kernel = float(kernel)
        except ValueError:
            kernel = os.path.abspath(kernel)  # workers may run elsewhere (Ray actors)
    given = {
        "kernel": kernel,
        "mask": mask and os.path.abspath(mask),
        "factor": args.factor,
        "views": args.views,
        "img_size": args.img_size,
    }
    operator_args = {k: v for k, v in given.items() if v is not None}
    operator_args.update(noise_sigma=args.noise_sigma, normalize=args.normalize)
    if args.peak is not None:
        operator_args["peak"] = args.peak
    if args.operator == "blur":
        operator_args["boundary"] = args.boundary
    if args.operator in ("inpainting", "mri"):
        operator_args["missing"] = args.missing
    if args.operator == "ct":
        operator_args["angle_range"] = args.angle_range
    params = _solver_params(args)
    return Task(
        operator=args.operator,
        prior=args.prior,
        solver=args.solver,
        operator_args=operator_args,
        weight=args.weight,
        params=params,
        device=args.device,
        bit_depth=args.bit_depth,
        seed=args.seed,
    )


def _cmd_restore(args) -> int:
    from .batch import default_output, restore_item
    from .io import check_output_path

    task = _task(args)
    try:
        out = check_output_path(
            args.out or default_output(args.measurement, args.operator),
            overwrite=args.overwrite,
            name="--out",
        )
        record = restore_item(task, args.measurement, out, progress=not args.quiet, overwrite=args.overwrite)
    except (ValueError, TypeError, FloatingPointError) as e:
        raise CLIError(str(e)) from None
    for note in record["notes"]:
        print(f"note: {note}")
    print(
        f"{args.solver} + {args.prior}: noise std {record['noise_sigma']:.4g}"
        f"{' (estimated)' if record['noise_estimated'] else ''}, {record['solve_seconds']:.1f} s, "
        f"{record['nfe']} network evaluations, seed {record['seed']}"
    )
    print(f"wrote {out}")
    return 0


def _cmd_batch(args) -> int:
    from . import batch

    task = _task(args)
    try:
        summary = batch.run(
            args.inputs,
            args.output_dir,
            task,
            engine=args.engine,
            workers=args.workers,
            address=args.address,
            reference=args.reference,
            out_ext=args.ext,
            progress=None if not args.quiet else False,
        )
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None
    print(
        f"{summary.done} restored, {summary.skipped} already done, {summary.failed} failed; "
        f"manifest {summary.manifest}"
    )
    for record in summary.records:
        if record["status"] == "failed":
            print(f"failed: {record['item']}: {record['error']}", file=sys.stderr)
    return min(summary.failed, 125)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="restorekit", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list operators, priors and solvers")
    s = sub.add_parser("solve", help="degrade a sample image (or file) and restore it")
    s.add_argument("image", help="sample image name (see restorekit.data.IMAGES) or a file path")
    s.add_argument("--operator", default="gaussian-blur", help="operator name (restorekit list)")
    s.add_argument(
        "--noise-sigma",
        type=_number(float, 0, 1),
        default=None,
        help="Gaussian noise std in [0, 1] units (default 0.01; 0 with --peak)",
    )
    _poisson_arguments(s, "the noise is Poisson, plus Gaussian with --noise-sigma")
    s.add_argument(
        "--op-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra operator argument, e.g. factor=2 (repeatable)",
    )
    s.add_argument("--prior", default="tv", help="tv or a shipped prior name (restorekit list)")
    s.add_argument(
        "--weight",
        type=_number(float, 0, low_open=True),
        default=None,
        help="TV weight λ (prior tv only; default: noise-scaled, λ = σ_y^1.5, 3·σ_y^1.5 for denoising)",
    )
    s.add_argument("--solver", default="chambolle-pock", help="solver name (restorekit list)")
    s.add_argument(
        "--steps",
        type=_number(int, 1),
        default=None,
        help="iterations / diffusion steps (default: the solver's)",
    )
    s.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="solver hyperparameter, e.g. lr=0.5 (repeatable)",
    )
    s.add_argument("--size", type=_number(int, 1), default=256, help="crop/resize the image to this side")
    s.add_argument(
        "--color",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force colour (--color) or gray luminance (--no-color); default: the image's own",
    )
    s.add_argument(
        "--per-channel", action="store_true", help="run a gray prior on each channel of a colour image"
    )
    s.add_argument(
        "--normalize",
        action="store_true",
        help="map a float image outside [0, 1] to [0, 1] by min-max (refused otherwise)",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the noise, mask and sampler")
    s.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    s.add_argument("--out", default="restored.png", help="output image (.png, .tif, .jpg)")
    s.add_argument("--overwrite", action="store_true", help="replace existing output files")
    s.add_argument(
        "--quiet", action="store_true", help="no progress bar (shown on a terminal for runs over 2 s)"
    )
    u = s.add_argument_group("uncertainty (samplers)")
    u.add_argument(
        "--samples",
        type=_number(int, 2),
        default=None,
        metavar="K",
        help="draw K posterior samples: write their mean, per-pixel intervals and a figure",
    )
    u.add_argument(
        "--coverage", type=_number(float, 0, 1, low_open=True), default=0.9, help="sample-quantile interval"
    )
    u.add_argument(
        "--calibrate",
        default=None,
        metavar="DIR",
        help="calibrate the intervals on the ground-truth images of DIR (a folder or a .txt list)",
    )
    u.add_argument("--epsilon", type=_number(float, 0, 1, low_open=True), default=0.1, help="target risk")
    u.add_argument("--delta", type=_number(float, 0, 1, low_open=True), default=0.1, help="1 − confidence")
    u.add_argument("--krcps", action="store_true", help="K-RCPS (per-pixel-group offsets) instead of RCPS")
    s.add_argument(
        "--tile",
        default="auto",
        help="network window side for large images: 'auto' (256 px above 512 px), 'none' or an int",
    )
    d = sub.add_parser("demo", help="restore held-out sample images with every prior; write a figure")
    d.add_argument("--out", default="restorekit-demo", help="output folder")
    d.add_argument(
        "--quick",
        action="store_true",
        help="64x64 images, few steps: about 2 min on 2 CPU cores instead of 13",
    )
    d.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    d.add_argument("--overwrite", action="store_true", help="replace the files of an earlier demo in --out")
    r = sub.add_parser(
        "restore", help="restore a measured file (the file is y; the operator comes from flags and files)"
    )
    r.add_argument("measurement", help="the measured image (.png/.jpg/.tif/.npy), sinogram or k-space (.npy)")
    _task_arguments(r)
    r.add_argument(
        "--out",
        default=None,
        help="output file (default: NAME_restored with the input's extension, .tif for ct/mri)",
    )
    r.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    b = sub.add_parser(
        "batch",
        help="restore every measured file of a folder (or a list file); exit status = number of failed items",
    )
    b.add_argument("inputs", help="a folder of measured files, or a .txt file listing one path per line")
    b.add_argument("output_dir", help="where outputs and manifest.jsonl go; a rerun resumes")
    _task_arguments(b)
    b.add_argument("--workers", type=int, default=1, help="parallel worker processes / Ray actors")
    b.add_argument("--engine", default="local", help="local (process pool) or ray")
    b.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    b.add_argument(
        "--reference",
        default=None,
        help="folder of ground-truth images with the same names, for PSNR/SSIM in the manifest",
    )
    b.add_argument("--ext", default=None, help="output extension, e.g. .png (default: the input's)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        handler = {
            "list": _cmd_list,
            "solve": _cmd_solve,
            "demo": _cmd_demo,
            "restore": _cmd_restore,
            "batch": _cmd_batch,
        }[args.command]
        return handler(args)
    except CLIError as e:
        print(f"restorekit: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("restorekit: interrupted; files being written were discarded", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
