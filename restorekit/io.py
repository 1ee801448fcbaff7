"""Reading and writing images and measurements, with lossless, stated conversions.

    x, info = read_image("scan.tif")              # (1, C, H, W) float32 in [0, 1], ImageInfo
    write_image("restored.tif", x, like=info)     # same bit depth as the input, written atomically

Files are read and written through maintained libraries: tifffile (TIFF), pypng (16-bit PNG,
which Pillow reduces to 8 bits on colour images), imageio/Pillow (8-bit PNG, JPEG, BMP) and
numpy (``.npy``, never pickles). The conversions to a float image in [0, 1] are:

- ``uint8`` / ``uint16`` (and 1-bit) data are divided by the dtype's maximum (255, 65535):
  exact, and undone exactly by writing with the same bit depth;
- float (and signed or wider integer) data are taken as values: they must lie in [0, 1] (within
  1e-3, then clipped) or be normalised on request, ``normalize=True``: x' = (x − min)/(max − min),
  recorded in :attr:`ImageInfo.value_range` so that :func:`write_image` can map a result back;
- NaN or Inf pixels are refused;
- an alpha channel is dropped with a warning (RGBA → RGB, gray+alpha → gray); colour stays
  colour and gray stays gray.

Every file this package writes goes through :func:`atomic_write` (a temporary file in the same
folder, then ``os.replace``), so a reader never sees a half-written file: an interrupted write
leaves the old file (or none) and at most a hidden ``.NAME.*.tmp.EXT`` file behind.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

#: What :func:`read_image` accepts, by file extension (lower case).
READ_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")
#: The bit depths :func:`write_image` can write, by extension (32 means float32).
WRITE_BIT_DEPTHS = {
    ".png": (8, 16),
    ".jpg": (8,),
    ".jpeg": (8,),
    ".bmp": (8,),
    ".tif": (8, 16, 32),
    ".tiff": (8, 16, 32),
    ".npy": (8, 16, 32),
}
_SCALED = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}
_RANGE_TOL = 1e-3


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`read_image` found in a file and did to it.

    ``dtype``: the file's sample type (``"uint8"``, ``"uint16"``, ``"float32"``...);
    ``bit_depth``: the depth that writes it back without loss (8, 16, or 32 for float data);
    ``channels``: channels of the returned tensor (1 gray, 3 colour);
    ``value_range``: (min, max) of a min-max normalisation, None when none was done;
    ``notes``: every conversion that is not a plain dtype scaling, in words.
    """

    path: str
    dtype: str
    bit_depth: int
    channels: int
    size: tuple[int, int]
    value_range: tuple[float, float] | None = None
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------- atomic writes


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


@contextmanager
def atomic_write(path):
    """Context manager yielding a temporary path next to ``path``; on a clean exit the file
    written there is flushed to disk and renamed onto ``path`` (``os.replace``, atomic on POSIX
    and Windows), on an exception it is deleted.

        with atomic_write("out.png") as tmp:
            fig.savefig(tmp)

    The temporary name ends with the same extension, so format-sniffing writers work.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def stale_temporaries(folder) -> list[Path]:
    """Temporary files :func:`atomic_write` left in ``folder`` when its process was killed
    (hidden ``.NAME.*.tmpEXT`` files); safe to delete once no writer runs there."""
    return sorted(p for p in Path(folder).glob(".*.tmp.*") if p.is_file() and p.name.count(".") >= 3)


def check_output_path(
    path, *, overwrite: bool = False, name: str = "path", extensions=tuple(WRITE_BIT_DEPTHS)
) -> Path:
    """``path`` as a Path if a file can be written there, else a ValueError naming ``name``.

    Refused: a name without one of ``extensions``, a directory (or a name ending in a
    separator), an existing file unless ``overwrite``, and a folder that cannot be created or
    written. Missing parent folders are created. Call it before long work, not after.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or Path), got {type(path).__name__}")
    text = os.fspath(path)
    p = Path(text)
    if text.endswith((os.sep, "/")) or p.is_dir():
        raise ValueError(f"{name} must be a file name, got the directory {text!r}")
    if p.suffix.lower() not in extensions:
        raise ValueError(f"{name} must end with one of {', '.join(extensions)}, got {text!r}")
    if p.exists() and not overwrite:
        raise ValueError(f"{name} {text!r} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    parent = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"{name} {text!r}: cannot create the folder {str(parent)!r} ({e.strerror})"
        ) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {text!r}: the folder {str(parent)!r} is not writable")
    return p


