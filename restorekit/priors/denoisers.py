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
                raise ValueError(f"denoiser {self.name!r} is on {ref.device} but x is on {x.device}; "
                                 "move the network with .to()")
            run_dtype = ref.dtype
        if isinstance(sigma, torch.Tensor):
            sigma = sigma.to(device=x.device, dtype=run_dtype)
        with torch.set_grad_enabled(torch.is_grad_enabled() and x.requires_grad):
            out = self.net(x.to(run_dtype), sigma)
        return out.to(x.dtype)

    def __repr__(self):
        return f"DenoiserPrior({self.name})"
