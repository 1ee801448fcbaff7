"""scico's trained DnCNN weights (flax msgpack) as restorekit's torch :class:`DnCNN`, read
without jax or flax (``msgpack``, in the ``test`` extra, is imported when a file is read).

``training/convert_scico_dncnn.py`` ships the converted priors with it; the tests check the
reader and the mapping on a synthetic tree.

**The flax file format.** ``flax.serialization.msgpack_serialize`` writes the variable tree as
nested msgpack maps; every array is a msgpack *extension* with type code 1 whose payload is
itself msgpack: ``[shape (array of ints), dtype name (str), raw C-order bytes]``. (Arrays over
flax's chunk limit would be split into a ``__msgpack_chunked_array__`` map; scico's are far
smaller, and we refuse that case rather than guess.)

**The tree** (scico ``DnCNNNet``: conv_start → ReLU, (L−2) × ConvBNBlock = conv → BN → ReLU,
conv_end, output = input − conv_end)::

    params/conv_start/kernel               (3, 3, C_in, 64)   HWIO
    params/ConvBNBlock_k/Conv_0/kernel     (3, 3, 64, 64)      k = 0 … L−3
    params/ConvBNBlock_k/BatchNorm_0/{scale, bias}  (64,)
    batch_stats/ConvBNBlock_k/BatchNorm_0/{mean, var} (64,)
    params/conv_end/kernel                 (3, 3, 64, C_in)

flax convolutions are cross-correlations like torch's, so a kernel maps by a transpose only,
HWIO → OIHW; flax ``BatchNorm`` (epsilon 1e-5) in inference uses the running mean/var, exactly
torch's ``BatchNorm2d`` in eval mode; ``padding="CIRCULAR"`` is torch's ``padding_mode="circular"``.
"""

from __future__ import annotations

import numpy as np
import torch

from .dncnn import DnCNN

#: the msgpack extension type code of a flax ndarray
FLAX_ARRAY_EXT = 1


def read_flax_msgpack(raw: bytes) -> dict:
    """Decode a ``flax.serialization.msgpack_serialize`` byte string into nested dicts of ndarrays."""
    import msgpack

    def ext_hook(code: int, data: bytes):
        if code != FLAX_ARRAY_EXT:
            raise ValueError(f"unsupported msgpack extension type {code} (only flax ndarrays, code 1)")
        shape, dtype, buf = msgpack.unpackb(data, raw=False)
        return np.frombuffer(buf, dtype=np.dtype(dtype)).reshape(shape).copy()

    tree = msgpack.unpackb(raw, ext_hook=ext_hook, raw=False, strict_map_key=False)

    def check(t, path):
        if isinstance(t, dict):
            if "__msgpack_chunked_array__" in t:
                raise ValueError(f"chunked flax array at {path} is not supported")
            for k, v in t.items():
                check(v, f"{path}/{k}")

    check(tree, "")
    return tree


def flax_dncnn_to_state_dict(tree: dict) -> tuple[dict, int, int]:
    """Map a scico DnCNNNet variable tree to a :class:`DnCNN` state dict; returns (sd, depth, C)."""
    params, stats = tree["params"], tree["batch_stats"]
    blocks = sorted((k for k in params if k.startswith("ConvBNBlock_")), key=lambda k: int(k.split("_")[1]))
    if [int(k.split("_")[1]) for k in blocks] != list(range(len(blocks))):
        raise ValueError(f"ConvBNBlock indices are not contiguous: {blocks}")
    expected = {"conv_start", "conv_end", *blocks}
    if set(params) != expected:
        raise ValueError(f"unexpected parameter groups {sorted(set(params) ^ expected)}")

    def oihw(kernel):
        return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))

    sd = {"convs.0.weight": oihw(params["conv_start"]["kernel"])}
    for i, b in enumerate(blocks):
        bn, st = params[b]["BatchNorm_0"], stats[b]["BatchNorm_0"]
        sd[f"convs.{i + 1}.weight"] = oihw(params[b]["Conv_0"]["kernel"])
        sd[f"norms.{i}.weight"] = torch.from_numpy(bn["scale"])
        sd[f"norms.{i}.bias"] = torch.from_numpy(bn["bias"])
        sd[f"norms.{i}.running_mean"] = torch.from_numpy(st["mean"])
        sd[f"norms.{i}.running_var"] = torch.from_numpy(st["var"])
        sd[f"norms.{i}.num_batches_tracked"] = torch.tensor(0)
    sd[f"convs.{len(blocks) + 1}.weight"] = oihw(params["conv_end"]["kernel"])
    return sd, len(blocks) + 2, params["conv_start"]["kernel"].shape[2]


def convert(raw: bytes, clip_input: bool = False) -> DnCNN:
    """A torch :class:`DnCNN` (eval mode) holding the weights of one scico ``.mpk`` file."""
    sd, depth, channels = flax_dncnn_to_state_dict(read_flax_msgpack(raw))
    net = DnCNN(
        depth=depth, features=sd["convs.0.weight"].shape[0], in_channels=channels, clip_input=clip_input
    )
    net.load_state_dict(sd, strict=True)
    return net.eval()