# --------------------------------------------------------------------------- reading


def _check_input_path(path, name: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or Path), got {type(path).__name__}")
    p = Path(path)
    if p.suffix.lower() not in READ_EXTENSIONS:
        raise ValueError(f"{name} must end with one of {', '.join(READ_EXTENSIONS)}, got {str(p)!r}")
    if not p.is_file():
        raise ValueError(f"{name} {str(p)!r} does not exist or is not a file")
    return p


def _load_array(p: Path) -> np.ndarray:
    """The file's samples as stored, (H, W) or (H, W, C)."""
    ext = p.suffix.lower()
    if ext == ".npy":
        return np.load(p, allow_pickle=False)
    if ext in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(p) as tif:
            series = tif.series[0]
            arr, axes = series.asarray(), series.axes
        keep = [i for i, a in enumerate(axes) if a in "YXS" or arr.shape[i] > 1]
        arr, axes = (
            arr.squeeze(tuple(i for i in range(arr.ndim) if i not in keep)),
            "".join(axes[i] for i in keep),
        )
        if set(axes) - set("YXS"):
            raise ValueError(
                f"path {str(p)!r}: only single-image TIFF files are supported, got axes "
                f"{axes!r} with shape {arr.shape}"
            )
        return np.moveaxis(arr, axes.index("S"), -1) if "S" in axes else arr
    if ext == ".png":
        import png

        width, height, rows, meta = png.Reader(filename=str(p)).read()  # raw samples, no sBIT rescale
        if meta["bitdepth"] == 16:  # Pillow reads 16-bit colour PNGs as 8 bits: decode with pypng
            arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
            return arr.reshape(height, width, meta["planes"])
    import imageio.v3 as iio

    return iio.imread(p)


def _drop_alpha(arr: np.ndarray, notes: list[str], path: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        return arr[..., 0]
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        alpha = arr[..., -1]
        opaque = bool((alpha == alpha.max()).all()) and alpha.dtype != np.bool_
        kind = "gray+alpha image read as gray" if arr.shape[2] == 2 else "RGBA image read as RGB"
        note = f"{kind}: alpha channel dropped ({'fully opaque' if opaque else 'not opaque: transparent pixels keep their colour values'})"
        notes.append(note)
        warnings.warn(f"{path}: {note}", stacklevel=3)
        arr = arr[..., :-1]
        return arr[..., 0] if arr.shape[2] == 1 else arr
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3):
        return arr
    raise ValueError(
        f"path {path!r}: expected an image shaped (H, W) or (H, W, C) with C in 1..4, got shape {arr.shape}"
    )


