"""Convert scico's trained DnCNN weights (flax msgpack) into restorekit's torch DnCNN.

    pip download --no-deps scico==0.0.7 -d /tmp/scico
    python -m training.convert_scico_dncnn /tmp/scico/scico-0.0.7-py3-none-any.whl

Reads ``scico/data/flax/dncnn17{L,M,H}.mpk`` and ``LICENSE`` straight from the wheel (or an
extracted copy of it), needs neither jax nor flax, and writes three shipped priors, each a
directory of ``*.safetensors`` with ``prior.json``, ``MODEL_CARD.md`` and scico's ``LICENSE``:

- ``restorekit/weights/dncnn/`` — ``dncnn17N.mpk``, 17 layers with the noise level as a second
  input channel (``DnCNN(in_channels=2)``), trained by scico for σ ∈ [0, 0.2] on noisy inputs
  clipped to [0, 1]; shipped with ``clip_input`` (without it, σ = 0.2 falls below TV with
  outputs far outside [0, 1]). The default ``dncnn``.
- ``restorekit/weights/dncnn-6/`` — ``dncnn6N.mpk``, the 6-layer noise-input model (4× faster).
- ``restorekit/weights/dncnn-blind/`` — ``dncnn17{L,M,H}.mpk``, blind 17-layer models trained at
  σ = 0.06, 0.10, 0.20, used as one bank picking the level nearest σ.

The script prints, and the cards hold, denoising PSNR on the HELD_OUT images against TV at its
best weight and (when the optional ``bm3d`` package is installed) BM3D.

The reader and the flax → torch mapping (the file format and the variable tree) live in
:mod:`restorekit.priors.flax_dncnn`.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from restorekit.evaluation import heldout_table, markdown_table
from restorekit.priors.dncnn import DnCNN, MultiLevelDnCNN
from restorekit.priors.flax_dncnn import convert

ROOT = Path(__file__).resolve().parents[1]
LEVELS = {"L": 0.06, "M": 0.10, "H": 0.20}
#: shipped name → scico file stem of the noise-level-input models
NOISE_INPUT = {"dncnn": "dncnn17N", "dncnn-6": "dncnn6N"}
SIGMAS = (0.02, 0.05, 0.1, 0.2)


# ----------------------------------------------------------------------------- the wheel
class Source:
    """Files of the scico wheel, from the .whl itself or a directory it was unzipped into."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_file():
            self.zip = zipfile.ZipFile(path)
            self.names = self.zip.namelist()
        else:
            self.zip = None
            self.names = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
        self.version = next(
            (
                n.split("/")[0].removesuffix(".dist-info").split("-")[1]
                for n in self.names
                if ".dist-info/" in n
            ),
            "unknown",
        )

    def read(self, suffix: str) -> bytes:
        hits = [n for n in self.names if n.endswith(suffix)]
        if len(hits) != 1:
            raise FileNotFoundError(f"expected one file ending in {suffix!r} in {self.path}, found {hits}")
        return self.zip.read(hits[0]) if self.zip else (self.path / hits[0]).read_bytes()


def kodim23(source: Source) -> torch.Tensor:
    """scico's test image kodim23 (512 × 768), grey as scico's rgb2gray: 0.299 R + 0.587 G + 0.114 B."""
    import io

    from skimage.io import imread

    rgb = imread(io.BytesIO(source.read("scico/data/examples/kodim23.png"))).astype(np.float32) / 255
    grey = rgb[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(grey))[None, None]


def centre_crop(x: torch.Tensor, size: int = 256) -> torch.Tensor:
    H, W = x.shape[-2:]
    return x[..., (H - size) // 2 : (H + size) // 2, (W - size) // 2 : (W + size) // 2]


@torch.no_grad()
def kodim23_psnr(net, sigma: float, x: torch.Tensor, seed: int = 0) -> tuple[float, float]:
    from restorekit.metrics import psnr

    y = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    return psnr(y, x).item(), psnr(net(y, sigma), x).item()


# ----------------------------------------------------------------------------- writing
def save_net(net: DnCNN, path: Path):
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path)


