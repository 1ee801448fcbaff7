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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

#: What :func:`read_image` accepts, by file extension (lower case).
READ_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")
#: The bit depths :func:`write_image` can write, by extension (32 means float32).
WRITE_BIT_DEPTHS = {".png": (8, 16), ".jpg": (8,), ".jpeg": (8,), ".bmp": (8,),
                    ".tif": (8, 16, 32), ".tiff": (8, 16, 32), ".npy": (8, 16, 32)}
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


def check_output_path(path, *, overwrite: bool = False, name: str = "path",
                      extensions=tuple(WRITE_BIT_DEPTHS)) -> Path:
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
        raise ValueError(f"{name} {text!r}: cannot create the folder {str(parent)!r} ({e.strerror})") from None
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
        arr, axes = arr.squeeze(tuple(i for i in range(arr.ndim) if i not in keep)), \
            "".join(axes[i] for i in keep)
        if set(axes) - set("YXS"):
            raise ValueError(f"path {str(p)!r}: only single-image TIFF files are supported, got axes "
                             f"{axes!r} with shape {arr.shape}")
        return np.moveaxis(arr, axes.index("S"), -1) if "S" in axes else arr
    if ext == ".png":
        import png

        width, height, rows, meta = png.Reader(filename=str(p)).asDirect()
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
    if arr.ndim == 3 and arr.shape[2] == 3 or arr.ndim == 2:
        return arr
    raise ValueError(f"path {path!r}: expected an image shaped (H, W) or (H, W, C) with C in 1..4, "
                     f"got shape {arr.shape}")


def _to_unit(arr: np.ndarray, normalize: bool, notes: list[str], path: str):
    """(float64 array in [0, 1], bit depth, value_range) from the stored samples."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float64), 8, None
    if arr.dtype in _SCALED:
        depth = _SCALED[arr.dtype]
        return arr.astype(np.float64) / (2 ** depth - 1), depth, None
    if np.iscomplexobj(arr) or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"path {path!r}: image data must be real numbers, got dtype {arr.dtype}")
    values = arr.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"path {path!r} contains {int((~np.isfinite(values)).sum())} NaN or Inf pixels")
    lo, hi = float(values.min()), float(values.max())
    if lo >= -_RANGE_TOL and hi <= 1 + _RANGE_TOL:
        return values.clip(0, 1), 32, None
    if not normalize:
        hint = " (it looks like 0…255 data: divide by 255)" if hi <= 255 and lo >= 0 else ""
        raise ValueError(f"path {path!r}: {arr.dtype} values must lie in [0, 1], got range "
                         f"[{lo:.6g}, {hi:.6g}]{hint}; pass normalize=True (CLI: --normalize) to "
                         "map min…max to 0…1")
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
        raise ValueError(f"path {str(p)!r} is not a readable {p.suffix} image "
                         f"({type(e).__name__}: {e})") from None
    notes: list[str] = []
    arr = _drop_alpha(np.asarray(arr), notes, str(p))
    values, depth, value_range = _to_unit(arr, normalize, notes, str(p))
    x = torch.from_numpy(np.ascontiguousarray(values)).to(dtype)
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None].contiguous()
    info = ImageInfo(str(p), str(arr.dtype), depth, x.shape[1], tuple(x.shape[-2:]), value_range,
                     tuple(notes))
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
        raise ValueError(f"{name} must be shaped (1, C, H, W) or (C, H, W) with C in (1, 3), "
                         f"got {tuple(x.shape)}")
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
    return np.rint(arr * (2 ** depth - 1)).astype(np.uint8 if depth == 8 else np.uint16)


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
                f, arr.reshape(arr.shape[0], -1).tolist())
    else:
        import imageio.v3 as iio

        iio.imwrite(tmp, arr, **({"quality": quality} if ext in (".jpg", ".jpeg") else {}))


def write_image(path, x: torch.Tensor, *, bit_depth: int | None = None, like: ImageInfo | None = None,
                overwrite: bool = False, quality: int = 95) -> Path:
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


__all__ = ["ImageInfo", "read_image", "write_image", "atomic_write", "check_output_path",
           "READ_EXTENSIONS", "WRITE_BIT_DEPTHS"]
