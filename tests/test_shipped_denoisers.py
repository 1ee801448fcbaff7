"""Shipped denoisers: registry, cards and licences, scico conversion, and denoising quality.

Quality is measured on HELD_OUT images (never used for training); the thresholds sit below
the values in the model cards (which ``training/convert_scico_dncnn.py`` and
``training/train_denoiser.py`` measure on ``held_out(128)``), so a broken conversion or a
regression fails while seed-level noise does not.
"""

from __future__ import annotations

import functools

import msgpack
import numpy as np
import pytest
import torch

from restorekit.data import held_out, load_image
from restorekit.evaluation import add_noise as noisy
from restorekit.evaluation import tv_denoise, tv_oracle_weight
from restorekit.metrics import psnr
from restorekit.priors import registry
from restorekit.priors.dncnn import BiasFreeDenoiser, MultiLevelDnCNN
from restorekit.priors.flax_dncnn import convert, read_flax_msgpack

DENOISERS = [n for n, d in registry._shipped().items() if registry._meta(d)["kind"] in ("dncnn", "denoiser")]
SCICO = [n for n, d in registry._shipped().items() if registry._meta(d)["kind"] == "dncnn"]
#: minimum PSNR gain (dB) over the noisy input at σ = 0.1 on the 128² camera crop, noise seed 0
#: (measured when the weights were shipped: dncnn 10.26, dncnn-6 10.15, dncnn-blind 10.32,
#: denoiser-gray 9.29)
MIN_GAIN = {"dncnn": 9.5, "dncnn-6": 9.4, "dncnn-blind": 9.5, "denoiser-gray": 8.5}


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(n)


def tv_best(y, x, weights=(0.04, 0.06, 0.08, 0.12, 0.16)):
    """Mean PSNR of skimage's Chambolle TV denoiser at the best of a few weights (oracle choice)."""
    return tv_oracle_weight(x, functools.partial(tv_denoise, y), weights, clip=False).psnr.mean().item()


# ------------------------------------------------------------------------ registry
def test_registry_lists_the_shipped_denoisers():
    names = registry.available()
    assert {"dncnn", "dncnn-6", "dncnn-blind", "denoiser-gray"} <= set(names)
    assert all(isinstance(d, str) and len(d) > 10 for d in names.values())
    with pytest.raises(ValueError, match="available: .*dncnn"):
        registry.load("no-such-prior")
    with pytest.raises(ValueError, match="available"):
        registry.load_network("no-such-prior")


def test_load_returns_a_denoiser_prior():
    denoisers = pytest.importorskip("restorekit.priors.denoisers")
    x = load_image("camera", size=64)
    for name in DENOISERS:
        prior = registry.load(name)
        assert isinstance(prior, denoisers.DenoiserPrior)
        y = noisy(x, 0.1)
        torch.testing.assert_close(prior.denoise(y, 0.1), registry.load_network(name)(y, 0.1))


def test_load_dispatches_on_kind(tmp_path, monkeypatch):
    """prior.json's kind picks the loader: a tiny diffusers UNet + scheduler loads as a
    DiffusionPrior; an unknown kind is refused by name."""
    from diffusers import DDPMScheduler, UNet2DModel

    from restorekit.priors.diffusion import DiffusionPrior

    d = tmp_path / "tiny-diffusion"
    UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8, 8),
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    ).save_pretrained(d)
    DDPMScheduler(num_train_timesteps=50).save_pretrained(d)
    (d / "prior.json").write_text('{"kind": "diffusion", "description": "a tiny test model"}')
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "prior.json").write_text('{"kind": "mystery", "description": "?"}')
    monkeypatch.setattr(registry, "WEIGHTS", tmp_path)
    assert registry.available() == {"odd": "?", "tiny-diffusion": "a tiny test model"}
    prior = registry.load("tiny-diffusion")
    assert isinstance(prior, DiffusionPrior) and prior.num_train_timesteps == 50
    with pytest.raises(ValueError, match="unknown kind 'mystery'"):
        registry.load("odd")
    with pytest.raises(ValueError, match="not a plain denoiser"):
        registry.load_network("tiny-diffusion")


@pytest.mark.parametrize("name", DENOISERS)
def test_card_and_licence(name):
    d = registry._shipped()[name]
    card = (d / "MODEL_CARD.md").read_text()
    assert "held_out" in card and "PSNR" in card and "| 0.1 |" in card
    assert not list(d.glob("*.pt")) and not list(d.glob("*.pth")) and not list(d.glob("*.bin"))
    if name in SCICO:
        licence = (d / "LICENSE").read_text()
        assert "BSD 3-Clause" in licence and "Los Alamos National Laboratory" in licence
        assert "scico" in card and "LICENSE" in card


