"""Any denoising network as a prior: ``DenoiserPrior(net)`` with ``net(x, sigma)``."""

from __future__ import annotations

import torch


class DenoiserPrior:
    """A prior given only by a denoiser D(x, σ) (capability: Denoiser).

    ``net`` is any callable ``net(x, sigma) -> x̂`` on (B, C, H, W) images in [0, 1] with
    ``sigma`` a noise standard deviation in the same units (a float or a (B,) tensor) —
    deepinv denoisers (``deepinv.models.DRUNet``, ``DnCNN``, ``TVDenoiser``, ``MedianFilter``…)
    have exactly this signature. ``denoise`` records gradients only when ``x`` requires them
    and grad mode is on (DPS through a :mod:`composite <restorekit.priors.composite>` prior);
    otherwise it runs under ``torch.no_grad()``. When
    ``net`` is a module it runs at the network's dtype and the result is cast back to the
    input's dtype. The network must already be on the input's device (``net.to(device)``);
    its train/eval mode is left as the caller set it.

    Parameters
    ----------
    net : the denoiser.
    name : a label for reports and reprs (default: the class name of ``net``).
    """

    def __init__(self, net, *, name: str | None = None):
        if not callable(net):
            raise TypeError(f"net must be callable as net(x, sigma), got {type(net).__name__}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string or None, got {type(name).__name__}")
        self.net = net
        self.name = name if name is not None else type(net).__name__

    def _net_tensor(self) -> torch.Tensor | None:
        if isinstance(self.net, torch.nn.Module):
            for t in list(self.net.parameters()) + list(self.net.buffers()):
                if t.is_floating_point():
                    return t
        return None

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """D(x, σ): the network's estimate of the clean image, same device and dtype as ``x``."""
        ref = self._net_tensor()
        run_dtype = x.dtype
        if ref is not None:
            if ref.device != x.device:
                raise ValueError(
                    f"denoiser {self.name!r} is on {ref.device} but x is on {x.device}; "
                    "move the network with .to()"
                )
            run_dtype = ref.dtype
        if isinstance(sigma, torch.Tensor):
            sigma = sigma.to(device=x.device, dtype=run_dtype)
        with torch.set_grad_enabled(torch.is_grad_enabled() and x.requires_grad):
            out = self.net(x.to(run_dtype), sigma)
        return out.to(x.dtype)

    def __repr__(self):
        return f"DenoiserPrior({self.name})"


#: Orthonormal opponent colour transform (rows: luminance, red–blue, green–magenta); BM3D's
#: colour path uses the same directions (Dabov et al., ICIP 2007).
OPPONENT = (
    (1 / 3**0.5, 1 / 3**0.5, 1 / 3**0.5),
    (1 / 2**0.5, 0.0, -1 / 2**0.5),
    (1 / 6**0.5, -2 / 6**0.5, 1 / 6**0.5),
)


class Decorrelated:
    """A one-channel denoiser applied to colour images in a decorrelated colour space.

    With an orthonormal M (3×3), z = M x keeps white Gaussian noise white with the same σ, and
    its channels are far less correlated than R, G, B (the luminance holds most of the signal).
    Each channel z_k = m_k·x of an image in [0, 1]³ lies in [lo_k, hi_k] (lo_k = Σ min(m_kj, 0),
    hi_k = Σ max(m_kj, 0)); it is mapped affinely onto [0, 1], where the grey denoiser was
    trained, and denoised at the matching level:

        z'_k = (m_k·x − lo_k)/w_k,   w_k = hi_k − lo_k,   σ'_k = σ/w_k,
        D(x, σ) = Mᵀ [w_k·D_grey(z'_k, σ'_k) + lo_k]_k.

    (For the opponent transform the luminance becomes the mean of R, G, B at σ/√3.) Grey inputs
    (one channel) go straight to the denoiser.

    Parameters
    ----------
    prior : any Denoiser of one-channel images (``denoise(x, σ)``).
    matrix : the orthonormal 3×3 colour transform (default :data:`OPPONENT`).
    """

    def __init__(self, prior, matrix=OPPONENT):
        if not callable(getattr(prior, "denoise", None)):
            raise TypeError(f"prior must have a denoise(x, sigma) method, got {type(prior).__name__}")
        m = torch.as_tensor(matrix, dtype=torch.float64)
        if m.shape != (3, 3) or not torch.allclose(m @ m.T, torch.eye(3, dtype=torch.float64), atol=1e-8):
            raise ValueError(f"matrix must be an orthonormal 3×3 colour transform, got {m.tolist()}")
        self.prior, self.matrix = prior, m
        self.lo, self.width = m.clamp(max=0).sum(1), m.abs().sum(1)
        self.name = f"decorrelated({getattr(prior, 'name', type(prior).__name__)})"

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """D(x, σ) for x (B, 3, H, W) in [0, 1] (or (B, 1, H, W), passed through)."""
        if x.shape[1] == 1:
            return self.prior.denoise(x, sigma)
        if x.shape[1] != 3:
            raise ValueError(f"Decorrelated takes 1 or 3 channels, got {x.shape[1]}")
        B = x.shape[0]
        m, lo, w = (v.to(device=x.device, dtype=x.dtype) for v in (self.matrix, self.lo, self.width))
        # 1. into the decorrelated space, each channel scaled onto [0, 1]
        z = (torch.einsum("kc,bchw->bkhw", m, x) - lo[:, None, None]) / w[:, None, None]
        # 2. every channel of every sample as one grey batch, at its own level σ/w_k
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(B, 1)
        den = self.prior.denoise(z.reshape(B * 3, 1, *x.shape[-2:]), (s / w[None]).reshape(-1))
        # 3. back: undo the scaling, then Mᵀ
        z_hat = den.reshape(B, 3, *x.shape[-2:]) * w[:, None, None] + lo[:, None, None]
        return torch.einsum("kc,bkhw->bchw", m, z_hat)

    def __repr__(self):
        return f"Decorrelated({self.prior!r})"
