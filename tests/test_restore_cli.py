"""Measured inputs: kernel/mask files, the noise estimate, read_measurement for every operator
(measurements made by independent forward models: numpy FFT, skimage radon), and the
``restorekit restore`` command."""

import numpy as np
import pytest
import torch

from restorekit import data, io, operators, priors, solve
from restorekit.cli import main
from restorekit.metrics import psnr


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- kernel and mask files


def test_read_kernel_normalises_image_and_npy_kernels(tmp_path):
    k = operators.gaussian_kernel(1.5)
    io.write_image(tmp_path / "k.png", (k / k.max())[None, None], bit_depth=16)
    from_png, notes = io.read_kernel(tmp_path / "k.png")
    assert abs(from_png.sum().item() - 1) < 1e-6 and "divided by its sum" in notes[0]
    torch.testing.assert_close(from_png, k, atol=2e-5, rtol=0)  # 16-bit quantisation only
    np.save(tmp_path / "k2.npy", 2 * k.numpy())
    from_npy, notes = io.read_kernel(tmp_path / "k2.npy")
    torch.testing.assert_close(from_npy, k) and notes
    np.save(tmp_path / "ok.npy", k.numpy())
    assert io.read_kernel(tmp_path / "ok.npy")[1] == ()


@pytest.mark.parametrize(
    "arr, message",
    [(-np.eye(3), "negative"), (np.zeros((3, 3)), "all zeros"), (np.ones((2, 3, 3)), "must be 2D")],
)
def test_read_kernel_refuses_non_kernels(tmp_path, arr, message):
    np.save(tmp_path / "k.npy", arr)
    with pytest.raises(ValueError, match=message) as e:
        io.read_kernel(tmp_path / "k.npy")
    assert "kernel" in str(e.value)


@pytest.mark.parametrize("missing", [0, 1])
def test_read_mask_states_which_value_is_missing(tmp_path, missing):
    from PIL import Image

    observed = torch.rand(12, 10, generator=_gen()) < 0.6
    stored = observed if missing == 0 else ~observed
    Image.fromarray(stored.numpy().astype(np.uint8) * 255).save(tmp_path / "m.png")
    mask, notes = io.read_mask(tmp_path / "m.png", missing=missing)
    assert torch.equal(mask, observed.float())
    assert f"value {missing} = missing" in notes[0] and str(int((~observed).sum())) in notes[0]


def test_read_mask_refuses_grey_levels_and_all_missing(tmp_path):
    from PIL import Image

    Image.fromarray(np.array([[0, 128], [255, 255]], np.uint8)).save(tmp_path / "grey.png")
    with pytest.raises(ValueError, match="must be binary"):
        io.read_mask(tmp_path / "grey.png")
    np.save(tmp_path / "none.npy", np.zeros((4, 4)))
    with pytest.raises(ValueError, match="every pixel missing"):
        io.read_mask(tmp_path / "none.npy")
    with pytest.raises(ValueError, match="missing must be 0"):
        io.read_mask(tmp_path / "none.npy", missing=255)


# --------------------------------------------------------------------------- noise estimate


@pytest.mark.parametrize("name, sigma", [("moon", 0.01), ("coins", 0.05), ("camera", 0.03)])
def test_noise_estimate_agrees_with_truth_and_skimage(name, sigma):
    """Within 10 % of skimage's estimate (db2 wavelets, the same MAD rule) and within 20 % of the
    true σ where noise dominates the finest texture (textured images bias both upwards)."""
    from skimage.restoration import estimate_sigma

    x = data.load_image(name, size=128)
    y = x + sigma * torch.randn(x.shape, generator=_gen(1))
    ours = io.estimate_noise_sigma(y)
    theirs = estimate_sigma(y[0, 0].double().numpy())
    assert abs(ours - sigma) < 0.2 * sigma and abs(ours - theirs) < 0.1 * theirs


def test_noise_estimate_with_mask_ignores_missing_pixels():
    x = data.load_image("moon", size=128)
    y = x + 0.03 * torch.randn(x.shape, generator=_gen(2))
    mask = (torch.rand(128, 128, generator=_gen(3)) < 0.8).float()
    y = y * mask
    assert abs(io.estimate_noise_sigma(y, mask) - 0.03) < 0.006
    assert io.estimate_noise_sigma(y) > 0.06  # the zeros of missing pixels look like noise


# --------------------------------------------------------------------------- read_measurement


def _tv(m, weight, x):
    return solve(m.y, m.operator, priors.TV(weight=weight), solver="chambolle-pock", x_true=x)


