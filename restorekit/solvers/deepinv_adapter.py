"""Run deepinv's diffusion samplers (DPS, DDRM, DiffPIR) on our priors, for comparisons only.

deepinv's denoiser convention is the same as ours: ``denoiser(x, sigma)`` with x in [0, 1]
and sigma the noise standard deviation in [0, 1] units (its samplers keep their state in
[−1, 1] and convert through ``MinusOneOneDenoiserWrapper``: x → (x + 1)/2, σ → σ/2). So the
adapter is the prior's own ``denoise`` — for a :class:`~restorekit.priors.DiffusionPrior`,
one Tweedie step at the timestep whose s_t/a_t is closest to 2σ — wrapped as a
``deepinv.models.Denoiser`` that counts its calls.

DDRM and DiffPIR draw from torch's global generator; :func:`run_deepinv` runs them inside
``torch.random.fork_rng`` seeded from the given generator, so the caller's global state is
untouched. deepinv's DPS takes the generator directly.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from deepinv.models import Denoiser

from ..operators.noise import noise_level
from ..priors.base import Denoiser as DenoiserCapability
from ..priors.base import require
from .base import History, Result

METHODS = ("dps", "ddrm", "diffpir")


class PriorDenoiser(Denoiser):
    """``net(x, sigma) = prior.denoise(x, sigma)`` as a deepinv denoiser; ``calls`` counts uses.

    Gradients flow through it when the input requires grad (deepinv's DPS differentiates it).
    """

    def __init__(self, prior):
        require(prior, DenoiserCapability, "deepinv adapter")
        super().__init__()
        self.prior = prior
        self.calls = 0

    def forward(self, x: torch.Tensor, sigma, *args, **kwargs) -> torch.Tensor:
        self.calls += 1
        sigma = sigma.detach().reshape(-1) if isinstance(sigma, torch.Tensor) else sigma
        return self.prior.denoise(x, sigma)


def run_deepinv(
    method: str,
    y: torch.Tensor,
    operator,
    prior,
    steps: int,
    *,
    generator: torch.Generator | None = None,
    **params,
) -> Result:
    """Run deepinv's ``method`` ("dps", "ddrm" or "diffpir") with ``prior`` as its denoiser.

    ``params`` go to the deepinv class: ``weight`` for DPS (deepinv's default 1.0 is much
    weaker than the published ζ), ``eta``/``etab`` for DDRM, ``zeta``/``lambda_`` for
    DiffPIR. DDRM works in the operator's SVD basis, so it needs a deepinv
    ``DecomposablePhysics`` (inpainting, denoising, periodic blur); any other operator raises a
    ValueError before anything runs. DiffPIR's σ_y is the operator's noise level
    (:func:`~restorekit.operators.noise.noise_level`, at least 1e-3). ``Result.nfe`` counts
    denoiser calls (DPS: one forward and one backward each).
    """
    import deepinv as dinv

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")
    if method == "ddrm" and not isinstance(operator, dinv.physics.DecomposablePhysics):
        raise ValueError(
            f"deepinv's DDRM needs an operator with an SVD (a deepinv DecomposablePhysics: "
            f"inpainting, denoising, periodic blur such as restorekit's 'gaussian-blur'); "
            f"{type(operator).__name__} has none. Use restorekit's 'dds' or 'dps', or 'diffpir'"
        )
    net = PriorDenoiser(prior)
    generator = generator if generator is not None else torch.Generator(device=y.device).manual_seed(0)
    start = time.perf_counter()
    if method == "dps":
        model = dinv.sampling.DPS(
            net,
            num_steps=steps,
            weight=params.pop("weight", 1.0),
            dtype=y.dtype,
            device=y.device,
            rng=generator,
            **params,
        )
        x = model(y, operator)
    else:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        devices = [y.device] if y.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            if method == "ddrm":
                model = dinv.sampling.DDRM(net, sigmas=np.linspace(1, 0, steps), **params)
            else:
                model = dinv.sampling.DiffPIR(
                    net,
                    dinv.optim.data_fidelity.L2(),
                    sigma=max(noise_level(operator, y), 1e-3),
                    max_iter=steps,
                    device=y.device,
                    **params,
                )
            with torch.no_grad():
                x = model(y, operator)
    seconds = time.perf_counter() - start
    return Result(x=x.detach(), history=History(), seconds=seconds, nfe=net.calls)
