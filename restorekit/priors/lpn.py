"""Learned proximal network (LPN): a learned prior whose denoiser is an exact proximal operator.

Fang, Buchanan & Sulam, "What's in a Prior? Learned Proximal Networks for Inverse Problems",
ICLR 2024.

An input-convex network ψ_θ (the *potential*) defines the map f_θ(y) = ∇ψ_θ(y). Because ψ_θ is
convex (and differentiable), f_θ is the gradient of a convex function, which by Gribonval &
Nikolova (2020) makes it exactly the proximal operator of some (possibly non-convex) prior:

    f_θ(y) = argmin_x ½‖x − y‖² + R_θ(x),
    R_θ(x) = ⟨x, y*⟩ − ψ_θ(y*) − ½‖x‖²   where y* solves f_θ(y*) = x,

and y* = argmin_y ψ_θ(y) − ⟨x, y⟩ is a convex problem (the convex conjugate ψ*(x) = ⟨x, y*⟩ −
ψ(y*)), so R_θ(x) = ψ*(x) − ½‖x‖² is computable (up to an additive constant).

The prox holds at the single scale the network was trained at: ``prox(x, gamma)`` accepts only
gamma = 1 (scaling R by gamma ≠ 1 would need a different network).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: How far from 1 a prox weight gamma may be (the LPN is the prox at gamma = 1 only).
GAMMA_TOL = 1e-3


@dataclass(frozen=True)
class ValueResult:
    """R(x) and how well the inner convex problem y* = argmin ψ(y) − ⟨x, y⟩ was solved.

    Attributes:
        value: R(x) per sample, a (B,) tensor.
        y: the minimiser y* (so that prox(y*) ≈ x), shaped like x.
        residual: ‖∇ψ(y*) − x‖ / ‖x‖ per sample, a (B,) tensor (0 at the exact solution).
        iterations: L-BFGS iterations used.
        converged: per sample, residual ≤ the requested tolerance.
    """

    value: torch.Tensor
    y: torch.Tensor
    residual: torch.Tensor
    iterations: int
    converged: torch.Tensor


def _softplus(t: torch.Tensor, beta: float) -> torch.Tensor:
    return F.softplus(t, beta=beta)


class LPN(nn.Module):
    r"""Learned proximal network prior (Proximal, Energy and Denoiser capabilities).

    Potential (input-convex network, fully convolutional, any image size):

        z₁ = g(H₁ y + b₁)
        z_{k+1} = g(W_k z_k + H_{k+1} y + b_{k+1}),   k = 1 … L−1,   W_k ≥ 0
        ψ(y) = Σ_c a_c · Σ_pixels z_L[c] + α‖y‖²,      a ≥ 0

    with g(t) = softplus(β t)/β (convex, non-decreasing, β = 100), 3×3 convolutions with
    reflect padding (a linear map, so convexity is kept), H_k arbitrary, W_k and a clamped to
    be non-negative after every optimiser step (:meth:`clamp_weights`). Each z_k is convex in y
    (non-negative combinations of convex functions, composed with a convex non-decreasing g),
    hence ψ is convex; α‖y‖² makes it strictly convex.

    The output layer sums over pixels instead of the mean pooling of the paper: with a mean,
    ∇ψ at each pixel would scale like 1/(H·W), tying the prox to the training patch size;
    with a sum the prox f(y) = ∇ψ(y) is translation equivariant and does not depend on the
    image size (and R(x) is, like ½‖x‖², a sum over pixels).

    Why not ``deepinv.models.ICNN``: it is a fine convolutional ICNN, but (i) it uses a leaky
    ReLU, so ∇ψ is piecewise constant in the activations' pre-images and the conjugate problem
    for R(x) is non-smooth; the paper uses a smooth softplus; (ii) it clamps the non-negative
    weights inside ``forward`` (a hidden in-place side effect on every evaluation) rather than
    after each optimiser step; (iii) it returns a (B, C) tensor to which the (B,) quadratic term
    is broadcast, which for grey images (C = 1) yields a (B, B) matrix instead of one value per
    sample (deepinv 0.5); (iv) it takes the mean over pixels (see above). So we write ψ here.

    Parameters
    ----------
    channels : image channels (1 for grey).
    hidden : feature channels of every hidden layer.
    layers : number of hidden layers L (≥ 2).
    beta : softplus sharpness β.
    alpha : weight of the strongly convex term α‖y‖².
    sigma : the training noise level σ₀: the network is the prox (MAP denoiser) at that level,
        so R ≈ σ₀²·(−log p); the PnP solvers use it to weigh the data term (see
        :func:`~restorekit.solvers.steps.data_weight`); ``denoise`` reaches σ > σ₀ by rescaling
        and refuses σ < σ₀.
    """

    #: The one prox weight the network is the prox at (see :func:`~restorekit.priors.base.fixed_prox_weight`).
    prox_gamma = 1.0

    def __init__(
        self,
        channels: int = 1,
        hidden: int = 32,
        layers: int = 5,
        beta: float = 100.0,
        alpha: float = 1e-6,
        sigma: float = 0.1,
    ):
        super().__init__()
        if layers < 2:
            raise ValueError(f"layers must be >= 2, got {layers}")
        if channels < 1 or hidden < 1:
            raise ValueError(f"channels and hidden must be >= 1, got {channels} and {hidden}")
        if beta <= 0 or alpha < 0:
            raise ValueError(f"beta must be > 0 and alpha >= 0, got beta={beta}, alpha={alpha}")
        self.config = dict(
            channels=channels,
            hidden=hidden,
            layers=layers,
            beta=float(beta),
            alpha=float(alpha),
            sigma=float(sigma),
        )
        self.beta, self.alpha, self.sigma = float(beta), float(alpha), float(sigma)
        conv: dict[str, Any] = dict(kernel_size=3, padding=1, padding_mode="reflect")
        self.H = nn.ModuleList([nn.Conv2d(channels, hidden, bias=True, **conv) for _ in range(layers)])
        self.W = nn.ModuleList([nn.Conv2d(hidden, hidden, bias=False, **conv) for _ in range(layers - 1)])
        self.a = nn.Parameter(torch.empty(hidden))
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Default init for H (PyTorch's), W and a = exp(N(−10, 0.1)) (small, positive)."""
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        with torch.no_grad():
            for h in self.H:
                assert isinstance(h, nn.Conv2d) and h.bias is not None  # built with bias=True above
                fan_in = h.in_channels * 9
                bound = 1 / math.sqrt(fan_in)
                h.weight.copy_(torch.rand(h.weight.shape, generator=g) * 2 * bound - bound)
                h.bias.copy_(torch.rand(h.bias.shape, generator=g) * 2 * bound - bound)
            for w in self.W:
                assert isinstance(w, nn.Conv2d)
                w.weight.copy_(torch.exp(-10 + 0.1 * torch.randn(w.weight.shape, generator=g)))
            self.a.copy_(torch.exp(-10 + 0.1 * torch.randn(self.a.shape, generator=g)))

    def clamp_weights(self) -> None:
        """Project W_k and the output weights a onto ≥ 0 (call after every optimiser step)."""
        with torch.no_grad():
            for w in self.W:
                assert isinstance(w, nn.Conv2d)
                w.weight.clamp_(min=0)
            self.a.clamp_(min=0)

    # ---------------------------------------------------------------- the potential and its gradient
    def potential(self, y: torch.Tensor) -> torch.Tensor:
        """ψ(y) per sample, a (B,) tensor."""
        z = _softplus(self.H[0](y), self.beta)
        for W, H in zip(self.W, self.H[1:]):
            z = _softplus(W(z) + H(y), self.beta)
        out = torch.einsum("bchw,c->b", z, self.a)
        return out + self.alpha * y.flatten(1).pow(2).sum(1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """f(y) = ∇ψ(y) by autograd (differentiable when grad mode is on, e.g. in training)."""
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            y_ = y if y.requires_grad else y.detach().requires_grad_(True)
            psi = self.potential(y_).sum()
            (grad,) = torch.autograd.grad(psi, y_, create_graph=create_graph)
        return grad if create_graph else grad.detach()

    # ---------------------------------------------------------------- prior capabilities
    def prox(self, x: torch.Tensor, gamma: float | torch.Tensor = 1.0) -> torch.Tensor:
        """argmin_z ½‖z − x‖² + R(z) = ∇ψ(x); only gamma = 1 (the trained scale) is accepted,
        to within 1e-3 (solvers derive gamma from estimated operator norms, e.g. PnP-PGD's
        step/‖A‖² with ‖A‖ from power iteration)."""
        g = torch.as_tensor(gamma, dtype=torch.float64)
        if not torch.allclose(g, torch.ones_like(g), rtol=0, atol=GAMMA_TOL):
            raise ValueError(
                f"gamma must be 1 for an LPN (it is the prox of R at its trained scale, "
                f"sigma={self.sigma}); got gamma={gamma}. The PnP solvers keep it at 1 by "
                "default (pnp-admm: leave rho unset or 1)."
            )
        return self(x)

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor | None = None) -> torch.Tensor:
        """Denoise at level σ (float or (B,); None means the training level σ₀ = ``self.sigma``).

        The network is the prox at σ₀ only. For σ ≥ σ₀ the image is shrunk about mid-grey so
        that its noise is σ₀, denoised and stretched back (it stays inside [0, 1]):

            D(x, σ) = 0.5 + (σ/σ₀)·(f(0.5 + (σ₀/σ)(x − 0.5)) − 0.5).

        Below σ₀ that would stretch the image out of the range the LPN saw, so σ < σ₀ raises a
        ValueError (add noise up to σ₀ first, or use another denoiser)."""
        if sigma is None:
            return self(x)
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        if (s < self.sigma * (1 - 1e-6)).any():
            raise ValueError(
                f"this LPN was trained at sigma={self.sigma} and can denoise only at "
                f"sigma >= {self.sigma} (by rescaling); got sigma={s.tolist()}"
            )
        k = (self.sigma / s).reshape(-1, *([1] * (x.ndim - 1)))
        return 0.5 + (self(0.5 + k * (x - 0.5)) - 0.5) / k

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """R(x) per sample (up to a constant); see :meth:`value_with_info`."""
        return self.value_with_info(x).value

    def value_with_info(
        self, x: torch.Tensor, *, init: torch.Tensor | None = None, max_iter: int = 300, tol: float = 1e-4
    ) -> ValueResult:
        """R(x) = ⟨x, y*⟩ − ψ(y*) − ½‖x‖² with y* = argmin_y ψ(y) − ⟨x, y⟩.

        The convex inner problem is solved in float64 (in float32 the line search stalls once
        the decrease of the summed objective falls below its rounding error, around a relative
        residual of 1e-3) by L-BFGS (strong-Wolfe line search) from ``init`` (default: x
        itself), stopping when max_b ‖∇ψ(y) − x_b‖/‖x_b‖ ≤ ``tol`` or after ``max_iter``
        iterations. The batch is solved jointly (the objective is a sum of independent
        per-sample terms). Results come back in x's dtype.
        """
        if max_iter < 1 or tol <= 0:
            raise ValueError(f"max_iter must be >= 1 and tol > 0, got {max_iter} and {tol}")
        if self.a.dtype != torch.float64:
            out = (
                copy.deepcopy(self)
                .double()
                .value_with_info(
                    x.double(), init=None if init is None else init.double(), max_iter=max_iter, tol=tol
                )
            )
            return ValueResult(
                value=out.value.to(x.dtype),
                y=out.y.to(x.dtype),
                residual=out.residual.to(x.dtype),
                iterations=out.iterations,
                converged=out.converged,
            )
        x = x.detach()
        x_norm = x.flatten(1).norm(dim=1).clamp_min(1e-12)
        y = (x if init is None else init).detach().clone().requires_grad_(True)
        opt = torch.optim.LBFGS(
            [y],
            lr=1,
            max_iter=max_iter,
            history_size=20,
            tolerance_grad=0.0,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )
        iterations = 0

        def residual() -> torch.Tensor:
            return (self(y.detach()) - x).flatten(1).norm(dim=1) / x_norm

        def closure():
            opt.zero_grad()
            with torch.enable_grad():
                loss = self.potential(y).sum() - (x * y).sum()
                loss.backward()
            return loss

        # 1. L-BFGS in chunks of 10 iterations, checking the per-sample residual in between
        for _ in range(0, max_iter, 10):
            opt.param_groups[0]["max_iter"] = min(10, max_iter - iterations)
            opt.step(closure)
            iterations += opt.param_groups[0]["max_iter"]
            if residual().max() <= tol:
                break
        # 2. the conjugate ψ*(x) = ⟨x, y*⟩ − ψ(y*), then R(x) = ψ*(x) − ½‖x‖²
        y_star = y.detach()
        with torch.no_grad():
            r = residual()
            value = (x * y_star).flatten(1).sum(1) - self.potential(y_star) - 0.5 * x.flatten(1).pow(2).sum(1)
        return ValueResult(value=value, y=y_star, residual=r, iterations=iterations, converged=r <= tol)

    # ---------------------------------------------------------------- saving and loading
    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` to ``directory``."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / CONFIG_NAME).write_text(json.dumps(self.config, indent=2) + "\n")
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(d / WEIGHTS_NAME)
        )

    @classmethod
    def from_pretrained(cls, directory: str | Path, device=None) -> LPN:
        """Load an LPN written by :meth:`save_pretrained` from a local directory."""
        from safetensors.torch import load_file

        d = Path(directory)
        if not (d / CONFIG_NAME).is_file() or not (d / WEIGHTS_NAME).is_file():
            raise ValueError(f"directory must hold {CONFIG_NAME} and {WEIGHTS_NAME}, got {str(d)!r}")
        model = cls(**json.loads((d / CONFIG_NAME).read_text()))
        model.load_state_dict(load_file(str(d / WEIGHTS_NAME)))
        model.eval()
        return model.to(device) if device is not None else model
