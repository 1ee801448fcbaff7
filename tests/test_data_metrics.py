import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from restorekit import data
from restorekit.metrics import psnr, ssim


def test_held_out_has_photos_and_a_phantom_and_is_excluded_from_training():
    assert len(data.HELD_OUT) >= 4
    assert "shepp_logan_phantom" in data.HELD_OUT
    assert not set(data.HELD_OUT) & set(data.TRAINING)
    with pytest.raises(ValueError, match="HELD_OUT"):
        data.random_patches(2, 16, images=("camera",))


@pytest.mark.parametrize("name", ["camera", "astronaut", "shepp_logan_phantom", "lfw_subset"])
def test_load_image_range_shape_and_values(name):
    x = data.load_image(name)
    assert x.dtype == torch.float32 and x.ndim == 4 and x.shape[0] == 1
    assert 0 <= x.min() and x.max() <= 1
    import skimage.data

    raw = skimage.data.lfw_subset()[0] if name == "lfw_subset" else getattr(skimage.data, name)()
    raw = raw / 255.0 if raw.dtype == np.uint8 else raw
    ref = raw[..., None] if raw.ndim == 2 else raw
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), ref, atol=1e-6)


def test_load_image_size_color_and_device():
    x = data.load_image("astronaut", size=(48, 64), color=False)
    assert x.shape == (1, 1, 48, 64)
    g = data.load_image("camera", size=32, color=True)
    assert g.shape == (1, 3, 32, 32) and torch.equal(g[:, 0], g[:, 1])
    with pytest.raises(ValueError, match="unknown image"):
        data.load_image("not_an_image")
    with pytest.raises(ValueError, match="size"):
        data.load_image("camera", size=0)


def test_synthetic_generators_are_seeded_and_in_range():
    a = data.dead_leaves(32, 3, generator=torch.Generator().manual_seed(1))
    b = data.dead_leaves(32, 3, generator=torch.Generator().manual_seed(1))
    c = data.dead_leaves(32, 3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (1, 3, 32, 32) and 0 <= a.min() and a.max() <= 1
    # dead leaves are piecewise smooth: many distinct levels, mostly small gradients
    assert a.unique().numel() > 20
    p = data.ellipse_phantom(32, generator=torch.Generator().manual_seed(3))
    assert p.shape == (1, 1, 32, 32) and p.max() > 0.5 and (p == 0).any()
    patches = data.random_patches(8, 24, channels=1, generator=torch.Generator().manual_seed(0))
    assert patches.shape == (8, 1, 24, 24) and patches.std(dim=(1, 2, 3)).min() >= 0


def test_psnr_and_ssim_match_skimage():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 40, 33, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    for b in range(2):
        xn, yn = x[b].permute(1, 2, 0).numpy(), y[b].permute(1, 2, 0).numpy()
        assert psnr(y, x)[b].item() == pytest.approx(
            peak_signal_noise_ratio(xn, yn, data_range=1.0), abs=1e-9
        )
        ref = structural_similarity(xn, yn, data_range=1.0, channel_axis=2)
        assert ssim(y, x)[b].item() == pytest.approx(ref, abs=1e-9)
        ref_g = structural_similarity(
            xn,
            yn,
            data_range=1.0,
            channel_axis=2,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        assert ssim(y, x, gaussian=True)[b].item() == pytest.approx(ref_g, abs=1e-6)


def test_grid_crops_are_the_tiles_of_the_resized_images_in_row_order():
    from restorekit import data

    tiles = data.grid_crops(["moon", "brick"], 4, crop=16, size=48)
    assert tiles.shape == (8, 1, 16, 16)
    brick = data.load_image("brick", size=48, color=False)
    assert torch.equal(tiles[4 + 3], brick[0, :, 16:32, 0:16])  # brick's 4th tile: row 1, column 0
    assert not torch.equal(tiles[0], tiles[1])
    with pytest.raises(ValueError, match="per_image"):
        data.grid_crops(["moon"], 10, crop=16, size=48)