def _to_unit(arr: np.ndarray, normalize: bool, notes: list[str], path: str):
    """(float64 array in [0, 1], bit depth, value_range) from the stored samples."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float64), 8, None
    if arr.dtype in _SCALED:
        depth = _SCALED[arr.dtype]
        return arr.astype(np.float64) / (2**depth - 1), depth, None
    if np.iscomplexobj(arr) or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"path {path!r}: image data must be real numbers, got dtype {arr.dtype}")
    values = arr.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"path {path!r} contains {int((~np.isfinite(values)).sum())} NaN or Inf pixels")
    lo, hi = float(values.min()), float(values.max())
    if lo >= -_RANGE_TOL and hi <= 1 + _RANGE_TOL:
        if lo < 0 or hi > 1:
            notes.append(f"values in [{lo:.6g}, {hi:.6g}] clipped to [0, 1]")
        return values.clip(0, 1), 32, None
    if not normalize:
        hint = " (it looks like 0…255 data: divide by 255)" if hi <= 255 and lo >= 0 else ""
        raise ValueError(
            f"path {path!r}: {arr.dtype} values must lie in [0, 1], got range "
            f"[{lo:.6g}, {hi:.6g}]{hint}; pass normalize=True (CLI: --normalize) to "
            "map min…max to 0…1"
        )
    if hi == lo:
        raise ValueError(
            f"path {path!r}: every pixel is {lo:.6g}; a constant image cannot be min-max normalised"
        )
    notes.append(f"{arr.dtype} values normalised from [{lo:.6g}, {hi:.6g}] to [0, 1] (min-max)")
    return (values - lo) / (hi - lo), 32, (lo, hi)


def read_image(path, *, normalize: bool = False, dtype=torch.float32) -> tuple[torch.Tensor, ImageInfo]:
    """Read an image file as a (1, C, H, W) tensor in [0, 1] (C = 1 gray, 3 colour) and its
    :class:`ImageInfo`.

    Parameters
    ----------
    path : a ``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff``, ``.bmp`` or ``.npy`` file
        (``.npy``: an (H, W) or (H, W, C) array).
    normalize : map float data outside [0, 1] to [0, 1] by min-max (stated in ``info.notes``)
        instead of refusing it. Data already in [0, 1] and uint8/uint16 data are never rescaled.
    dtype : ``torch.float32`` (exact for 8- and 16-bit data) or ``torch.float64``.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> x = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8)
    >>> folder = Path(tempfile.mkdtemp())
    >>> path = write_image(folder / "ramp.png", x, bit_depth=16)
    >>> y, info = read_image(path)
    >>> info.bit_depth, y.shape
    (16, torch.Size([1, 1, 8, 8]))
    >>> bool((y - x).abs().max() <= 0.5 / 65535)     # 16-bit rounding only
    True
    """
    p = _check_input_path(path)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a bool, got {type(normalize).__name__}")
    try:
        arr = _load_array(p)
    except ValueError as e:
        if str(e).startswith("path "):
            raise
        raise ValueError(f"path {str(p)!r} is not a readable {p.suffix} image ({e})") from None
    except Exception as e:  # a corrupt or truncated file: each library raises its own type
        why = str(e) if str(e).startswith(type(e).__name__) else f"{type(e).__name__}: {e}"
        raise ValueError(f"path {str(p)!r} is not a readable {p.suffix} image ({why})") from None
    notes: list[str] = []
    arr = _drop_alpha(np.asarray(arr), notes, str(p))
    values, depth, value_range = _to_unit(arr, normalize, notes, str(p))
    x = torch.from_numpy(np.ascontiguousarray(values)).to(dtype)
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None].contiguous()
    info = ImageInfo(
        str(p),
        str(arr.dtype),
        depth,
        x.shape[1],
        cast("tuple[int, int]", tuple(x.shape[-2:])),
        value_range,
        tuple(notes),
    )
    return x, info


# --------------------------------------------------------------------------- writing


def _image_array(x, name: str = "x") -> np.ndarray:
    """x (1, C, H, W) or (C, H, W) with C in {1, 3}, finite, as a float64 (H, W[, C]) array."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"{name} must hold one image (batch size 1), got shape {tuple(x.shape)}")
        x = x[0]
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(
            f"{name} must be shaped (1, C, H, W) or (C, H, W) with C in (1, 3), got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor in [0, 1], got {x.dtype}")
    arr = x.detach().cpu().double().numpy()
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def _quantise(arr: np.ndarray, depth: int, value_range) -> np.ndarray:
    arr = arr.clip(0, 1)
    if depth == 32:
        lo, hi = value_range if value_range is not None else (0.0, 1.0)
        return (lo + arr * (hi - lo)).astype(np.float32)
    return np.rint(arr * (2**depth - 1)).astype(np.uint8 if depth == 8 else np.uint16)


def _save(tmp: Path, arr: np.ndarray, ext: str, quality: int) -> None:
    if ext == ".npy":
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)
    elif ext in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(tmp, arr, photometric="rgb" if arr.ndim == 3 else "minisblack")
    elif ext == ".png" and arr.dtype == np.uint16:
        import png

        planes = 1 if arr.ndim == 2 else arr.shape[2]
        with open(tmp, "wb") as f:
            png.Writer(arr.shape[1], arr.shape[0], greyscale=planes == 1, bitdepth=16).write(
                f, arr.reshape(arr.shape[0], -1).tolist()
            )
    else:
        import imageio.v3 as iio

        options: dict[str, Any] = {"quality": quality} if ext in (".jpg", ".jpeg") else {}
        iio.imwrite(tmp, arr, **options)


