"""Two grey-level CNN denoisers shipped with restorekit, as plain torch modules ``net(x, sigma)``.

* :class:`DnCNN` — the residual CNN of Zhang et al., "Beyond a Gaussian denoiser: residual
  learning of deep CNN for image denoising", IEEE TIP 26(7), 2017, in the layout of scico's
  ``DnCNNNet`` (whose trained weights ``training/convert_scico_dncnn.py`` converts)::

      h_1 = ReLU(K_1 * x)                                     (no batch norm)
      h_l = ReLU(BN_l(K_l * h_{l-1})),   l = 2 … L−1          (BN in eval mode)
      D(x) = x − K_L * h_{L−1}                                (residual output)

  with 3×3 kernels, no conv biases, circular padding, 64 features and
  BN_l(z) = γ_l (z − μ_l) / sqrt(v_l + 1e-5) + β_l from the stored running statistics.
  A *blind* DnCNN is trained at one noise level; ``sigma`` is then ignored by ``forward``
  (the registry picks the level nearest the requested sigma). A *noise-input* DnCNN
  (``in_channels=2``, scico's "N" variant, trained for σ ∈ [0, 0.2]) gets a constant channel
  equal to sigma. scico trained it on noisy inputs clipped to [0, 1]; ``clip_input=True``
  clips x the same way before the network (D(x) = clip(x) − K_L * h_{L−1}), without which
  it drifts far outside [0, 1] at σ ≥ 0.1.

* :class:`BiasFreeDenoiser` — our own bias-free residual CNN (Mohan et al., "Robust and
  interpretable blind image denoising via bias-free convolutional neural networks",
  ICLR 2020) with a noise-level map as a second input channel::

      h_1 = ReLU(K_1 * [x, σ·1]),  h_l = ReLU(K_l * h_{l-1}),  D(x, σ) = x − K_L * h_{L−1}

  Without additive terms the network is positively homogeneous, D(αx, ασ) = α·D(x, σ) for
  α ≥ 0, so it is well behaved for noise levels and intensities between those it saw.

Both take (B, 1, H, W) tensors in [0, 1] and a noise level sigma (float or (B,) tensor) in
the same units; colour images are denoised channel by channel. The noise-level channel may also
be a per-pixel (B, 1, H, W) map (signal-dependent noise, as in FFDNet: Zhang, Zuo & Zhang, IEEE
TIP 2018); the networks saw constant maps in training, so a map is best kept smooth.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _sigma_map(x: torch.Tensor, sigma) -> torch.Tensor:
    """The (B, 1, H, W) noise-level channel: constant per sample for a float or a (B,) tensor;
    a 4-D tensor (B or 1, 1, H, W) is a per-pixel map, taken as it is."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.ndim == 4:
        if s.shape[1] != 1 or s.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"a per-pixel sigma map must be (B, 1, H, W) with H, W of x, got {tuple(s.shape)}"
            )
        return s.expand(x.shape[0], 1, *x.shape[-2:])
    return s.reshape(-1, 1, 1, 1).expand(x.shape[0], 1, *x.shape[-2:])


def _per_channel(net_fn, x: torch.Tensor, sigma) -> torch.Tensor:
    """Apply a one-channel denoiser to every channel of x (sigma broadcast per sample, or a
    per-pixel (B, 1, H, W) map shared by the channels)."""
    B, C, H, W = x.shape
    if C == 1:
        return net_fn(x, sigma)
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.ndim == 4:
        s = s.expand(B, 1, H, W).repeat_interleave(C, 0)
    else:
        s = s.reshape(-1).expand(B).repeat_interleave(C)
    return net_fn(x.reshape(B * C, 1, H, W), s).reshape(B, C, H, W)