# ------------------------------------------------------------------------ quality
@pytest.mark.parametrize("name", DENOISERS)
def test_denoising_gain_on_held_out_crop(name):
    x = load_image("camera", size=128)
    y = noisy(x, 0.1)
    with torch.no_grad():
        out = registry.load_network(name)(y, 0.1)
    gain = (psnr(out, x) - psnr(y, x)).item()
    assert gain >= MIN_GAIN[name], f"{name}: gain {gain:.2f} dB < {MIN_GAIN[name]} dB"


def test_default_dncnn_is_the_noise_input_model_with_clipped_input():
    """``dncnn`` reads σ (a second input channel) and clips its input to [0, 1] as scico trained
    it; at σ = 0.2 the clipped network beats the same weights unclipped by several dB."""
    net = registry.load_network("dncnn")
    assert net.in_channels == 2 and net.clip_input
    x = load_image("camera", size=64)
    y = noisy(x, 0.2)
    with torch.no_grad():
        clipped = psnr(net(y, 0.2), x).item()
        torch.testing.assert_close(net(y, 0.2), net(y.clamp(0, 1), 0.2))
        net.clip_input = False
        raw = psnr(net(y, 0.2), x).item()
    assert clipped >= raw + 2.0, f"clipped {clipped:.2f} dB vs unclipped {raw:.2f} dB"


def test_noise_input_dncnn_beats_the_blind_bank_at_low_noise():
    """At σ = 0.02, below the blind bank's lowest level (0.06), the noise-input model is far
    better (held-out 128²: 38.9 vs 33.8 dB)."""
    x = held_out(64)
    y = noisy(x, 0.02)
    with torch.no_grad():
        n = psnr(registry.load_network("dncnn")(y, 0.02), x).mean().item()
        b = psnr(registry.load_network("dncnn-blind")(y, 0.02), x).mean().item()
    assert n >= b + 3.0, f"dncnn {n:.2f} dB vs dncnn-blind {b:.2f} dB at σ = 0.02"


def test_dncnn_beats_tv_by_a_db():
    x = held_out(96)
    y = noisy(x, 0.1)
    with torch.no_grad():
        d = psnr(registry.load_network("dncnn")(y, 0.1), x).mean().item()
    tv = tv_best(y, x)
    assert d >= tv + 1.0, f"DnCNN {d:.2f} dB vs TV {tv:.2f} dB"


@pytest.mark.slow
@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.2])
@pytest.mark.parametrize("name", DENOISERS)
def test_quality_bar_against_tv(name, sigma):
    """Every shipped denoiser beats oracle-weight TV on all HELD_OUT images (128²)."""
    x = held_out(128)
    y = noisy(x, sigma)
    with torch.no_grad():
        d = psnr(registry.load_network(name)(y, sigma), x).mean().item()
    margin = 1.0 if name in SCICO else 0.3
    assert d >= tv_best(y, x, weights=(0.02, 0.04, 0.06, 0.08, 0.12, 0.16, 0.24)) + margin


# ------------------------------------------------------------------------ conversion
def _flax_array(a: np.ndarray) -> msgpack.ExtType:
    """What flax.serialization writes for an ndarray: ext 1 holding [shape, dtype name, bytes]."""
    return msgpack.ExtType(1, msgpack.packb([list(a.shape), a.dtype.name, a.tobytes()]))


def _random_tree(rng, depth, features, channels):
    def kern(i, o):
        return (rng.standard_normal((3, 3, i, o)) / np.sqrt(9 * i)).astype(np.float32)

    def vec(lo, hi):
        return rng.uniform(lo, hi, features).astype(np.float32)

    params = {
        "conv_start": {"kernel": kern(channels, features)},
        "conv_end": {"kernel": kern(features, channels)},
    }
    stats = {}
    for k in range(depth - 2):
        params[f"ConvBNBlock_{k}"] = {
            "Conv_0": {"kernel": kern(features, features)},
            "BatchNorm_0": {"scale": vec(0.5, 1.5), "bias": vec(-0.2, 0.2)},
        }
        stats[f"ConvBNBlock_{k}"] = {"BatchNorm_0": {"mean": vec(-0.3, 0.3), "var": vec(0.2, 2.0)}}
    return {"params": params, "batch_stats": stats}