def test_blur_measurement_from_files_restores_better_than_the_input(tmp_path):
    x = data.load_image("camera", size=48)
    k = operators.gaussian_kernel(1.5)
    y = operators.blur(k, noise_sigma=0.01, generator=_gen())(x)
    io.write_image(tmp_path / "y.tif", y.clamp(0, 1), bit_depth=16)
    np.save(tmp_path / "k.npy", k.numpy())
    m = io.read_measurement(tmp_path / "y.tif", "blur", kernel=str(tmp_path / "k.npy"))
    assert m.noise_estimated and abs(m.noise_sigma - 0.01) < 0.005 and m.info.bit_depth == 16
    result = _tv(m, 0.005, x)
    assert result.metrics.psnr.item() > psnr(m.y, x).item() + 1.5


def test_inpainting_measurement_uses_the_mask_file(tmp_path):
    from PIL import Image

    x = data.load_image("camera", size=48)
    missing = torch.rand(48, 48, generator=_gen(4)) < 0.4
    y = x.clone()
    y[..., missing] = 1.0  # the file holds white where pixels are missing
    io.write_image(tmp_path / "y.png", y)
    Image.fromarray(missing.numpy().astype(np.uint8) * 255).save(tmp_path / "m.png")
    m = io.read_measurement(
        tmp_path / "y.png", "inpainting", mask=str(tmp_path / "m.png"), missing=1, noise_sigma=0.0
    )
    assert (m.y[..., missing] == 0).all()  # missing pixels carry no data
    result = _tv(m, 0.01, x)
    assert result.metrics.psnr.item() > psnr(y, x).item() + 10


def test_sr_measurement_gives_factor_times_larger_output(tmp_path):
    x = data.load_image("camera", size=48)
    y = operators.super_resolution(2, img_size=48, noise_sigma=0.0)(x)
    io.write_image(tmp_path / "lr.png", y.clamp(0, 1), bit_depth=16)
    m = io.read_measurement(tmp_path / "lr.png", "sr", factor=2, noise_sigma=0.005)
    assert m.image_size == (48, 48) and not m.noise_estimated
    result = _tv(m, 0.002, x)
    upsampled = torch.nn.functional.interpolate(m.y, scale_factor=2, mode="bicubic").clamp(0, 1)
    assert result.x.shape == x.shape and result.metrics.psnr.item() > psnr(upsampled, x).item()


def test_ct_sinogram_from_skimage_radon(tmp_path):
    from skimage.transform import radon

    x = data.ellipse_phantom(64, generator=_gen(3))  # 91 detectors: skimage's centre is ours
    sino = radon(x[0, 0].double().numpy(), theta=np.arange(15) * 12.0, circle=False)
    np.save(tmp_path / "s.npy", sino)
    m = io.read_measurement(tmp_path / "s.npy", "ct", noise_sigma=0.001)
    assert m.image_size == (64, 64) and "N = 64, 15 views" in m.notes[0]
    # the file's forward model is ours up to the stated scaling
    torch.testing.assert_close(m.operator.A(x), m.y, atol=1e-4, rtol=1e-3)
    result = solve(m.y, m.operator, priors.TV(weight=0.002), solver="chambolle-pock", x_true=x, max_iter=100)
    assert result.metrics.psnr.item() > psnr(m.operator.A_dagger(m.y).clamp(0, 1), x).item() + 2  # FBP


def test_restore_command_on_kspace_writes_float_tiff(tmp_path, capsys):
    x = data.load_image("camera", size=32)
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x[0, 0].double().numpy()), norm="ortho"))
    mask = operators.cartesian_mask(32, acceleration=2, generator=_gen(6)).numpy()
    np.save(tmp_path / "k.npy", (k * mask).astype(np.complex64))
    io.write_image(tmp_path / "mask.png", torch.from_numpy(mask)[None, None])
    assert (
        main(
            [
                "restore",
                str(tmp_path / "k.npy"),
                "--operator",
                "mri",
                "--mri-mask",
                str(tmp_path / "mask.png"),
                "--noise-sigma",
                "0.001",
                "--steps",
                "100",
                "--quiet",
            ]
        )
        == 0
    )
    restored, info = io.read_image(tmp_path / "k_restored.tif")
    assert info.bit_depth == 32 and "unsampled" in capsys.readouterr().out
    zero_filled = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k * mask), norm="ortho")).real
    zero_filled = torch.from_numpy(zero_filled).float().clamp(0, 1)[None, None]
    assert psnr(restored, x).item() > psnr(zero_filled, x).item()


