"""The pretrained priors shipped in ``restorekit/weights/``, by name.

    from restorekit.priors import registry
    registry.available()            # {"dncnn": "DnCNN-17 from scico …", …}
    prior = registry.load("dncnn")  # a DenoiserPrior; denoise(x, sigma)

Data-driven: every sub-directory of ``restorekit/weights/`` that holds a ``prior.json`` is a
shipped prior, named after the directory. ``prior.json`` has at least ``{"kind": …,
"description": …}``; ``kind`` selects the loader:

| kind        | what ``load`` returns                                                  |
|-------------|------------------------------------------------------------------------|
| ``dncnn``   | ``DenoiserPrior`` around :class:`~restorekit.priors.dncnn.DnCNN` (``clip_input`` from prior.json); with several blind levels a :class:`~restorekit.priors.dncnn.MultiLevelDnCNN` picking the level nearest σ per sample |
| ``denoiser``| ``DenoiserPrior`` around :class:`~restorekit.priors.dncnn.BiasFreeDenoiser` |
| ``diffusion``| ``DiffusionPrior.from_pretrained(directory)``                          |
| ``lpn``     | ``LPN.from_pretrained(directory)``                                      |
| ``decorrelated`` | ``Decorrelated(load(weights))``: the grey prior named by ``weights`` on colour images in the opponent colour space |
| ``composite``| ``composite(high=load(high), low=load(low), switch_sigma=…)``: a diffusion prior whose low levels another shipped denoiser serves |

Weights are read with safetensors only (no pickles); nothing is fetched from the network.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .dncnn import BiasFreeDenoiser, DnCNN, MultiLevelDnCNN

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def _meta(directory: Path) -> dict:
    return json.loads((directory / "prior.json").read_text())


def _shipped() -> dict[str, Path]:
    if not WEIGHTS.is_dir():
        return {}
    return {d.name: d for d in sorted(WEIGHTS.iterdir()) if (d / "prior.json").is_file()}


def available() -> dict[str, str]:
    """Names of the shipped priors with a one-line description each."""
    return {name: _meta(d).get("description", "") for name, d in _shipped().items()}


def _directory(name: str) -> Path:
    shipped = _shipped()
    if not isinstance(name, str) or name not in shipped:
        raise ValueError(f"unknown prior {name!r}; available: {', '.join(shipped) or 'none'}")
    return shipped[name]


def _state(path: Path, device) -> dict:
    return load_file(str(path), device=str(device) if device is not None else "cpu")


def _dncnn(directory: Path, meta: dict, device) -> torch.nn.Module:
    nets = []
    for level in meta["levels"]:
        net = DnCNN(
            depth=meta["depth"],
            features=meta["features"],
            in_channels=meta["in_channels"],
            clip_input=meta.get("clip_input", False),
        )
        net.load_state_dict(_state(directory / level["file"], device))
        nets.append(net)
    if len(nets) == 1:
        return nets[0]
    return MultiLevelDnCNN(nets, [level["sigma"] for level in meta["levels"]])


def _denoiser(directory: Path, meta: dict, device) -> torch.nn.Module:
    net = BiasFreeDenoiser(depth=meta["depth"], features=meta["features"])
    net.load_state_dict(_state(directory / "model.safetensors", device))
    return net


_NETWORKS = {"dncnn": _dncnn, "denoiser": _denoiser}


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_checksums(directory: Path) -> dict:
    """Write the SHA-256 of every ``*.safetensors`` file under ``directory`` into its
    ``prior.json`` (``"sha256"``: {relative path: hex digest}), the map :func:`verify` checks;
    every script that writes shipped weights calls it last. Returns the map."""
    directory = Path(directory)
    sums = {str(f.relative_to(directory)): _sha256(f) for f in sorted(directory.rglob("*.safetensors"))}
    meta = _meta(directory)
    meta["sha256"] = sums
    if not sums:
        del meta["sha256"]
    (directory / "prior.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return sums


def verify(directory: Path) -> None:
    """Check every weight file listed in ``prior.json``'s ``"sha256"`` map ({relative path: hex
    digest}) against its SHA-256; a ValueError names the first file that differs."""
    for rel, digest in _meta(directory).get("sha256", {}).items():
        if _sha256(directory / rel) != digest:
            raise ValueError(f"{rel} does not match its sha256 in prior.json (damaged or replaced)")


@contextmanager
def _intact(name: str):
    """Turn any failure to read a shipped checkpoint into one ValueError naming the prior."""
    try:
        yield
    except (OSError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(
            f"prior {name!r} in {WEIGHTS / name}: corrupt or incomplete checkpoint "
            f"({type(e).__name__}: {first}); reinstall restorekit"
        ) from None


def load_network(name: str, device=None) -> torch.nn.Module:
    """The raw torch module ``net(x, sigma)`` of a shipped denoiser (kinds dncnn, denoiser), in eval mode."""
    directory = _directory(name)
    with _intact(name):
        verify(directory)
        return _load_network(name, directory, device)


def _load_network(name: str, directory: Path, device) -> torch.nn.Module:
    meta = _meta(directory)
    if meta["kind"] not in _NETWORKS:
        raise ValueError(
            f"prior {name!r} is of kind {meta['kind']!r}, not a plain denoiser network "
            f"({', '.join(_NETWORKS)}); use load({name!r})"
        )
    net = _NETWORKS[meta["kind"]](directory, meta, device)
    return net.to(device if device is not None else "cpu").eval().requires_grad_(False)


def load(name: str, device=None):
    """Load the shipped prior ``name`` (one of :func:`available`) onto ``device`` (default CPU).
    The prior's ``name`` is the registry name unless its class names itself."""
    directory = _directory(name)
    with _intact(name):
        verify(directory)
        prior = _load(name, directory, device)
    if getattr(prior, "name", None) is None:
        prior.name = name
    return prior


def _load(name: str, directory: Path, device):
    kind = _meta(directory)["kind"]
    if kind in _NETWORKS:
        from .denoisers import DenoiserPrior

        return DenoiserPrior(_load_network(name, directory, device), name=name)
    if kind == "diffusion":
        from .diffusion import DiffusionPrior

        # "weights" names another shipped directory holding the same network (e.g. the
        # unconditional prior is the null class of a class-conditional model)
        source = WEIGHTS / _meta(directory).get("weights", directory.name)
        verify(source)
        return DiffusionPrior.from_pretrained(str(source), device=device)
    if kind == "lpn":
        from .lpn import LPN

        return LPN.from_pretrained(directory, device=device)
    meta = _meta(directory)
    if kind == "decorrelated":
        from .denoisers import Decorrelated

        return Decorrelated(load(meta["weights"], device))
    if kind == "composite":
        from .composite import composite

        return composite(
            high=load(meta["high"], device), low=load(meta["low"], device), switch_sigma=meta["switch_sigma"]
        )
    raise ValueError(
        f"prior {name!r} has unknown kind {kind!r} in {directory / 'prior.json'}; "
        f"expected one of dncnn, denoiser, diffusion, lpn, decorrelated, composite"
    )