def write_image(
    path,
    x: torch.Tensor,
    *,
    bit_depth: int | None = None,
    like: ImageInfo | None = None,
    overwrite: bool = False,
    quality: int = 95,
) -> Path:
    """Write a (1, C, H, W) image in [0, 1] to ``path`` atomically; returns the path.

    Values are clipped to [0, 1] and, for 8/16 bits, rounded to the nearest level
    round(x·(2^b − 1)); 32 means float32 samples (TIFF, ``.npy``), mapped back to the input's
    units when ``like`` records a min-max normalisation.

    Parameters
    ----------
    bit_depth : 8, 16 or 32 where the format has it (:data:`WRITE_BIT_DEPTHS`). Default: the
        bit depth of ``like`` (the input's :class:`ImageInfo`) when the format can hold it,
        else 8 (32 for ``.npy``).
    like : the :class:`ImageInfo` of the input, to keep its bit depth and units.
    overwrite : replace an existing file (refused otherwise).
    quality : JPEG quality, 1…100.
    """
    p = check_output_path(path, overwrite=overwrite)
    ext = p.suffix.lower()
    if like is not None and not isinstance(like, ImageInfo):
        raise TypeError(f"like must be an ImageInfo (from read_image) or None, got {type(like).__name__}")
    allowed = WRITE_BIT_DEPTHS[ext]
    if bit_depth is None:
        wanted = like.bit_depth if like is not None else (32 if ext == ".npy" else 8)
        bit_depth = wanted if wanted in allowed else max(d for d in allowed if d <= max(wanted, 8))
    elif bit_depth not in allowed or isinstance(bit_depth, bool):
        raise ValueError(f"bit_depth must be one of {allowed} for {ext} files, got {bit_depth!r}")
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an int in [1, 100], got {quality!r}")
    arr = _quantise(_image_array(x), bit_depth, like.value_range if like is not None else None)
    with atomic_write(p) as tmp:
        _save(tmp, arr, ext, quality)
    return p


# --------------------------------------------------------------------------- operator files


def _small_array(path, name: str) -> np.ndarray:
    """A 2D array from an image file (scaled to [0, 1], colour only if its channels agree) or
    a ``.npy`` file (values as stored)."""
    p = _check_input_path(path, name)
    if p.suffix.lower() == ".npy":
        arr = np.load(p, allow_pickle=False)
        if np.iscomplexobj(arr) or arr.dtype.kind not in "fiub":
            raise ValueError(f"{name} {str(p)!r} must hold real numbers, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    else:
        x, _ = read_image(p, normalize=True)
        arr = x[0].double().numpy()
        if arr.shape[0] == 3 and not (arr == arr[:1]).all():
            raise ValueError(f"{name} {str(p)!r} must be a gray image, got colour")
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{name} {str(p)!r} must be 2D (H, W), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} {str(p)!r} contains NaN or Inf values")
    return arr


def read_kernel(path, *, dtype=torch.float32) -> tuple[torch.Tensor, tuple[str, ...]]:
    """A blur kernel (PSF) from a ``.npy`` array or an image file, normalised to sum 1.

    Returns (kernel (h, w), notes). The kernel must be non-negative with a positive sum; an
    image file (which never sums to 1) or an array whose sum is off by more than 1 % is divided
    by its sum, and the notes say so.
    """
    arr = _small_array(path, "kernel")
    if (arr < 0).any():
        raise ValueError(
            f"kernel {str(path)!r} has negative values (min {arr.min():.3g}); a blur "
            "kernel must be non-negative"
        )
    total = float(arr.sum())
    if total <= 0:
        raise ValueError(f"kernel {str(path)!r} is all zeros")
    notes = () if abs(total - 1) <= 1e-2 else (f"kernel divided by its sum {total:.6g} to sum to 1",)
    return torch.from_numpy(arr / total).to(dtype), notes


