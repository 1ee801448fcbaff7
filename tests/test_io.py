"""restorekit.io: files written by independent writers (tifffile, pypng, Pillow, numpy) read back
exactly; refusals name the argument; writes are atomic, also under SIGKILL."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from restorekit.io import ImageInfo, atomic_write, check_output_path, read_image, write_image


def _rng(seed=0):
    return np.random.default_rng(seed)


def _expected(arr, scale):
    x = torch.from_numpy(arr.astype(np.float64) / scale).float()
    return x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]


# --------------------------------------------------------------------------- reading


def test_16bit_gray_png_keeps_full_precision(tmp_path):
    import png

    arr = _rng().integers(0, 65536, size=(9, 11), dtype=np.uint16)
    with open(tmp_path / "g16.png", "wb") as f:
        png.Writer(11, 9, greyscale=True, bitdepth=16).write(f, arr.tolist())
    x, info = read_image(tmp_path / "g16.png")
    assert (info.dtype, info.bit_depth, info.channels, info.size) == ("uint16", 16, 1, (9, 11))
    assert torch.equal(x, _expected(arr, 65535))
    # the bug this fixes: 16-bit data clamped to all 1.0, or reduced to its top 8 bits
    assert x.min() < 0.01 and (x * 65535 - (x * 255).round() * 257).abs().max() > 1


def test_16bit_colour_png_keeps_full_precision(tmp_path):
    import png

    arr = _rng(1).integers(0, 65536, size=(7, 5, 3), dtype=np.uint16)
    with open(tmp_path / "c16.png", "wb") as f:
        png.Writer(5, 7, greyscale=False, bitdepth=16).write(f, arr.reshape(7, -1).tolist())
    x, info = read_image(tmp_path / "c16.png")
    assert (info.bit_depth, info.channels) == (16, 3)
    assert torch.equal(x, _expected(arr, 65535))


@pytest.mark.parametrize("dtype, scale, depth", [(np.uint8, 255, 8), (np.uint16, 65535, 16)])
def test_integer_tiff_scaled_by_dtype_maximum(tmp_path, dtype, scale, depth):
    import tifffile

    arr = _rng(2).integers(0, scale + 1, size=(6, 8, 3)).astype(dtype)
    tifffile.imwrite(tmp_path / "a.tif", arr, photometric="rgb")
    x, info = read_image(tmp_path / "a.tif")
    assert info.bit_depth == depth and info.value_range is None and info.notes == ()
    assert torch.equal(x, _expected(arr, scale))


def test_float_tiff_in_unit_range_is_exact_and_float64_available(tmp_path):
    import tifffile

    arr = _rng(3).random((8, 8))
    tifffile.imwrite(tmp_path / "f.tif", arr)  # float64 samples
    x, info = read_image(tmp_path / "f.tif", dtype=torch.float64)
    assert info.bit_depth == 32 and info.dtype == "float64"
    assert torch.equal(x, torch.from_numpy(arr)[None, None])


def test_float_outside_unit_range_refused_with_hint_or_normalised(tmp_path):
    import tifffile

    arr = (_rng(4).random((8, 8)) * 200 + 20).astype(np.float32)
    tifffile.imwrite(tmp_path / "f255.tif", arr)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*divide by 255.*normalize=True"):
        read_image(tmp_path / "f255.tif")
    x, info = read_image(tmp_path / "f255.tif", normalize=True)
    lo, hi = float(arr.min()), float(arr.max())
    assert info.value_range == (lo, hi) and "min-max" in info.notes[0]
    torch.testing.assert_close(x, _expected((arr.astype(np.float64) - lo) / (hi - lo), 1.0))
    # written back as float TIFF with like=info: the original units return
    out = write_image(tmp_path / "back.tif", x, like=info)
    np.testing.assert_allclose(tifffile.imread(out), arr, rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_refused(tmp_path, bad):
    arr = _rng(5).random((6, 6)).astype(np.float32)
    arr[2, 3] = bad
    np.save(tmp_path / "bad.npy", arr)
    with pytest.raises(ValueError, match="NaN or Inf"):
        read_image(tmp_path / "bad.npy", normalize=True)


def test_rgba_and_gray_alpha_drop_alpha_with_a_warning(tmp_path):
    from PIL import Image

    rgba = _rng(6).integers(0, 256, size=(5, 6, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    with pytest.warns(UserWarning, match="alpha channel dropped"):
        x, info = read_image(tmp_path / "rgba.png")
    assert info.channels == 3 and torch.equal(x, _expected(rgba[..., :3], 255))
    la = _rng(7).integers(0, 256, size=(5, 6, 2), dtype=np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    with pytest.warns(UserWarning, match="gray\\+alpha image read as gray"):
        x, info = read_image(tmp_path / "la.png")
    assert info.channels == 1 and x.shape == (1, 1, 5, 6)
    assert torch.equal(x, _expected(la[..., 0], 255))


def test_8bit_png_matches_pillow(tmp_path):
    from PIL import Image

    arr = _rng(8).integers(0, 256, size=(10, 7, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "c.png")
    x, info = read_image(tmp_path / "c.png")
    assert info.bit_depth == 8 and torch.equal(x, _expected(np.asarray(Image.open(tmp_path / "c.png")), 255))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.png", "does not exist"),
        (lambda d: d, "must end with one of"),
        (lambda d: (d / "x.txt").write_text("hi") and d / "x.txt", "must end with one of"),
        (lambda d: (d / "junk.png").write_bytes(b"not a png at all") and d / "junk.png", "not a readable"),
        (lambda d: np.save(d / "c.npy", np.ones((4, 4), np.complex64)) or d / "c.npy", "real numbers"),
        (lambda d: np.save(d / "s.npy", np.ones((2, 4, 4, 3), np.float32)) or d / "s.npy", "shaped"),
    ],
)
def test_bad_files_give_value_errors_naming_path(tmp_path, make, message):
    with pytest.raises(ValueError, match=message) as e:
        read_image(make(tmp_path))
    assert "path" in str(e.value)


# --------------------------------------------------------------------------- writing


@pytest.mark.parametrize(
    "ext, depth, dtype",
    [
        (".png", 8, np.uint8),
        (".png", 16, np.uint16),
        (".tif", 16, np.uint16),
        (".tif", 32, np.float32),
        (".npy", 16, np.uint16),
        (".npy", 32, np.float32),
    ],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_write_then_read_round_trip_at_each_depth(tmp_path, ext, depth, dtype, channels):
    x = torch.rand(1, channels, 9, 10, generator=torch.Generator().manual_seed(depth + channels))
    p = write_image(tmp_path / f"o{ext}", x, bit_depth=depth)
    y, info = read_image(p)
    assert info.dtype == np.dtype(dtype).name and info.channels == channels
    levels = {8: 255, 16: 65535}.get(depth)
    expected = x if levels is None else (x.double() * levels).round().float() / levels
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-7)
    assert (y - x).abs().max() > 0 or levels is None  # quantisation really happened


def test_default_bit_depth_follows_like_when_the_format_holds_it(tmp_path):
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    info16 = ImageInfo("in.tif", "uint16", 16, 1, (8, 8))
    assert read_image(write_image(tmp_path / "a.png", x, like=info16))[1].bit_depth == 16
    assert read_image(write_image(tmp_path / "b.png", x))[1].bit_depth == 8
    assert read_image(write_image(tmp_path / "c.jpg", x, like=info16))[1].bit_depth == 8
    assert read_image(write_image(tmp_path / "d.npy", x))[1].bit_depth == 32


@pytest.mark.parametrize(
    "target, kwargs, message",
    [
        ("noext", {}, "must end with one of"),
        ("out.gif", {}, "must end with one of"),
        ("sub/", {}, "directory"),
        ("existing.png", {}, "exists; pass overwrite=True"),
        ("o.jpg", {"bit_depth": 16}, "bit_depth must be one of"),
        ("o.png", {"bit_depth": 32}, "bit_depth must be one of"),
    ],
)
def test_write_refusals_name_the_argument(tmp_path, target, kwargs, message):
    (tmp_path / "sub").mkdir()
    (tmp_path / "existing.png").write_bytes(b"old")
    with pytest.raises(ValueError, match=message):
        write_image(
            str(tmp_path / target) + ("/" if target.endswith("/") else ""), torch.zeros(1, 1, 4, 4), **kwargs
        )
    assert (tmp_path / "existing.png").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.png", "sub"]  # nothing left


def test_write_refuses_a_directory_path_and_nan_and_unwritable_folder(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        write_image(tmp_path, torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="NaN or Inf"):
        write_image(tmp_path / "n.png", torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="cannot create the folder"):
        (tmp_path / "file").write_text("x")
        write_image(tmp_path / "file" / "o.png", torch.zeros(1, 1, 4, 4))
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="not writable"):
            write_image(ro / "o.png", torch.zeros(1, 1, 4, 4))
    assert not (tmp_path / "n.png").exists()


def test_check_output_path_is_a_cheap_early_check(tmp_path):
    assert check_output_path(tmp_path / "a" / "b.tif") == tmp_path / "a" / "b.tif"
    assert (tmp_path / "a").is_dir() and not (tmp_path / "a" / "b.tif").exists()


def test_atomic_write_removes_its_temporary_on_error_and_keeps_old_file(tmp_path):
    target = tmp_path / "f.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.png"]
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png"
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["f.png"]
    assert (target.stat().st_mode & 0o777) != 0o600  # not mkstemp's private mode


_WRITER = """
import sys, torch
from restorekit.io import write_image
x = torch.rand(1, 3, 384, 384, generator=torch.Generator().manual_seed(0))
i = 0
while True:
    write_image(sys.argv[1], (x + i / 100) % 1, bit_depth=16, overwrite=True)
    if i == 0:
        print("ready", flush=True)  # one complete file exists: every kill now hits a rewrite
    i += 1
"""


@pytest.mark.parametrize(
    "delay", [0.5, pytest.param(0.2, marks=pytest.mark.slow), pytest.param(1.1, marks=pytest.mark.slow)]
)
def test_sigkill_during_writes_leaves_only_complete_files(tmp_path, delay):
    target = tmp_path / "big.png"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(target)],
        stdout=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    x, info = read_image(target)  # a complete, decodable 16-bit PNG
    assert x.shape == (1, 3, 384, 384) and info.bit_depth == 16
    assert all(p.name == "big.png" or p.name.startswith(".big.") for p in tmp_path.iterdir())


def test_normalize_refuses_a_constant_image_and_notes_clipping(tmp_path):
    np.save(tmp_path / "flat.npy", np.full((4, 4), 7.0, np.float32))
    with pytest.raises(ValueError, match="constant image"):
        read_image(tmp_path / "flat.npy", normalize=True)
    arr = np.linspace(-5e-4, 1 + 5e-4, 16, dtype=np.float32).reshape(4, 4)  # rounding of [0, 1]
    np.save(tmp_path / "edge.npy", arr)
    x, info = read_image(tmp_path / "edge.npy")
    assert x.min() == 0 and x.max() == 1 and "clipped to [0, 1]" in info.notes[0]