class DnCNN(nn.Module):
    """DnCNN with batch norm (eval statistics), circular padding and a residual output.

    Parameters
    ----------
    depth : number of conv layers L (scico ships 6 and 17).
    features : feature channels of the hidden layers.
    in_channels : 1 for a blind model, 2 when the noise level is a second input channel.
    clip_input : clip the input to [0, 1] first (how scico's noise-input models were trained).
    """

    def __init__(self, depth: int = 17, features: int = 64, in_channels: int = 1, clip_input: bool = False):
        super().__init__()
        if depth < 3:
            raise ValueError(f"depth must be >= 3, got {depth}")
        if in_channels not in (1, 2):
            raise ValueError(f"in_channels must be 1 (blind) or 2 (noise-level input), got {in_channels}")
        self.depth, self.features, self.in_channels = depth, features, in_channels
        self.clip_input = bool(clip_input)
        self.convs = nn.ModuleList(
            [nn.Conv2d(in_channels, features, 3, padding=1, padding_mode="circular", bias=False)]
            + [
                nn.Conv2d(features, features, 3, padding=1, padding_mode="circular", bias=False)
                for _ in range(depth - 2)
            ]
            + [nn.Conv2d(features, in_channels, 3, padding=1, padding_mode="circular", bias=False)]
        )
        self.norms = nn.ModuleList([nn.BatchNorm2d(features, eps=1e-5) for _ in range(depth - 2)])
        self.eval()

    def _forward1(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if self.clip_input:
            x = x.clamp(0, 1)
        z = x if self.in_channels == 1 else torch.cat([x, _sigma_map(x, sigma)], 1)
        h = F.relu(self.convs[0](z))
        for conv, norm in zip(self.convs[1:-1], self.norms):
            h = F.relu(norm(conv(h)))
        return x - self.convs[-1](h)[:, :1]

    def forward(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """D(x); ``sigma`` is only read by the noise-input variant (``in_channels=2``)."""
        if self.in_channels == 2 and sigma is None:
            raise ValueError("sigma is required by a DnCNN with a noise-level input, got None")
        return _per_channel(self._forward1, x, sigma if sigma is not None else 0.0)


class BiasFreeDenoiser(nn.Module):
    """Bias-free residual CNN D(x, σ) with the noise level as a second input channel.

    Parameters
    ----------
    depth : number of 3×3 conv layers (zero padding, no biases, ReLU between).
    features : channels of the hidden layers.
    """

    def __init__(self, depth: int = 10, features: int = 48):
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        self.depth, self.features = depth, features
        chans = [2] + [features] * (depth - 1) + [1]
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in zip(chans[:-1], chans[1:])
        )

    def _forward1(self, x: torch.Tensor, sigma) -> torch.Tensor:
        h = torch.cat([x, _sigma_map(x, sigma)], 1)
        for conv in self.convs[:-1]:
            h = F.relu(conv(h))
        return x - self.convs[-1](h)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """D(x, σ) for x (B, C, H, W) in [0, 1] and σ a float or a (B,) tensor."""
        return _per_channel(self._forward1, x, sigma)


class MultiLevelDnCNN(nn.Module):
    """Blind denoisers trained at several noise levels, used as one ``net(x, sigma)``.

    Each sample goes to the network whose training level σ_k is nearest in log σ to its
    own σ, k = argmin_k |log σ − log σ_k| (σ = 0 goes to the lowest level).

    Parameters
    ----------
    nets : the blind networks (any modules ``net(x)``).
    sigmas : the noise level each was trained at, same order.
    """

    log_sigmas: torch.Tensor  # a buffer, registered in __init__

    def __init__(self, nets, sigmas):
        super().__init__()
        if len(nets) != len(sigmas) or not nets:
            raise ValueError(
                f"nets and sigmas must be non-empty and of equal length, got {len(nets)} and {len(sigmas)}"
            )
        if any(s <= 0 for s in sigmas):
            raise ValueError(f"sigmas must be positive, got {list(sigmas)}")
        self.nets = nn.ModuleList(nets)
        self.register_buffer("log_sigmas", torch.tensor([float(s) for s in sigmas]).log(), persistent=False)

    def level(self, sigma, batch: int) -> torch.Tensor:
        """Index of the network used for each of ``batch`` samples at noise level ``sigma``."""
        s = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).expand(batch).cpu()
        return (s.clamp_min(1e-12).log()[:, None] - self.log_sigmas.cpu()[None]).abs().argmin(1)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        idx = self.level(sigma, x.shape[0])
        out = torch.empty_like(x)
        for k in idx.unique().tolist():
            sel = (idx == k).nonzero().flatten().to(x.device)
            out[sel] = self.nets[k](x[sel])
        return out