def read_mask(path, *, missing: float = 0) -> tuple[torch.Tensor, tuple[str, ...]]:
    """An inpainting / k-space sampling mask from an image or ``.npy`` file, as (H, W) float32
    with 1 = observed, 0 = missing.

    The file must be binary: two levels at most, 0 and the maximum (1 for ``.npy`` and
    float files, 255 / 65535 for integer images, read as 1). ``missing`` says which one marks
    the missing pixels: 0 (default, black = missing) or 1 (white = missing).
    """
    if missing not in (0, 1) or isinstance(missing, bool):
        raise ValueError(f"missing must be 0 (black/0 = missing) or 1 (white/1 = missing), got {missing!r}")
    arr = _small_array(path, "mask")
    levels = np.unique(arr)
    if not set(levels.tolist()) <= {0.0, 1.0}:
        raise ValueError(
            f"mask {str(path)!r} must be binary (0 and 1, or 0 and 255 in an 8-bit "
            f"image), got {len(levels)} levels in [{levels[0]:.3g}, {levels[-1]:.3g}]; "
            "save masks as PNG, not JPEG"
        )
    observed = arr != missing
    if not observed.any():
        raise ValueError(f"mask {str(path)!r} marks every pixel missing (missing={missing})")
    notes = (f"mask: {int((~observed).sum())} of {observed.size} pixels missing (value {missing} = missing)",)
    return torch.from_numpy(observed.astype(np.float32)), notes


# --------------------------------------------------------------------------- noise level