def bm3d_column() -> dict:
    """{"BM3D": denoiser} when the optional bm3d package is installed, else {}."""
    from restorekit.priors.bm3d import bm3d_denoise, import_bm3d

    try:
        import_bm3d()
    except ImportError:
        return {}
    return {"BM3D (bm3d package)": bm3d_denoise}


def write_prior(d: Path, licence: str, nets: dict, meta: dict, card: str):
    """One shipped directory: weights, prior.json, scico's LICENSE and the model card."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "LICENSE").write_text(licence)
    for file, net in nets.items():
        save_net(net, d / file)
    (d / "prior.json").write_text(json.dumps(meta, indent=2) + "\n")
    (d / "MODEL_CARD.md").write_text(card)
    print(f"wrote {d}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scico", type=Path, help="scico wheel (.whl) or the directory it was unzipped into")
    p.add_argument("--out", type=Path, default=ROOT / "restorekit" / "weights")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    src = Source(args.scico)
    licence = src.read("LICENSE").decode()
    full = kodim23(src)
    crop = centre_crop(full)

    # 1. convert the three blind 17-layer models and the two noise-input models
    blind = {lv: convert(src.read(f"scico/data/flax/dncnn17{lv}.mpk")) for lv in LEVELS}
    bank = MultiLevelDnCNN(list(blind.values()), list(LEVELS.values()))
    noise_input = {
        name: convert(src.read(f"scico/data/flax/{stem}.mpk"), clip_input=True)
        for name, stem in NOISE_INPUT.items()
    }

    # 2. check on scico's own test image before writing anything
    checked = {
        **{f"dncnn17{lv}": net for lv, net in blind.items()},
        **{NOISE_INPUT[n]: net for n, net in noise_input.items()},
    }
    kodim = {k: (kodim23_psnr(net, 0.1, crop), kodim23_psnr(net, 0.1, full)) for k, net in checked.items()}
    for name, ((noisy, den), (noisy_full, den_full)) in kodim.items():
        print(
            f"kodim23, σ=0.1, {name}: centre 256² crop {den:.2f} dB (noisy {noisy:.2f}), "
            f"full 512×768 {den_full:.2f} dB (noisy {noisy_full:.2f})"
        )
    for name in ("dncnn17M", "dncnn17N"):
        if kodim[name][0][1] < 32.0:
            raise RuntimeError(
                f"converted {name} reaches only {kodim[name][0][1]:.2f} dB on the kodim23 crop "
                "at σ=0.1 (expected ≥ 32 dB): the conversion is wrong"
            )

    # 3. quality on the HELD_OUT images
    table = heldout_table(
        {
            "dncnn (17N)": noise_input["dncnn"],
            "dncnn-6 (6N)": noise_input["dncnn-6"],
            "dncnn-blind (17 L/M/H)": bank,
            **bm3d_column(),
        },
        sigmas=SIGMAS,
    )
    print(markdown_table(table))
    common = dict(
        version=src.version,
        noisy=kodim["dncnn17M"][0][0],
        table=markdown_table(table),
        kodim="\n".join(f"| {k} | {c[1]:.2f} | {f[1]:.2f} |" for k, (c, f) in kodim.items()),
    )

    # 4. write weights, prior.json, LICENSE and the cards
    write_prior(
        args.out / "dncnn-blind",
        licence,
        {f"dncnn17{lv}.safetensors": n for lv, n in blind.items()},
        {
            "kind": "dncnn",
            "description": "DnCNN-17 from scico, blind, trained at σ = 0.06/0.10/0.20 "
            "(the level nearest σ is used), grey",
            "depth": 17,
            "features": 64,
            "in_channels": 1,
            "levels": [{"sigma": s, "file": f"dncnn17{lv}.safetensors"} for lv, s in LEVELS.items()],
        },
        CARD_HEAD.format(
            title="dncnn-blind — DnCNN-17 from scico (blind, three noise levels)",
            files="dncnn17*.mpk",
            depth=17,
            **common,
        )
        + BLIND
        + CARD_TAIL.format(**common),
    )
    for name, stem in NOISE_INPUT.items():
        net = noise_input[name]
        write_prior(
            args.out / name,
            licence,
            {f"{stem}.safetensors": net},
            {
                "kind": "dncnn",
                "description": f"DnCNN-{net.depth} from scico with a noise-level input "
                "(σ ∈ [0, 0.2]), input clipped to [0, 1], grey",
                "depth": net.depth,
                "features": 64,
                "in_channels": 2,
                "clip_input": True,
                "sigma_range": [0.0, 0.2],
                "levels": [{"file": f"{stem}.safetensors"}],
            },
            CARD_HEAD.format(
                title=f"{name} — DnCNN-{net.depth} from scico with a noise-level input",
                files=f"{stem}.mpk",
                depth=net.depth,
                **common,
            )
            + NOISE_CARD
            + CARD_TAIL.format(**common),
        )


CARD_HEAD = """# {title}