def _pack(tree):
    def enc(t):
        return {k: enc(v) for k, v in t.items()} if isinstance(t, dict) else _flax_array(t)

    return msgpack.packb(enc(tree))


def _numpy_dncnn(tree, x):
    """scico's DnCNNNet written directly in numpy on an (H, W, C) image: correlation with HWIO
    kernels on a circularly padded input, BN with running statistics, ReLU, residual output."""

    def conv(h, k):
        hp = np.pad(h, ((1, 1), (1, 1), (0, 0)), mode="wrap")
        H, W = h.shape[:2]
        return sum(hp[i : i + H, j : j + W] @ np.float64(k[i, j]) for i in range(3) for j in range(3))

    p, s = tree["params"], tree["batch_stats"]
    h = np.maximum(conv(x, p["conv_start"]["kernel"]), 0)
    for k in range(len(s)):
        bn, st = p[f"ConvBNBlock_{k}"]["BatchNorm_0"], s[f"ConvBNBlock_{k}"]["BatchNorm_0"]
        z = conv(h, p[f"ConvBNBlock_{k}"]["Conv_0"]["kernel"])
        mean, var, scale, bias = (np.float64(v) for v in (st["mean"], st["var"], bn["scale"], bn["bias"]))
        h = np.maximum((z - mean) / np.sqrt(var + 1e-5) * scale + bias, 0)
    return x - conv(h, p["conv_end"]["kernel"])


@pytest.mark.parametrize("channels", [1, 2])
def test_conversion_matches_numpy_reference(channels):
    rng = np.random.default_rng(channels)
    tree = _random_tree(rng, depth=5, features=6, channels=channels)
    raw = _pack(tree)
    decoded = read_flax_msgpack(raw)
    np.testing.assert_array_equal(
        decoded["params"]["ConvBNBlock_2"]["Conv_0"]["kernel"],
        tree["params"]["ConvBNBlock_2"]["Conv_0"]["kernel"],
    )
    net = convert(raw)
    assert (net.depth, net.features, net.in_channels) == (5, 6, channels)
    img = rng.uniform(0, 1, (13, 11)).astype(np.float64)  # non-square: catches an H/W mix-up
    sigma = 0.15
    x_in = img[..., None] if channels == 1 else np.stack([img, np.full_like(img, sigma)], -1)
    ref = _numpy_dncnn(tree, x_in)[..., 0]
    with torch.no_grad():
        out = net.double()(torch.from_numpy(img)[None, None], sigma)[0, 0].numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-9, atol=1e-9)


def test_conversion_rejects_unknown_extension():
    raw = msgpack.packb({"params": {"conv_start": {"kernel": msgpack.ExtType(7, b"")}}})
    with pytest.raises(ValueError, match="extension type 7"):
        read_flax_msgpack(raw)


# ------------------------------------------------------------------------ network properties
class _Scale(torch.nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return self.k * x


def test_multilevel_picks_nearest_level_in_log_sigma():
    bank = MultiLevelDnCNN([_Scale(1.0), _Scale(2.0), _Scale(3.0)], [0.06, 0.10, 0.20])
    sigma = torch.tensor([0.0, 0.05, 0.076, 0.078, 0.14, 0.142, 0.5])
    assert bank.level(sigma, 7).tolist() == [0, 0, 0, 1, 1, 2, 2]
    x = torch.ones(7, 1, 4, 4)
    expected = torch.tensor([1.0, 1, 1, 2, 2, 3, 3])[:, None, None, None].expand_as(x)
    torch.testing.assert_close(bank(x, sigma), expected)
    torch.testing.assert_close(bank(x, 0.1), 2 * x)


def test_bias_free_denoiser_is_homogeneous():
    """No additive terms: D(αx, ασ) = α·D(x, σ) for α > 0 (Mohan et al. 2020)."""
    net = registry.load_network("denoiser-gray")
    y = noisy(load_image("coins", size=48), 0.1)
    with torch.no_grad():
        torch.testing.assert_close(net(2.5 * y, 0.25), 2.5 * net(y, 0.1), rtol=1e-4, atol=1e-5)


def test_colour_images_are_denoised_per_channel():
    net = BiasFreeDenoiser(depth=3, features=4)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.05, 0.2])
    with torch.no_grad():
        out = net(x, sigma)
        for b in range(2):
            for c in range(3):
                torch.testing.assert_close(
                    out[b : b + 1, c : c + 1], net(x[b : b + 1, c : c + 1], sigma[b : b + 1])
                )


