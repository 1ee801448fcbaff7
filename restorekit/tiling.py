"""Images of any size with a fixed-size network: tiled priors with shifting windows.

A patch-trained prior applied to a whole megapixel image needs memory that grows with the
image and sees statistics it never saw. :func:`tiled` wraps a prior so that its network runs on
overlapping ``tile`` × ``tile`` windows, a few at a time, and the window outputs are blended
with smooth weights:

    D(x) = Σ_k W_k · D(P_k x) / Σ_k W_k,      W_k = w(r − r_k)·w(c − c_k),

with P_k the crop to window k (pixels outside the image are read by reflection), and
w a separable window: zero on the ``margin`` outermost pixels of each side (where the network
lacks context), rising as sin² up to ``overlap`` pixels from the edge, flat in the middle. The
grid starts ``margin`` pixels outside the image, so every pixel is a convex combination of the
window outputs that cover it, and a local denoiser whose receptive field reaches at most
``margin`` pixels gives exactly its untiled output. Because the grid is a product grid the normaliser Σ_k W_k is the outer
product of two 1-D sums, and only one image-sized accumulator per output exists: peak memory
is that of a few images plus one chunk of ``batch`` windows through the network, whatever the
image size.

Shifting windows (the idea of Mask-Shift Restoration, Wang et al., "Unlimited-Size Diffusion
Restoration", CVPRW 2023): with ``shift=True`` the grid moves at every call by an offset in
[0, stride)² taken from the additive recurrence o_k = ⌊stride·frac(k·α)⌋, α = (1/ρ, 1/ρ²)
(ρ the plastic number; a low-discrepancy sequence), so that a diffusion solver, which calls the
prior once per step, never sees a seam at the same place twice; ``reset()`` (called by every
diffusion solver on entry) restarts the sequence, so runs are reproducible. The paper's windows
are restored in turn with the overlap taken from the previous window (a range/null-space
constraint); here all windows of a step are predicted together and the overlaps averaged,
which keeps the network calls batched and lets every solver use the prior unchanged.

Hierarchical Restoration (same paper): :func:`hierarchical` restores a ``factor``-times
downscaled image first (the unknown is z with x = U z, U nearest-neighbour upsampling, the
operator A∘U), then restores the full image with the prior's clean estimates anchored to that
low-resolution result on the range of the box-average P = U·avgpool:
x̂ ← x̂ − P x̂ + P x_low (the low frequencies from the global pass, the detail from the windows).

The wrapped prior exposes the capabilities it can keep: ``denoise`` always, and the Diffusion
capability (``predict``, ``alphas_cumprod``, ``to_model``/``to_image``, ``reset``) when the
wrapped prior has it. Proximal and Energy priors (TV, LPN, the Gaussian oracle's energy) are
global and are not tiled by :func:`restorekit.solve`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from deepinv.physics import LinearPhysics

from .priors.base import Diffusion, Energy, Prediction, Proximal

#: ``solve(..., tile="auto")`` tiles network priors on images whose larger side exceeds this.
AUTO_TILE_ABOVE = 512
#: Window side and overlap used by ``tile="auto"``.
AUTO_TILE, AUTO_OVERLAP = 256, 32
#: The R2 low-discrepancy sequence's increments (1/ρ, 1/ρ², ρ the plastic number).
_R2 = (0.7548776662466927, 0.5698402909980532)


def window(length: int, overlap: int, margin: int = 0, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """1-D blending weights of a window of ``length`` pixels: 0 on the ``margin`` outermost
    pixels of each side, then sin²(π/2·(e − margin + ½)/(overlap − margin)) at distance e from
    the edge up to ``overlap``, 1 in between (all ones if overlap is 0)."""
    if overlap == 0:
        return torch.ones(length, dtype=dtype, device=device)
    i = torch.arange(length, dtype=torch.float64)
    edge = torch.minimum(i, length - 1 - i) - margin
    ramp = torch.sin(0.5 * math.pi * ((edge + 0.5) / (overlap - margin)).clamp(max=1.0)) ** 2
    return torch.where(edge < 0, 0.0, ramp).to(device=device, dtype=dtype)


def starts(n: int, tile: int, stride: int, offset: int, margin: int = 0) -> list[int]:
    """Window starts −offset − margin + k·stride along an axis of ``n`` pixels, until the
    weighted part of a window (all but its ``margin`` outer pixels) reaches n; one window
    [0, n) when n ≤ tile."""
    if n <= tile:
        return [0]
    out = [-offset - margin]
    while out[-1] + tile - margin < n:
        out.append(out[-1] + stride)
    return out


def _reflect(index: torch.Tensor, n: int) -> torch.Tensor:
    """Indices outside [0, n) mirrored back (without repeating the edge pixel)."""
    index = index.abs()
    return torch.where(index > n - 1, 2 * (n - 1) - index, index)


def _repeat(value, tiles: int):
    """A per-sample argument (a (B,) tensor) repeated for ``tiles`` windows of each sample;
    floats, ints and None pass through."""
    if isinstance(value, torch.Tensor) and value.ndim > 0:
        return value.reshape(-1).repeat(tiles)
    return value


class TiledDenoiser:
    """A Denoiser prior applied by overlapping, blended windows (see the module docstring).

    Parameters
    ----------
    prior : any prior with ``denoise(x, sigma)`` that accepts ``tile`` × ``tile`` images.
    tile : window side in pixels (an int ≥ 8; a multiple of the network's size multiple avoids
        padding inside the prior).
    overlap : pixels shared by neighbouring windows, in [0, tile/2]; the blend ramps over them.
    margin : outer pixels of each window given zero weight, in [0, overlap/2] (default
        overlap/4): a local network's output there lacks context.
    shift : move the grid at every call (Mask-Shift); False keeps it fixed at offset 0.
    batch : windows per network call (memory ∝ batch · B · tile²).
    anchor : optional (x_low, factor): the low-resolution result of :func:`hierarchical`; every
        output is corrected to x̂ − P x̂ + P x_low on the range of P = U·avgpool_factor.
    """

    def __init__(
        self,
        prior,
        *,
        tile: int = AUTO_TILE,
        overlap: int = AUTO_OVERLAP,
        margin: int | None = None,
        shift: bool = True,
        batch: int = 4,
        anchor: tuple[torch.Tensor, int] | None = None,
    ):
        if not callable(getattr(prior, "denoise", None)):
            raise TypeError(f"prior must have denoise(x, sigma) to be tiled, got {type(prior).__name__}")
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 8:
            raise ValueError(f"tile must be an int >= 8 (window side in pixels), got {tile!r}")
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= tile // 2:
            raise ValueError(f"overlap must be an int in [0, {tile // 2}] (at most tile/2), got {overlap!r}")
        margin = overlap // 4 if margin is None else margin
        if isinstance(margin, bool) or not isinstance(margin, int) or not 0 <= margin <= overlap // 2:
            raise ValueError(
                f"margin must be an int in [0, {overlap // 2}] (at most overlap/2), got {margin!r}"
            )
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive int (windows per network call), got {batch!r}")
        self.prior, self.tile, self.overlap, self.margin = prior, tile, overlap, margin
        self.stride = tile - overlap
        self.shift, self.batch = bool(shift), batch
        self.anchor = None if anchor is None else _check_anchor(anchor)
        self.calls = 0

    def reset(self) -> None:
        """Restart the shift sequence (and the wrapped prior's per-run state)."""
        self.calls = 0
        if callable(getattr(self.prior, "reset", None)):
            self.prior.reset()

    def _grid(self, h: int, w: int):
        """The window starts of this call along rows and columns; advances the shift sequence."""
        k, self.calls = self.calls, self.calls + 1
        oy, ox = (int(self.stride * ((k * a) % 1.0)) for a in _R2) if self.shift else (0, 0)
        return (
            starts(h, self.tile, self.stride, oy, self.margin),
            starts(w, self.tile, self.stride, ox, self.margin),
        )

    def apply(self, fn, x: torch.Tensor, per_sample: tuple = ()) -> tuple[torch.Tensor, ...]:
        """Blend ``fn(windows, *args)`` (a tuple of image-shaped outputs) over the windows of x.

        ``per_sample`` arguments ((B,) tensors, floats, None) are repeated for every window of a
        chunk. Returns the blended outputs, shaped like x.
        """
        b, c, h, w = x.shape
        if h <= self.tile and w <= self.tile:
            return fn(x, *per_sample)
        rows, cols = self._grid(h, w)
        th, tw = min(self.tile, h), min(self.tile, w)
        wy, wx = (
            window(m, self.overlap if n > self.tile else 0, self.margin, dtype=x.dtype, device=x.device)
            for m, n in ((th, h), (tw, w))
        )
        norm_y, norm_x = torch.zeros(h, dtype=x.dtype, device=x.device), torch.zeros_like(x[0, 0, 0])
        for r in rows:
            norm_y[max(r, 0) : r + th] += wy[max(-r, 0) : h - r]
        for q in cols:
            norm_x[max(q, 0) : q + tw] += wx[max(-q, 0) : w - q]
        outs = None
        windows = [(r, q) for r in rows for q in cols]
        for i in range(0, len(windows), self.batch):
            chunk = windows[i : i + self.batch]
            # 1. gather the chunk's windows (reflected at the image border) into one batch
            crops = torch.cat(
                [
                    x.index_select(-2, _reflect(torch.arange(r, r + th, device=x.device), h)).index_select(
                        -1, _reflect(torch.arange(q, q + tw, device=x.device), w)
                    )
                    for r, q in chunk
                ]
            )
            # 2. one network call on the chunk
            results = fn(crops, *(_repeat(a, len(chunk)) for a in per_sample))
            if outs is None:
                outs = [torch.zeros_like(x) for _ in results]
            # 3. accumulate the weighted outputs inside the image
            for j, (r, q) in enumerate(chunk):
                r0, r1, q0, q1 = max(r, 0), min(r + th, h), max(q, 0), min(q + tw, w)
                weight = wy[r0 - r : r1 - r, None] * wx[q0 - q : q1 - q]
                for out, res in zip(outs, results):
                    out[..., r0:r1, q0:q1] += (
                        weight * res[j * b : (j + 1) * b, :, r0 - r : r1 - r, q0 - q : q1 - q]
                    )
        # 4. normalise by the separable weight sum
        assert outs is not None  # the grid has at least one window
        norm = norm_y[:, None] * norm_x
        return tuple(out / norm for out in outs)

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """The wrapped prior's D(x, σ), applied by windows and blended."""
        (out,) = self.apply(lambda z, s: (self.prior.denoise(z, s),), x, (sigma,))
        return out if self.anchor is None else _anchored(out, self.anchor)

    def __repr__(self):
        return (
            f"{type(self).__name__}({self.prior!r}, tile={self.tile}, overlap={self.overlap}, "
            f"margin={self.margin}, shift={self.shift}, batch={self.batch})"
        )


class TiledDiffusion(TiledDenoiser):
    """A Diffusion prior applied by shifting windows: ``predict`` blends x̂0, ε̂ and ε_renoise
    with the same normalised weights, so ε̂ stays consistent with x̂0 (x̂0 is affine in ε̂ at
    fixed u_t). With an anchor, x̂0 is corrected (in image space) and ε̂, ε_renoise are
    recomputed from it."""

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.prior.alphas_cumprod

    @property
    def num_train_timesteps(self) -> int:
        return self.prior.alphas_cumprod.numel()

    @property
    def num_classes(self):
        return getattr(self.prior, "num_classes", None)

    @property
    def null_class(self):
        return getattr(self.prior, "null_class", None)

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        return self.prior.to_model(x)

    def to_image(self, u: torch.Tensor) -> torch.Tensor:
        return self.prior.to_image(u)

    def predict(self, u_t: torch.Tensor, t, cond=None) -> Prediction:
        """The wrapped prior's (û0, ε̂, ε_renoise), predicted by windows and blended."""

        def fn(u, tt, cc):
            p = self.prior.predict(u, tt, cc)
            return (p.x0, p.eps) if p.eps_renoise is p.eps else (p.x0, p.eps, p.eps_renoise)

        x0, eps, *rest = self.apply(fn, u_t, (t, cond))
        renoise = rest[0] if rest else eps
        if self.anchor is None:
            return Prediction(x0=x0, eps=eps, eps_renoise=renoise)
        from .priors.schedule import abar_at, eps_from_x0

        fixed = self.to_model(_anchored(self.to_image(x0), self.anchor))
        abar = abar_at(self.alphas_cumprod, t, u_t)
        new_eps = eps_from_x0(u_t, fixed, abar)
        return Prediction(x0=fixed, eps=new_eps, eps_renoise=renoise + (new_eps - eps))


def tiled(prior, **options) -> TiledDenoiser:
    """Wrap a network prior so that it runs by overlapping, blended, shifting windows:
    a :class:`TiledDiffusion` for a Diffusion prior, else a :class:`TiledDenoiser`.
    Proximal and Energy priors (TV, LPN, the Gaussian oracle) raise a TypeError: their
    ``prox``/``value`` are global and would be lost. ``options`` are the keyword arguments of
    :class:`TiledDenoiser` (``tile``, ``overlap``, ``margin``, ``shift``, ``batch``,
    ``anchor``), checked there."""
    if isinstance(prior, (Proximal, Energy)):
        raise TypeError(
            f"prior {type(prior).__name__} is Proximal or has an Energy (a global "
            "prox/value, e.g. TV, LPN, the Gaussian oracle) and is not tiled; tile "
            "network priors (DenoiserPrior, DiffusionPrior, guidance wrappers)"
        )
    cls = TiledDiffusion if isinstance(prior, Diffusion) else TiledDenoiser
    return cls(prior, **options)


def for_solve(prior, operator, y: torch.Tensor, tile):
    """The prior :func:`restorekit.solve` uses for ``tile``: ``"auto"`` (the default) tiles a
    network prior (not Proximal, no Energy, not already tiled) in 256-px windows with a 32-px
    overlap when the image's larger side exceeds :data:`AUTO_TILE_ABOVE` = 512 px; an int
    tiles it in windows of that side (overlap tile/8, at least 8 px); None or False never
    tiles. The image size is read from Aᴴy, or from ``img_shape`` for a non-linear operator
    (:func:`~restorekit.solvers.diffusion_steps.image_shape`)."""
    if tile is None or tile is False:
        return prior
    if not (tile == "auto" or (isinstance(tile, int) and not isinstance(tile, bool))):
        raise ValueError(f"tile must be 'auto', an int (window side) or None, got {tile!r}")
    if isinstance(prior, TiledDenoiser):
        return prior
    if tile == "auto":
        if isinstance(prior, (Proximal, Energy)) or not callable(getattr(prior, "denoise", None)):
            return prior
        from .solvers.diffusion_steps import image_shape

        with torch.no_grad():
            size = max(image_shape(y, operator)[-2:])
        return tiled(prior) if size > AUTO_TILE_ABOVE else prior
    return tiled(prior, tile=tile, overlap=max(8, tile // 8) if tile >= 16 else tile // 2)


# ----- hierarchical restoration ----------------------------------------------------------------
def _check_anchor(anchor) -> tuple[torch.Tensor, int]:
    if not (
        isinstance(anchor, tuple)
        and len(anchor) == 2
        and isinstance(anchor[0], torch.Tensor)
        and isinstance(anchor[1], int)
        and anchor[1] >= 1
    ):
        raise TypeError(
            f"anchor must be a pair (x_low: tensor (B, C, H, W), factor: int >= 1), got {anchor!r}"
        )
    return anchor


def _anchored(x: torch.Tensor, anchor: tuple[torch.Tensor, int]) -> torch.Tensor:
    """x − P x + P x_low with P = U·avgpool_f (the box-average projection of factor f)."""
    x_low, f = anchor
    if x_low.shape != x.shape:
        raise ValueError(f"the anchor is shaped {tuple(x_low.shape)} but the prior got {tuple(x.shape)}")
    return x + upsample(F.avg_pool2d(x_low - x, f), f)


def upsample(z: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour upsampling U by an integer factor (its adjoint is f²·avgpool_f)."""
    return z.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


class Upsampled(LinearPhysics):
    """The operator A∘U acting on a ``factor``-times smaller image z (x = U z), with A's noise
    model: the low-resolution problem of :func:`hierarchical`. Aᴴ = Uᴴ Aᴴ, Uᴴ = f²·avgpool_f."""

    def __init__(self, operator, factor: int):
        super().__init__(noise_model=operator.noise_model)
        self.operator, self.factor = operator, factor

    def A(self, z, **kwargs):
        return self.operator.A(upsample(z, self.factor))

    def A_adjoint(self, y, **kwargs):
        return self.factor**2 * F.avg_pool2d(self.operator.A_adjoint(y), self.factor)


def hierarchical(
    y: torch.Tensor,
    operator,
    prior,
    solver: str = "dds",
    *,
    factor: int = 2,
    tile=AUTO_TILE,
    generator: torch.Generator | None = None,
    x_true=None,
    **params,
):
    """Hierarchical Restoration: a global low-resolution pass, then the windows.

    1. z = solve(y, A∘U, prior) on the ``factor``-times smaller image (U nearest upsampling),
       x_low = U z: one pass that sees the whole image at once;
    2. solve(y, A, tiled(prior, anchor=(x_low, factor))) at full resolution, every clean
       estimate's box averages replaced by x_low's (its detail from the windows).

    Returns the second :class:`~restorekit.solvers.Result`; its ``seconds`` and ``nfe`` add both
    passes. ``tile`` is the window side of the second pass; ``params`` go to both solves.
    """
    from .solvers import solve

    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise ValueError(f"factor must be an int >= 2 (downscaling of the first pass), got {factor!r}")
    shape = operator.A_adjoint(y).shape
    if shape[-1] % factor or shape[-2] % factor:
        raise ValueError(f"the image size {tuple(shape[-2:])} must be divisible by factor={factor}")
    low = solve(y, Upsampled(operator, factor), prior, solver, tile=None, generator=generator, **params)
    x_low = upsample(low.x, factor)
    inner = getattr(prior, "prior", prior) if isinstance(prior, TiledDenoiser) else prior
    overlap = max(8, tile // 8) if tile >= 16 else tile // 2
    anchored = tiled(inner, tile=tile, overlap=overlap, anchor=(x_low, factor))
    result = solve(y, operator, anchored, solver, tile=None, generator=generator, x_true=x_true, **params)
    result.seconds += low.seconds
    result.nfe += low.nfe
    return result