**Origin.** Weights of the DnCNN denoiser (Zhang, Zuo, Chen, Meng, Zhang, "Beyond a Gaussian
denoiser: residual learning of deep CNN for image denoising", IEEE TIP 26(7), 2017) as
trained and shipped by scico {version} (`scico/data/flax/{files}`, Los Alamos National
Laboratory, BSD-3-Clause — see `LICENSE` in this directory). restorekit did not train them;
scico's documentation says they were trained on images in [0, 1] with Gaussian noise.
Converted without jax/flax by `training/convert_scico_dncnn.py` (flax msgpack → numpy →
torch, HWIO → OIHW kernels, batch norm in eval mode with the stored running statistics).

**Model.** {depth} layers, 64 features, 3×3 convs without bias, circular padding:
conv → ReLU, {depth} − 2 × (conv → BN → ReLU), conv; output x − (last conv). Grey (B, 1, H, W) in
[0, 1]; colour images are denoised channel by channel (or in a decorrelated colour space with
`restorekit.priors.denoisers.Decorrelated`). Class `restorekit.priors.dncnn.DnCNN`, float32
safetensors.
"""

BLIND = """
Three blind models trained at σ = 0.06 (L), 0.10 (M) and 0.20 (H). `load("dncnn-blind")` holds
all three (`restorekit.priors.dncnn.MultiLevelDnCNN`) and, per sample, uses the one whose
training σ is nearest in log σ to the σ asked for (switching at σ ≈ 0.077 and 0.141); beyond
that choice the networks ignore σ (they are blind), so σ far outside [0.04, 0.3] is served
by a model trained for another level. The default `dncnn` is the noise-input model, which is
better at every σ measured below.
"""

NOISE_CARD = """
**Noise-level input.** The noise level σ enters as a constant second input channel; scico trained
the model for σ ∈ [0, 0.2] on noisy images *clipped to [0, 1]*, so the prior clips its input to
[0, 1] before the network (`clip_input: true` in `prior.json`). Unclipped, its outputs leave
[0, 1] at σ ≥ 0.1 and it falls below TV at σ = 0.2; clipped, it matches or beats the blind bank at
every σ and is far better at low noise, where the blind bank has no model. Above σ = 0.2 it is
outside its training range.
"""

CARD_TAIL = """
**Conversion check** — scico's own test image kodim23 (shipped in the wheel), grey
(0.299/0.587/0.114, as scico's `rgb2gray`), Gaussian noise σ = 0.1 (seed 0; noisy input
{noisy:.2f} dB); the whole 512 × 768 image and its centre 256 × 256 crop. The conversion
script refuses to write weights if dncnn17M or dncnn17N is below 32 dB on the crop. With a
wrong kernel layout (in/out channels swapped) the same model gives about 17 dB.

| model | centre 256² crop (dB) | full image (dB) |
|---|---|---|
{kodim}

**Denoising PSNR (dB)** on `restorekit.data.held_out(128)` (camera, astronaut, coins,
shepp_logan_phantom; grey, 128 × 128), mean over the four images, noise seed 0. TV = skimage
`denoise_tv_chambolle` at the best weight of a grid per σ (an oracle choice, an upper bound
for TV). BM3D = the `bm3d` package (Tampere University, non-commercial licence; a peer only,
never shipped) at the true σ.

{table}
"""


if __name__ == "__main__":
    main()