def test_lpn_denoise_honours_sigma():
    """The fixed-σ₀ LPN rescales for σ > σ₀ (held-out 64², σ = 0.2: 18.6 → 22.5 dB),
    is its plain prox at σ₀, and refuses σ < σ₀ rather than silently denoising at σ₀."""
    lpn = registry.load("lpn-gray")
    x = held_out(64)
    y = noisy(x, 0.2)
    with torch.no_grad():
        scaled = psnr(lpn.denoise(y, 0.2).clamp(0, 1), x).mean().item()
        plain = psnr(lpn(y).clamp(0, 1), x).mean().item()
        torch.testing.assert_close(lpn.denoise(y, 0.1), lpn(y))
    assert scaled >= plain + 3.0, f"rescaled {scaled:.2f} dB vs σ ignored {plain:.2f} dB"
    with pytest.raises(ValueError, match="sigma >= 0.1"):
        lpn.denoise(y, 0.05)


# ------------------------------------------------------------------------ colour
class _Recorder:
    """A grey 'denoiser' that returns its input and records the σ it was asked for."""

    def __init__(self):
        self.sigmas = None

    def denoise(self, x, sigma):
        self.sigmas = torch.as_tensor(sigma).reshape(-1).clone()
        assert (
            x.shape[1] == 1 and x.min() >= -1e-6 and x.max() <= 1 + 1e-6
        )  # every channel mapped onto [0, 1]
        return x


def test_decorrelated_transform_is_exact_and_scales_sigma():
    """With an identity denoiser the round trip is exact; channel k is denoised at σ/w_k
    (opponent: w = √3, √2, 4/√6), the level of white noise after the orthonormal map and the
    affine scaling onto [0, 1]."""
    from restorekit.priors import Decorrelated

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    rec = _Recorder()
    torch.testing.assert_close(Decorrelated(rec).denoise(x, torch.tensor([0.1, 0.2])), x)
    w = torch.tensor([3**0.5, 2**0.5, 4 / 6**0.5])
    torch.testing.assert_close(rec.sigmas, torch.cat([0.1 / w, 0.2 / w]))
    with pytest.raises(ValueError, match="orthonormal"):
        Decorrelated(rec, matrix=torch.eye(3) * 2)


def test_decorrelated_dncnn_beats_per_channel_on_colour():
    """On the colour held-out image (astronaut, σ = 0.1) the opponent-space dncnn (``dncnn-rgb``)
    beats dncnn per RGB channel (128²: 29.23 vs 27.71 dB; colour TV at its best weight 26.64)."""
    x = load_image("astronaut", size=64, color=True)
    y = noisy(x, 0.1)
    with torch.no_grad():
        rgb = psnr(registry.load("dncnn-rgb").denoise(y, 0.1).clamp(0, 1), x).item()
        per_channel = psnr(registry.load("dncnn").denoise(y, 0.1).clamp(0, 1), x).item()
    assert rgb >= per_channel + 0.8, f"decorrelated {rgb:.2f} dB vs per channel {per_channel:.2f} dB"


@pytest.mark.parametrize("name", ["dncnn", "denoiser-gray"])
def test_per_pixel_sigma_map_is_a_local_noise_level(name):
    """A (B, 1, H, W) σ map: a constant map gives exactly the float call, and a map at 0.02 on
    the left half and 0.15 on the right gives, more than the receptive field (17 px) away from
    both seams (dncnn pads circularly), what each constant level gives: the map is read per
    pixel, not averaged or broadcast wrongly."""
    prior = registry.load(name)
    x = noisy(load_image("brick", size=128), 0.08, seed=0)
    whole = prior.denoise(x, 0.08)
    torch.testing.assert_close(prior.denoise(x, torch.full((1, 1, 128, 128), 0.08)), whole)
    split = torch.full((1, 1, 128, 128), 0.02)
    split[..., 64:] = 0.15
    out = prior.denoise(x, split)
    low, high = prior.denoise(x, 0.02), prior.denoise(x, 0.15)
    torch.testing.assert_close(out[..., 20:44], low[..., 20:44], atol=1e-4, rtol=0)
    torch.testing.assert_close(out[..., 84:108], high[..., 84:108], atol=1e-4, rtol=0)
    assert (low[..., 84:108] - high[..., 84:108]).abs().mean() > 0.01  # the two levels differ there
