"""Unconditional (or class-/guidance-conditioned) generation from a diffusion prior by DDIM.

x = restorekit.sample(prior, (4, 1, 64, 64), steps=50, generator=g)
x = restorekit.sample(CFGpp(prior, cond=1, lam=0.6), (4, 1, 64, 64))
"""

from __future__ import annotations

import torch

from .checks import batch_shape, check_generator, positive_int, real_number
from .priors.base import Diffusion, require, reset
from .priors.schedule import abar_at, ddim_step, randn, timesteps
from .solvers.base import progress_bar
from .validate import prior_channels


def sample(
    prior,
    shape,
    *,
    steps: int = 50,
    eta: float = 0.0,
    clip: bool = True,
    cond=None,
    generator: torch.Generator | None = None,
    device=None,
    progress: bool | None = None,
) -> torch.Tensor:
    """Draw images from a diffusion prior with DDIM (Song et al. 2021, eq. 12).

    Timesteps are diffusers' "leading" spacing t_i = i·⌊T/steps⌋, walked from high to low
    (980, 960, …, 0 for 50 of 1000). From u ~ N(0, I), with
    ``p = prior.predict(u_t, t, cond)`` = (û0, ε̂, ε_renoise), each step is

        u_{t'} = a_{t'}·c(û0) + s_{t'}·(η·ξ + √(1 − η²)·ε_renoise),   ξ ~ N(0, I),

    t' the next (lower) timestep, c the clip to [−1, 1] (identity with ``clip=False``): for
    η = 0 the deterministic DDIM of diffusers' ``DDIMScheduler(clip_sample=clip)`` (and
    CFG++'s u_{t'} = a_{t'}·û0 + s_{t'}·ε_u, since its ε_renoise is the unconditional ε).
    As in diffusers, ε_renoise is not re-derived from the clipped û0. η > 0 is read as the
    share of fresh noise, as in DDS and :func:`restorekit.priors.schedule.ddim_step` (not the
    textbook σ_t(η), which injects less noise for the same η). The result is the last û0 (at
    t = 0), mapped to [0, 1] and clipped there.
    The prior's ``reset()`` is called first, so guidance momentum never leaks between calls.

    Parameters
    ----------
    prior : a diffusion prior, or a guidance wrapper (``CFG``, ``CFGpp``, ``APG``).
    shape : (B, C, H, W) of the images to draw.
    steps : number of network evaluations (guidance wrappers batch cond/uncond into one).
    eta : DDIM stochasticity in [0, 1]; 0 is the deterministic ODE sampler.
    clip : clip û0 to [−1, 1] before each step (diffusers' default ``clip_sample=True``); it
        keeps weakly trained models from diverging at high noise levels.
    cond : class label(s) passed on to ``prior.predict`` (None: the prior's own).
    generator : draws u_T (and ξ when eta > 0); a fixed default seed when None.
    device : where to sample (default CPU).
    progress : show a tqdm bar (None: when stderr is a terminal and the run passes 2 s).
    """
    require(prior, Diffusion, "sample")
    shape = batch_shape(shape)
    channels = prior_channels(prior)
    if channels is not None and shape[1] != channels:
        raise ValueError(f"shape has {shape[1]} channels but the prior draws {channels}-channel images")
    total = len(prior.alphas_cumprod)
    positive_int(steps, "steps")
    if steps > total:
        raise ValueError(f"steps must be an int in [1, {total}], got {steps!r}")
    ts = timesteps(total, steps)
    eta = real_number(eta, "eta", low=0.0, high=1.0)
    if not isinstance(clip, bool):
        raise TypeError(f"clip must be a bool, got {clip!r}")
    check_generator(generator)
    device = (
        torch.device(device)
        if device is not None
        else (generator.device if generator is not None else torch.device("cpu"))
    )
    if generator is None:
        generator = torch.Generator(device=device).manual_seed(0)
    reset(prior)
    # 1. start from pure noise at the first (largest) timestep
    u = torch.randn(shape, generator=generator, device=device)
    with torch.no_grad():
        for i in progress_bar(range(steps), "sample", progress):
            # 2. guided or plain prediction (û0, ε̂, ε_renoise)
            p = prior.predict(u, ts[i], cond)
            if i == steps - 1:
                break
            # 3. DDIM step to the next timestep, renoising with ε_renoise
            noise = randn(shape, generator, u) if eta > 0 else torch.zeros_like(u)
            x0 = p.x0.clamp(-1, 1) if clip else p.x0
            u = ddim_step(x0, p.eps_renoise, abar_at(prior.alphas_cumprod, ts[i + 1], u), eta, noise)
    return prior.to_image(p.x0).clamp(0, 1)


__all__ = ["sample"]
