"""Posterior sample statistics and conformal risk control for per-pixel intervals.

    samples = posterior_samples(y, op, prior, k=16, solver="dds", generator=g)   # (K, B, C, H, W)
    stats = sample_statistics(samples, coverage=0.9)       # mean, std, lower, upper per pixel
    cal = rcps(stats_cal.lower, stats_cal.upper, x_cal, epsilon=0.1, delta=0.1)
    lo, hi = cal.intervals(stats.lower, stats.upper)

Intervals. From K posterior samples per measurement, l and u are the per-pixel (1 − c)/2 and
(1 + c)/2 sample quantiles (c = ``coverage``); the calibrated interval is [l − λ, u + λ] with
one scalar λ (RCPS) or a λ per pixel group (K-RCPS). The risk of λ on an image x is the
fraction of its pixels outside the interval, L(λ) = mean_j 1{x_j ∉ [l_j − λ_j, u_j + λ_j]},
non-increasing in λ.

RCPS (Bates, Angelopoulos, Lei, Malik & Jordan, "Distribution-free, risk-controlling prediction
sets", JACM 2021, Sec. 3, Theorem 1): on n calibration pairs with empirical risk R̂(λ), R̂⁺(λ)
is the Hoeffding–Bentkus upper confidence bound at level δ (:func:`hoeffding_bentkus_ucb`) and

    λ̂ = inf{λ ∈ Λ : R̂⁺(λ') < ε for all λ' ∈ Λ with λ' ≥ λ};

then P(E[L(λ̂)] ≤ ε) ≥ 1 − δ over the calibration draw, for exchangeable new data.

K-RCPS (Teneggi, Tivnan, Stayman & Sulam, "How to trust your diffusion model: a convex
optimization approach to conformal risk control", ICML 2023, Sec. 4): split the calibration
set; on the first part choose per-group offsets λ_k minimising the mean interval length
subject to the empirical risk ≤ ε; on the second part calibrate a scalar β by RCPS over the
family λ_k + β. The guarantee is RCPS's (the second part is independent of the first). Where
the paper solves a convex relaxation (a hinge upper bound of the 0/1 loss) we solve the exact
0/1 problem's Lagrangian dual over a grid per group (:func:`group_offsets`); the guarantee does
not depend on how the λ_k were chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class PosteriorStats:
    """Per-pixel statistics of K samples, each shaped (B, C, H, W)."""

    mean: torch.Tensor
    std: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor


@dataclass
class Calibration:
    """A calibrated offset: ``lam`` a float (RCPS) or a per-pixel map (K-RCPS), with the target
    risk ε, the confidence δ, the calibration size n and the bound R̂⁺ reached at ``lam``."""

    lam: float | torch.Tensor
    epsilon: float
    delta: float
    n: int
    ucb: float

    def intervals(self, lower: torch.Tensor, upper: torch.Tensor):
        """(l − λ, u + λ)."""
        lam = self.lam.to(lower) if isinstance(self.lam, torch.Tensor) else self.lam
        return lower - lam, upper + lam


def _unit(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def posterior_samples(
    y: torch.Tensor,
    operator,
    prior,
    k: int,
    *,
    solver: str = "dds",
    generator: torch.Generator | None = None,
    **params,
) -> torch.Tensor:
    """K posterior samples per measurement from any sampling solver, in one batched call.

    The batch holds each measurement K times (y repeated along the batch dimension), so a
    solver that draws its noise per batch element (DPS, DDS, MCG, RED-Diff, …) gives K
    independent samples. Returns (K, B, C, H, W).
    """
    from .solvers import solve

    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an int >= 2 (samples per measurement), got {k!r}")
    batch = y.shape[0]
    result = solve(y.repeat(k, *([1] * (y.ndim - 1))), operator, prior, solver, generator=generator, **params)
    return result.x.reshape(k, batch, *result.x.shape[1:])


def sample_statistics(samples: torch.Tensor, coverage: float = 0.9) -> PosteriorStats:
    """Mean, std and the (1 ∓ coverage)/2 quantiles over the first dimension of ``samples``
    (K, B, C, H, W), linear interpolation between order statistics (``torch.quantile``)."""
    coverage = _unit(coverage, "coverage")
    if samples.ndim != 5 or samples.shape[0] < 2:
        raise ValueError(f"samples must be shaped (K, B, C, H, W) with K >= 2, got {tuple(samples.shape)}")
    q = torch.tensor([(1 - coverage) / 2, (1 + coverage) / 2], dtype=samples.dtype, device=samples.device)
    lower, upper = torch.quantile(samples, q, dim=0)
    return PosteriorStats(samples.mean(0), samples.std(0), lower, upper)


def pixel_risk(lower, upper, x, lam=0.0) -> torch.Tensor:
    """L(λ) per image: the fraction of pixels of x outside [l − λ, u + λ], a (B,) tensor."""
    outside = (x < lower - lam) | (x > upper + lam)
    return outside.flatten(1).float().mean(1)


def mean_length(lower, upper, lam=0.0) -> float:
    """Mean interval length (u − l + 2λ) over all pixels and images."""
    return (upper - lower + 2 * torch.as_tensor(lam).to(lower)).mean().item()


def _binom_cdf(k: int, n: int, p: float) -> float:
    from scipy.stats import binom

    return float(binom.cdf(k, n, p))


def hoeffding_bentkus_ucb(risk: float, n: int, delta: float) -> float:
    """R̂⁺: the largest R with p_HB(R̂; R) ≥ δ, for a mean R̂ of n losses in [0, 1] (Bates et al.
    2021, Sec. 3.1, Hoeffding–Bentkus):

        p_HB = min(exp(−n·h(min(R̂, R), R)), e·P(Binom(n, R) ≤ ⌈n·R̂⌉)),
        h(a, b) = a·log(a/b) + (1 − a)·log((1 − a)/(1 − b)).

    Found by bisection on R ∈ [R̂, 1] (p_HB decreases in R there)."""

    def p_value(r):
        a = min(risk, r)
        h = (a * math.log(a / r) if a > 0 else 0.0) + (
            (1 - a) * math.log((1 - a) / (1 - r)) if a < 1 else 0.0
        )
        return min(math.exp(-n * h), math.e * _binom_cdf(math.ceil(n * risk - 1e-9), n, r))

    if risk >= 1:
        return 1.0
    lo, hi = risk, 1.0 - 1e-12
    if p_value(hi) >= delta:
        return 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if p_value(mid) >= delta else (lo, mid)
    return hi


def default_grid(lower, upper, x, size: int = 400) -> torch.Tensor:
    """λ from −min half-width (intervals shrink to a point) to the largest miss (risk 0)."""
    lo = -((upper - lower) / 2).min().item()
    hi = torch.maximum(lower - x, x - upper).max().clamp_min(0).item()
    return torch.linspace(lo, hi + 1e-6, size, dtype=torch.float64)


def rcps(
    lower,
    upper,
    x,
    *,
    epsilon: float = 0.1,
    delta: float = 0.1,
    lambdas: torch.Tensor | None = None,
    offset=0.0,
) -> Calibration:
    """RCPS with one scalar λ on calibration images (module notes). ``lower``, ``upper``, ``x``
    are (n, C, H, W); ``offset`` (a float or per-pixel map) is added to λ (K-RCPS's λ_k).
    Raises a ValueError when no λ of the grid meets the bound (too few calibration images for ε
    and δ)."""
    epsilon, delta = _unit(epsilon, "epsilon"), _unit(delta, "delta")
    n = x.shape[0]
    grid = sorted((default_grid(lower - offset, upper + offset, x) if lambdas is None else lambdas).tolist())

    def bound(j):
        return hoeffding_bentkus_ucb(pixel_risk(lower, upper, x, grid[j] + offset).mean().item(), n, delta)

    # R̂(λ) and so R̂⁺(λ) are non-increasing in λ: the walk down from the largest λ that stops
    # at the first bound ≥ ε is a bisection for the smallest grid index with bound < ε
    if bound(len(grid) - 1) >= epsilon:
        raise ValueError(
            f"no λ reaches an upper confidence bound below epsilon={epsilon} with "
            f"n={n} calibration images at delta={delta}: use more images or a larger epsilon"
        )
    lo, hi = -1, len(grid) - 1  # bound(lo) ≥ ε (or lo = −1), bound(hi) < ε
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if bound(mid) >= epsilon else (lo, mid)
    lam = grid[hi] + offset if isinstance(offset, torch.Tensor) else grid[hi] + float(offset)
    return Calibration(lam, epsilon, delta, n, bound(hi))


def group_offsets(
    lower, upper, x, groups: torch.Tensor, epsilon: float, *, grid_size: int = 200
) -> torch.Tensor:
    """Per-group λ_k minimising the mean interval length Σ_k n_k·λ_k subject to the empirical
    risk Σ_k (n_k/d)·r_k(λ_k) ≤ ε (r_k the miss rate of group k): for a multiplier μ each
    group minimises n_k·λ_k + μ·d·r̄_k(λ_k)·(n_k/d) over its grid, and μ is bisected until the
    risk constraint holds. ``groups`` is an (H, W) map of ids 0…K−1. Returns the (H, W) map λ."""
    ids = groups.unique()
    curves = []
    for gid in ids.tolist():
        mask = groups == gid
        lo, hi, xt = lower[..., mask], upper[..., mask], x[..., mask]
        grid = default_grid(lo, hi, xt, grid_size)
        miss = torch.stack([((xt < lo - g) | (xt > hi + g)).double().mean() for g in grid.tolist()])
        curves.append((mask, mask.double().mean().item(), grid, miss))

    def solve_for(mu):
        lams, risk = [], 0.0
        for _mask, share, grid, miss in curves:
            j = int(torch.argmin(grid + mu * miss))
            lams.append(grid[j].item())
            risk += share * miss[j].item()
        return lams, risk

    lo_mu, hi_mu = 0.0, 1.0
    while solve_for(hi_mu)[1] > epsilon and hi_mu < 1e12:
        hi_mu *= 2
    for _ in range(50):
        mid = (lo_mu + hi_mu) / 2
        lo_mu, hi_mu = (mid, hi_mu) if solve_for(mid)[1] > epsilon else (lo_mu, mid)
    lams = solve_for(hi_mu)[0]
    out = torch.zeros(groups.shape, dtype=lower.dtype, device=lower.device)
    for (mask, *_), lam in zip(curves, lams):
        out[mask] = lam
    return out


def width_groups(lower, upper, k: int) -> torch.Tensor:
    """(H, W) ids of K groups of pixels with equal counts, by quantiles of the mean interval
    width over images and channels (pixels with alike uncertainty share a λ_k)."""
    width = (upper - lower).mean((0, 1))
    edges = torch.quantile(width.flatten().double(), torch.linspace(0, 1, k + 1, dtype=torch.float64)[1:-1])
    return torch.bucketize(width.double(), edges)


def krcps(
    lower,
    upper,
    x,
    *,
    epsilon: float = 0.1,
    delta: float = 0.1,
    k: int = 4,
    split: float = 0.5,
    groups: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Calibration:
    """K-RCPS (module notes): per-group offsets on a random ``split`` of the calibration images,
    then RCPS for a scalar β over λ_k + β on the rest; groups by :func:`width_groups` on the
    first part unless given."""
    n = x.shape[0]
    perm = torch.randperm(n, generator=generator)
    m = int(round(split * n))
    if not 0 < m < n:
        raise ValueError(f"split={split} leaves an empty part of the {n} calibration images")
    a, b = perm[:m], perm[m:]
    if groups is None:
        groups = width_groups(lower[a], upper[a], k)
    offsets = group_offsets(lower[a], upper[a], x[a], groups.to(lower.device), epsilon)
    return rcps(lower[b], upper[b], x[b], epsilon=epsilon, delta=delta, offset=offsets)


__all__ = [
    "PosteriorStats",
    "Calibration",
    "posterior_samples",
    "sample_statistics",
    "pixel_risk",
    "mean_length",
    "hoeffding_bentkus_ucb",
    "rcps",
    "krcps",
    "group_offsets",
    "width_groups",
]