def estimate_noise_sigma(y: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    r"""Noise std of an image-like measurement by the median absolute deviation of its finest
    diagonal Haar wavelet coefficients (Donoho & Johnstone, "Ideal spatial adaptation by wavelet
    shrinkage", Biometrika 1994):

        d = (y[2i, 2j] − y[2i, 2j+1] − y[2i+1, 2j] + y[2i+1, 2j+1]) / 2,   σ̂ = median|d| / 0.6745,

    over all channels. d is N(0, σ²) for white noise and ≈ 0 on smooth image content, so σ̂
    is robust to edges. With ``mask`` (1 = observed, broadcast like y) only 2×2 blocks that
    are fully observed count.
    """
    h, w = (y.shape[-2] // 2) * 2, (y.shape[-1] // 2) * 2
    t = y[..., :h, :w].double()
    d = (t[..., 0::2, 0::2] - t[..., 0::2, 1::2] - t[..., 1::2, 0::2] + t[..., 1::2, 1::2]) / 2
    if mask is not None:
        m = mask.expand_as(y)[..., :h, :w].double()
        full = (m[..., 0::2, 0::2] * m[..., 0::2, 1::2] * m[..., 1::2, 0::2] * m[..., 1::2, 1::2]) > 0
        d = d[full]
    if d.numel() == 0:
        raise ValueError("cannot estimate the noise level: no fully observed 2x2 block; give noise_sigma")
    return float(d.abs().flatten().median() / 0.6745)


# --------------------------------------------------------------------------- measurements

#: Operators :func:`read_measurement` builds around a measured file.
MEASURED_OPERATORS = ("denoising", "blur", "inpainting", "sr", "ct", "mri")


@dataclass(frozen=True)
class Measurement:
    """A measured y, the operator that produced it, and how both were read.

    ``noise_sigma`` is the Gaussian noise std of the operator (given, or estimated when
    ``noise_estimated``); ``image_size`` / ``channels`` are those of the image to restore;
    ``info`` is the :class:`ImageInfo` of an image-domain measurement (None for a sinogram or
    k-space); ``notes`` lists every conversion and estimate, in words.
    """

    y: torch.Tensor
    operator: object
    noise_sigma: float
    noise_estimated: bool
    image_size: tuple[int, int]
    channels: int
    info: ImageInfo | None
    notes: tuple[str, ...]


def _ct_size(n_det: int) -> int:
    """The image side N whose sinogram has n_det = ⌈√2·N⌉ detector cells."""
    for n in range(max(1, int(n_det / 2**0.5) - 2), int(n_det / 2**0.5) + 3):
        if int(np.ceil(2**0.5 * n - 1e-9)) == n_det:
            return n
    raise ValueError(
        f"a sinogram with {n_det} detector rows matches no square image (rows must be "
        "ceil(sqrt(2)·N), as skimage.transform.radon(circle=False) gives)"
    )


def _read_npy(path, name: str, *, complex_ok: bool = False) -> np.ndarray:
    p = Path(path) if isinstance(path, (str, os.PathLike)) else None
    if p is None or p.suffix.lower() != ".npy" or not p.is_file():
        raise ValueError(f"{name} must be an existing .npy file, got {path!r}")
    arr = np.load(p, allow_pickle=False)
    if arr.ndim != 2 or (np.iscomplexobj(arr) and not complex_ok) or arr.dtype.kind not in "fiuc":
        raise ValueError(
            f"{name} {str(p)!r} must be a 2D {'complex' if complex_ok else 'real'} array, "
            f"got shape {arr.shape} and dtype {arr.dtype}"
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} {str(p)!r} contains NaN or Inf values")
    return arr


def read_measurement(
    path,
    operator: str,
    *,
    noise_sigma: float | None = None,
    kernel=None,
    boundary: str = "periodic",
    mask=None,
    missing: float = 0,
    factor: int | None = None,
    views: int | None = None,
    angle_range: float = 180.0,
    img_size: int | None = None,
    normalize: bool = False,
    peak: float | None = None,
    device=None,
) -> Measurement:
    r"""Read a measured file as y and build the operator that maps the unknown image to it.

    ``operator`` and the file it reads:

    - ``"denoising"``: an image, y = x + n.
    - ``"blur"``: an image, y = k ∗ x + n; ``kernel`` is a ``.npy``/image file (see
      :func:`read_kernel`), a 2D tensor, or a number (Gaussian std in pixels);
      ``boundary`` ``"periodic"`` (FFT) or ``"reflect"``.
    - ``"inpainting"``: an image, y = m ⊙ x + n; ``mask`` a file (see :func:`read_mask`, with
      ``missing`` naming the value of missing pixels) or a binary tensor, 1 = observed.
    - ``"sr"``: an image of size (h, w), y = S(h ∗ x) + n with the bicubic filter of
      :func:`~restorekit.operators.super_resolution`; the result has size factor·(h, w).
    - ``"ct"``: a ``.npy`` sinogram (detectors, views) of an N×N image in [0, 1], laid out as
      ``skimage.transform.radon(x, theta=k·angle_range/views, circle=False)`` gives (unit pixel
      spacing, angles in degrees; the same numbers when the detector count ⌈√2·N⌉ is odd, a
      half-pixel shift of the rotation centre otherwise, where deepinv rotates about the
      geometric centre and skimage about pixel n/2); divided here by ‖R‖₂ to match
      :func:`~restorekit.operators.ct`. ``views`` defaults to the number of columns, N to the
      side that gives the number of rows (or ``img_size``).
    - ``"mri"``: a ``.npy`` complex k-space (H, W), centred orthonormal DFT
      ``fftshift(fft2(ifftshift(x), norm="ortho"))`` of a real image, single coil; ``mask`` the
      sampling mask (a file or tensor, 1 = sampled); unsampled entries are ignored.

    ``noise_sigma``: the Gaussian noise std of y in the units above; when None it is estimated
    by :func:`estimate_noise_sigma` (on observed pixels for inpainting; on k-space, from the
    median absolute deviation of the sampled real and imaginary parts in the outer half of
    both frequency axes, where natural images have little energy) and the notes say so.

    ``peak``: photon-limited data, y = g·P(A x / g) with g = 1/``peak`` (``peak`` photons make a
    white pixel; y in the image units above, i.e. counts divided by ``peak``). The operator
    then carries Poisson noise of gain g, plus Gaussian noise ``noise_sigma`` when it is given
    (read noise; not estimated: 0 when None), which solvers with a Poisson data term read
    (:mod:`restorekit.operators.likelihood`).
    """
    if operator not in MEASURED_OPERATORS:
        raise ValueError(f"operator must be one of {', '.join(MEASURED_OPERATORS)}, got {operator!r}")
    given = {"kernel": kernel, "mask": mask, "factor": factor, "views": views, "img_size": img_size}
    allowed = {
        "blur": {"kernel"},
        "inpainting": {"mask"},
        "sr": {"factor"},
        "ct": {"views", "img_size"},
        "mri": {"mask"},
    }.get(operator, set())
    extra = sorted(k for k, v in given.items() if v is not None and k not in allowed)
    if extra:
        raise ValueError(
            f"{', '.join(extra)} {'does' if len(extra) == 1 else 'do'} not apply to operator "
            f"{operator!r}{'; it takes ' + ', '.join(sorted(allowed)) if allowed else ''}"
        )
    from .operators._common import as_device

    args = dict(given, boundary=boundary, missing=missing, angle_range=angle_range, device=as_device(device))
    info, notes = None, []
    data: np.ndarray | torch.Tensor
    if operator in ("ct", "mri"):
        data = _read_npy(path, "path", complex_ok=operator == "mri")
    else:
        data, info = read_image(path, normalize=normalize)
        notes = list(info.notes)
    # 1. the measurement and a builder of its operator for a given noise level
    p = _PROBLEMS[operator](data, args, notes)
    y = p.y.to(args["device"])
    # 2. the noise level, given or estimated (Poisson data: the Gaussian part defaults to 0)
    if peak is not None:
        from .checks import real_number

        peak = real_number(peak, "peak", low=0.0, low_open=True)
        notes.append(f"Poisson noise: {peak:g} photons at white (gain {1 / peak:.4g})")
        noise_sigma = 0.0 if noise_sigma is None else noise_sigma
    estimated = noise_sigma is None
    if noise_sigma is None:
        noise_sigma = _estimate(y, p.observed, operator)
        how = (
            "sampled high-frequency k-space"
            if operator == "mri"
            else "the finest diagonal Haar wavelet coefficients"
        )
        notes.append(
            f"noise std estimated from the data: {noise_sigma:.4g} (median absolute deviation of {how})"
        )
    noise_sigma = min(noise_sigma, 1.0)
    built = p.build(noise_sigma)
    if peak is not None:
        _with_noise(built, noise_sigma, args["device"], poisson=1 / peak)
    return Measurement(
        y,
        built,
        noise_sigma,
        estimated,
        cast("tuple[int, int]", tuple(p.size)),
        p.channels,
        info,
        tuple(notes),
    )


@dataclass
class _Problem:
    """What each operator's reader returns: y (CPU), ``build(noise_sigma) -> operator``, the size
    and channels of the image to restore, and the observed-entries mask (for the noise estimate)."""

    y: torch.Tensor
    build: Callable[[float], Any]
    size: tuple[int, int]
    channels: int
    observed: torch.Tensor | None = None


def _denoising(y, a, notes) -> _Problem:
    from .operators import denoising

    return _Problem(y, lambda s: denoising(noise_sigma=s, device=a["device"]), y.shape[-2:], y.shape[1])


def _blur(y, a, notes) -> _Problem:
    from .operators import blur, gaussian_kernel

    kernel = a["kernel"]
    if kernel is None:
        raise ValueError(
            "kernel is required for operator 'blur': a .npy/image file, a 2D tensor "
            "or a Gaussian std in pixels"
        )
    if isinstance(kernel, (str, os.PathLike)):
        kernel, knotes = read_kernel(kernel)
        notes += knotes
    elif not isinstance(kernel, torch.Tensor):
        kernel = gaussian_kernel(kernel)
    if a["boundary"] not in ("periodic", "reflect"):
        raise ValueError(f"boundary must be 'periodic' or 'reflect', got {a['boundary']!r}")
    size = tuple(y.shape[-2:])
    return _Problem(
        y,
        lambda s: blur(
            kernel, circular=a["boundary"] == "periodic", img_size=size, noise_sigma=s, device=a["device"]
        ),
        size,
        y.shape[1],
    )


def _user_mask(a, notes, size, channels, what: str) -> torch.Tensor:
    from .operators.inpainting import check_mask

    mask = a["mask"]
    if mask is None:
        raise ValueError(
            f"mask is required for operator {what!r} (a file or a binary tensor, "
            f"1 = {'sampled' if what == 'mri' else 'observed'})"
        )
    if isinstance(mask, (str, os.PathLike)):
        mask, mnotes = read_mask(mask, missing=a["missing"])
        notes += [n.replace("missing", "unsampled") if what == "mri" else n for n in mnotes]
    return check_mask(mask, size, channels)


def _inpainting(y, a, notes) -> _Problem:
    from .operators import inpainting

    size, channels = tuple(y.shape[-2:]), y.shape[1]
    m = _user_mask(a, notes, size, channels, "inpainting")
    y = y * m  # missing pixels carry no data whatever the file holds there
    return _Problem(
        y,
        lambda s: inpainting(m, img_size=size, channels=channels, noise_sigma=s, device=a["device"]),
        size,
        channels,
        m,
    )


def _sr(y, a, notes) -> _Problem:
    from .operators import super_resolution

    factor = 2 if a["factor"] is None else a["factor"]
    size = (y.shape[-2] * factor, y.shape[-1] * factor) if factor in (2, 4) else tuple(y.shape[-2:])
    return _Problem(
        y,
        lambda s: super_resolution(
            factor, img_size=size, channels=y.shape[1], noise_sigma=s, device=a["device"]
        ),
        size,
        y.shape[1],
    )


def _ct(arr, a, notes) -> _Problem:
    from .operators import ct

    n = _ct_size(arr.shape[0]) if a["img_size"] is None else a["img_size"]
    views = arr.shape[1] if a["views"] is None else a["views"]
    if views != arr.shape[1]:
        raise ValueError(f"views={views} but the sinogram has {arr.shape[1]} columns (views)")
    op = ct(img_size=n, views=views, angle_range=a["angle_range"], device=a["device"])
    expected = tuple(op.A(torch.zeros(1, 1, n, n, device=a["device"])).shape[-2:])
    if expected != arr.shape:
        raise ValueError(f"img_size={n} gives sinograms of shape {expected}, the file has {arr.shape}")
    norm = float(op.operator_norm)
    notes.append(
        f"sinogram divided by ||R||_2 = {norm:.6g} (N = {n}, {views} views over {a['angle_range']:g} degrees)"
    )
    y = torch.from_numpy(arr.astype(np.float64) / norm).float()[None, None]
    return _Problem(y, lambda s: _with_noise(op, s, a["device"]), (n, n), 1)


def _mri(arr, a, notes) -> _Problem:
    size = tuple(arr.shape)
    m = _user_mask(a, notes, size, 1, "mri")[0]
    k = torch.from_numpy(arr.astype(np.complex128))
    y = (torch.stack([k.real, k.imag]) * m).float()[None]
    return _Problem(y, lambda s: _mri_operator(m, size, s, a["device"]), size, 1, m)


_PROBLEMS = {
    "denoising": _denoising,
    "blur": _blur,
    "inpainting": _inpainting,
    "sr": _sr,
    "ct": _ct,
    "mri": _mri,
}


def _estimate(y, observed, operator) -> float:
    if operator != "mri":
        return estimate_noise_sigma(y, None if observed is None else observed.to(y.device))
    h, w = y.shape[-2:]
    outer = torch.zeros(h, w, dtype=torch.bool, device=y.device)
    outer[: h // 4] = outer[h - h // 4 :] = True
    outer[:, w // 4 : w - w // 4] = False
    values = y[0][:, outer & (observed.to(y.device) > 0)]
    if values.numel() < 8:
        raise ValueError(
            "cannot estimate the k-space noise level: too few sampled high frequencies; give noise_sigma"
        )
    return float(values.abs().flatten().median() / 0.6745)


def _with_noise(operator, sigma, device, poisson=None):
    from .operators._common import noise_model

    operator.noise_model = noise_model(sigma, poisson, None, device)
    return operator


def _mri_operator(mask, size, sigma, device):
    from deepinv.physics import MRI

    from .operators import RealMRI
    from .operators._common import noise_model

    physics = MRI(mask=mask.to(device), img_size=size, device=device)
    return RealMRI(physics, noise_model(sigma, None, None, device), device)


__all__ = [
    "ImageInfo",
    "Measurement",
    "read_image",
    "write_image",
    "atomic_write",
    "check_output_path",
    "read_kernel",
    "read_mask",
    "stale_temporaries",
    "read_measurement",
    "estimate_noise_sigma",
    "READ_EXTENSIONS",
    "WRITE_BIT_DEPTHS",
    "MEASURED_OPERATORS",
]
