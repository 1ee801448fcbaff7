"""Operators on 3D volumes (B, C, D, H, W): slice-by-slice 2D operators (CT of a volume) and 3D blur.

A volume is a (B, C, D, H, W) float tensor in [0, 1]: B volumes of D slices of (C, H, W)
images. :class:`SliceWise` applies any 2D deepinv ``LinearPhysics`` to every slice (the slices
go through the 2D operator as one batch, ``chunk`` slices at a time to bound memory), so the
volume operator is block diagonal, A = diag(A₂, …, A₂), with ‖A‖ = ‖A₂‖ and the adjoint the
2D adjoint slice by slice. Its measurements are (B, C', D, …): the 2D measurement of slice d at
index d of the third axis. :func:`volume_ct` is parallel-beam CT of a volume (sparse-view or
limited-angle, the 2D :func:`~restorekit.operators.ct` on every axial slice); :class:`Blur3D`
a separable Gaussian blur along z, y, x with zero boundary (self-adjoint).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from deepinv.physics import LinearPhysics

from ._common import check_generator, noise_model, positive_int, real_number
from .ct import ct


def check_volume(x, name: str = "x") -> None:
    """x must be a floating (B, C, D, H, W) tensor; a ValueError/TypeError names ``name``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor volume, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (e.g. float32), got {x.dtype}")
    if x.ndim != 5:
        raise ValueError(
            f"{name} must be a volume shaped (B, C, D, H, W), got shape {tuple(x.shape)}"
            " (add the depth axis, e.g. x[:, :, None] for one slice)"
        )


def to_slices(x: torch.Tensor) -> torch.Tensor:
    """(B, C, D, …) → (B·D, C, …): every slice as one batch item (slice d of volume b at b·D + d)."""
    b, c, d = x.shape[:3]
    return x.transpose(1, 2).reshape(b * d, c, *x.shape[3:])


def from_slices(s: torch.Tensor, depth: int) -> torch.Tensor:
    """(B·D, C, …) → (B, C, D, …), the inverse of :func:`to_slices`."""
    return s.reshape(-1, depth, *s.shape[1:]).transpose(1, 2)


def map_slices(fn, x: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """fn applied to the slices of the volume x (B, C, D, …), ``chunk`` slices per call (all
    at once if None); fn maps a (n, C, …) batch of slices to a (n, C', …) batch."""
    check_volume(x)
    s = to_slices(x)
    n = s.shape[0] if chunk is None else chunk
    return from_slices(torch.cat([fn(s[i : i + n]) for i in range(0, s.shape[0], n)]), x.shape[2])


class SliceWise(LinearPhysics):
    """A 2D linear operator applied to every axial slice of (B, C, D, H, W) volumes.

    ``volumes = True`` marks an operator whose images are volumes (the input checks expect 5-D).

    Parameters
    ----------
    operator : a 2D deepinv ``LinearPhysics`` (e.g. from :func:`~restorekit.operators.ct`).
    chunk : slices per call of the 2D operator (None: all slices of the batch at once).

    The volume operator adds the 2D operator's noise model to the stacked measurements.
    ``slice_operator`` is the 2D operator (its norm is the volume operator's norm).
    """

    volumes = True

    def __init__(self, operator, *, chunk: int | None = None):
        if not isinstance(operator, LinearPhysics):
            raise TypeError(f"operator must be a 2D deepinv LinearPhysics, got {type(operator).__name__}")
        super().__init__(noise_model=operator.noise_model)
        self.slice_operator = operator
        self.chunk = None if chunk is None else positive_int(chunk, "chunk")

    def A(self, x, **kwargs):
        return map_slices(self.slice_operator.A, x, self.chunk)

    def A_adjoint(self, y, **kwargs):
        return map_slices(self.slice_operator.A_adjoint, y, self.chunk)

    def A_dagger(self, y, **kwargs):
        return map_slices(self.slice_operator.A_dagger, y, self.chunk)


def volume_ct(*, chunk: int | None = None, **ct_options) -> SliceWise:
    """Parallel-beam CT of a volume: the 2D :func:`~restorekit.operators.ct` (unit norm,
    ``views`` angles over ``angle_range`` degrees: sparse-view when few, limited-angle below
    180) on every axial slice of (B, 1, D, N, N) volumes; sinograms are (B, 1, D, views,
    detectors). ``A_dagger`` is the slice-wise filtered back-projection.

    ``ct_options`` are the keyword arguments of :func:`~restorekit.operators.ct` (``img_size``,
    ``views``, ``angle_range``, ``noise_sigma``, ``poisson``, ``generator``, ``device``,
    ``dtype``), checked there; ``chunk`` is the number of slices per call of the 2D operator."""
    return SliceWise(ct(**ct_options), chunk=chunk)


def gaussian_kernel_1d(sigma: float, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian of std ``sigma`` pixels on ±⌈3σ⌉ (a single 1 when sigma is 0)."""
    r = math.ceil(3 * sigma)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-(t**2) / (2 * sigma**2)) if sigma > 0 else torch.ones(1, dtype=torch.float64)
    return (k / k.sum()).to(device=device, dtype=dtype)


class Blur3D(LinearPhysics):
    """Separable Gaussian blur of (B, C, D, H, W) volumes with stds (σ_z, σ_y, σ_x) in pixels,
    zero boundary ('same' size). The kernel is symmetric, so A is self-adjoint: Aᴴ = A."""

    volumes = True

    def __init__(
        self,
        sigma: tuple[float, float, float],
        *,
        noise_sigma: float = 0.0,
        generator: torch.Generator | None = None,
        device=None,
        dtype=torch.float32,
    ):
        check_generator(generator)
        if not (isinstance(sigma, (tuple, list)) and len(sigma) == 3):
            raise TypeError(
                f"sigma must be a triple (sigma_z, sigma_y, sigma_x) of stds in pixels, got {sigma!r}"
            )
        sig = [real_number(s, "sigma", low=0.0) for s in sigma]
        device = torch.device("cpu" if device is None else device)
        super().__init__(noise_model=noise_model(noise_sigma, None, generator, device))
        for axis, s in zip("zyx", sig):
            self.register_buffer(f"kernel_{axis}", gaussian_kernel_1d(s, dtype=dtype, device=device))

    def A(self, x, **kwargs):
        check_volume(x)
        b, c = x.shape[:2]
        v = x.reshape(b * c, 1, *x.shape[2:])
        for dim, k in zip((2, 3, 4), (self.kernel_z, self.kernel_y, self.kernel_x)):
            shape = [1, 1, 1, 1, 1]
            shape[dim] = k.numel()
            pad = [0, 0, 0, 0, 0, 0]
            pad[2 * (4 - dim)] = pad[2 * (4 - dim) + 1] = k.numel() // 2
            v = F.conv3d(F.pad(v, pad), k.to(v).reshape(shape))
        return v.reshape(x.shape)

    def A_adjoint(self, y, **kwargs):
        return self.A(y)


def blur3d(
    sigma=(1.0, 1.0, 1.0), *, noise_sigma: float = 0.0, generator=None, device=None, dtype=torch.float32
) -> Blur3D:
    """A 3D Gaussian blur operator (see :class:`Blur3D`) with measurement noise std ``noise_sigma``."""
    return Blur3D(tuple(sigma), noise_sigma=noise_sigma, generator=generator, device=device, dtype=dtype)