def test_mri_kspace_from_numpy_fft(tmp_path):
    x = data.load_image("camera", size=48)
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x[0, 0].double().numpy()), norm="ortho"))
    mask = operators.cartesian_mask(48, acceleration=3, center_fraction=0.1, generator=_gen(5)).numpy()
    np.save(tmp_path / "k.npy", (k * mask).astype(np.complex64))
    np.save(tmp_path / "mask.npy", mask)
    m = io.read_measurement(tmp_path / "k.npy", "mri", mask=str(tmp_path / "mask.npy"), noise_sigma=0.001)
    torch.testing.assert_close(m.operator.A(x), m.y, atol=1e-5, rtol=1e-4)
    result = _tv(m, 0.002, x)
    assert result.metrics.psnr.item() > psnr(m.operator.A_dagger(m.y).clamp(0, 1), x).item() + 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"operator": "warp"}, "operator must be one of"),
        ({"operator": "blur"}, "kernel is required"),
        ({"operator": "denoising", "kernel": 2.0}, "kernel does not apply"),
        ({"operator": "inpainting"}, "mask is required"),
        ({"operator": "sr", "factor": 3}, "factor must be one of"),
        ({"operator": "ct"}, "must be an existing .npy"),
        ({"operator": "denoising", "noise_sigma": -0.1}, "noise_sigma"),
    ],
)
def test_read_measurement_refusals(tmp_path, kwargs, message):
    io.write_image(tmp_path / "y.png", torch.rand(1, 1, 8, 8, generator=_gen()))
    with pytest.raises(ValueError, match=message):
        io.read_measurement(tmp_path / "y.png", **kwargs)


# --------------------------------------------------------------------------- the CLI


def _blurred_file(tmp_path, bit_depth=16):
    x = data.load_image("camera", size=48)
    k = operators.gaussian_kernel(1.5)
    y = operators.blur(k, noise_sigma=0.01, generator=_gen())(x)
    np.save(tmp_path / "k.npy", k.numpy())
    return x, io.write_image(tmp_path / "y.png", y.clamp(0, 1), bit_depth=bit_depth)


def test_restore_command_keeps_bit_depth_and_improves_psnr(tmp_path, capsys):
    x, y_path = _blurred_file(tmp_path)
    out = tmp_path / "out.png"
    assert (
        main(
            [
                "restore",
                str(y_path),
                "--operator",
                "blur",
                "--kernel",
                str(tmp_path / "k.npy"),
                "--weight",
                "0.005",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "(estimated)" in text and "noise std estimated from the data" in text
    restored, info = io.read_image(out)
    assert info.bit_depth == 16
    y, _ = io.read_image(y_path)
    assert psnr(restored, x).item() > psnr(y, x).item() + 1.5
    # the same through Python gives the same bits (seed from the file name)
    from restorekit.batch import Task, restore_item

    task = Task(
        operator="blur",
        operator_args={"kernel": str(tmp_path / "k.npy"), "noise_sigma": None},
        prior="tv",
        weight=0.005,
        solver="chambolle-pock",
    )
    restore_item(task, y_path, tmp_path / "again.png")
    assert torch.equal(io.read_image(tmp_path / "again.png")[0], restored)


def test_restore_command_bit_depth_flag_and_default_output(tmp_path, capsys):
    _, y_path = _blurred_file(tmp_path)
    assert (
        main(
            [
                "restore",
                str(y_path),
                "--operator",
                "blur",
                "--kernel",
                "1.5",
                "--noise-sigma",
                "0.01",
                "--bit-depth",
                "8",
                "--quiet",
            ]
        )
        == 0
    )
    out = tmp_path / "y_restored.png"
    assert io.read_image(out)[1].bit_depth == 8 and "(estimated)" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--operator", "blur"], "kernel is required"),
        (["--operator", "blur", "--kernel", "missing.npy"], "does not exist"),
        (["--operator", "denoising", "--out", "noext"], "--out must end with one of"),
        (["--operator", "denoising", "--out", "EXISTING"], "exists; pass overwrite"),
        (["--operator", "denoising", "--mask", "m.png"], "does not apply"),
        (["--operator", "denoising", "--solver", "magic"], "unknown solver"),
    ],
)
def test_restore_command_errors_are_one_line(tmp_path, capsys, extra, message):
    _, y_path = _blurred_file(tmp_path, bit_depth=8)
    extra = [str(y_path) if e == "EXISTING" else e for e in extra]
    assert main(["restore", str(y_path), "--quiet"] + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("restorekit: error:") and message in err and "\n" not in err
