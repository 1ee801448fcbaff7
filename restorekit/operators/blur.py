"""Convolution (blur) operators: Gaussian, random motion, or a user kernel."""

from __future__ import annotations

import math

import torch
from deepinv.physics import Blur, BlurFFT
from deepinv.physics.functional import gaussian_blur

from ._common import (
    as_device,
    check_dtype,
    check_generator,
    draw,
    image_size,
    noise_model,
    positive_int,
    real_number,
)

KINDS = ("gaussian", "motion")
#: Side of the motion kernel when ``size`` is not given.
MOTION_SIZE = 15


class CircularBlur(BlurFFT):
    """deepinv :class:`~deepinv.physics.BlurFFT` (y = k ⊛ x, periodic boundary) whose image size
    is fixed on first use.

    BlurFFT diagonalises the convolution with the FFT of the kernel zero-padded to the image
    size, which gives exact ``A_dagger`` and ``prox_l2`` through the SVD. That FFT depends on
    the image size; when the operator was built without ``img_size`` it is computed from the
    first tensor the operator sees and recomputed whenever a tensor of another spatial size
    arrives. The kernel is stored once as (1, 1, h, w) and broadcast over channels.
    """

    img_size: tuple[int, ...] | None  # set by deepinv's BlurFFT.__init__, then by _fit

    def __init__(self, kernel: torch.Tensor, img_size=None, **kwargs):
        super().__init__(img_size=None, filter=None, **kwargs)
        self.filter = kernel.to(self._device_holder.device)
        if img_size is not None:
            self._fit(torch.empty(image_size(img_size), device=self.filter.device))

    def _fit(self, t: torch.Tensor) -> None:
        hw = tuple(t.shape[-2:])
        if self.img_size is not None and tuple(self.img_size[-2:]) == hw:
            return
        kh, kw = self.filter.shape[-2:]
        if kh > hw[0] or kw > hw[1]:
            raise ValueError(f"blur kernel of size {(kh, kw)} is larger than the image {hw}")
        self.img_size = (1,) + hw
        params = self.get_filter_parameters(self.img_size, self.filter, device=self.filter.device)
        self.mask, self.angle = params["mask"], params["angle"]

    def A(self, x, **kwargs):
        self._fit(x)
        return super().A(x, **kwargs)

    def A_adjoint(self, y, **kwargs):
        self._fit(y)
        return super().A_adjoint(y, **kwargs)

    def A_adjoint_A(self, x, **kwargs):
        self._fit(x)
        return super().A_adjoint_A(x, **kwargs)

    def A_A_adjoint(self, y, **kwargs):
        self._fit(y)
        return super().A_A_adjoint(y, **kwargs)

    def A_dagger(self, y, **kwargs):
        self._fit(y)
        return super().A_dagger(y, **kwargs)

    def prox_l2(self, z, y, gamma, **kwargs):
        self._fit(y)
        return super().prox_l2(z, y, gamma, **kwargs)


def gaussian_kernel(sigma: float = 2.0, size: int | None = None, *, dtype=torch.float32) -> torch.Tensor:
    """Isotropic Gaussian kernel exp(−r²/2σ²)/Z, (size, size), size = 2⌈3σ⌉+1 by default."""
    sigma = real_number(sigma, "sigma", low=0.0, low_open=True)
    size = 2 * math.ceil(3 * sigma) + 1 if size is None else positive_int(size, "size")
    return gaussian_blur(psf_size=(size, size), sigma=(sigma, sigma), dtype=check_dtype(dtype))[0, 0]


def motion_kernel(
    size: int = MOTION_SIZE, *, generator: torch.Generator | None = None, dtype=torch.float32
) -> torch.Tensor:
    """Random camera-shake kernel (size, size): a smooth random-walk trajectory, summing to 1.

    The camera moves along a path of length ≈ size with a unit velocity whose direction
    turns by N(0, 0.35²) radians per step (a random walk of the heading, as in the trajectory
    model of Boracchi & Foi, "Modeling the performance of image restoration from motion blur",
    IEEE TIP 2012, simplified). The path is centred, shrunk if needed to fit the kernel,
    and rasterised with bilinear weights (equal time per step), then normalised to sum 1.
    """
    size = positive_int(size, "size", minimum=3)
    check_generator(generator)
    n = 4 * size
    # 1. heading: a random start angle plus a Gaussian random walk of turns
    start = draw(torch.rand, (1,), generator, device="cpu", dtype=torch.float64) * 2 * math.pi
    turns = draw(torch.randn, (n,), generator, device="cpu", dtype=torch.float64) * 0.35
    heading = start + torch.cumsum(turns, 0)
    # 2. positions: unit-speed steps of length size / n, centred on the kernel
    steps = torch.stack([torch.sin(heading), torch.cos(heading)], 1) * (size / n)
    path = torch.cumsum(steps, 0)
    path = path - (path.amax(0) + path.amin(0)) / 2
    radius = (size - 1) / 2 - 1e-6
    path = path * min(1.0, radius / path.abs().max().item()) + (size - 1) / 2
    # 3. bilinear splatting of every point of the path onto the grid
    kernel = torch.zeros(size, size, dtype=torch.float64)
    base = path.floor().long().clamp(0, size - 2)
    frac = path - base
    for dr in (0, 1):
        for dc in (0, 1):
            w = (frac[:, 0] if dr else 1 - frac[:, 0]) * (frac[:, 1] if dc else 1 - frac[:, 1])
            kernel.index_put_((base[:, 0] + dr, base[:, 1] + dc), w, accumulate=True)
    return (kernel / kernel.sum()).to(check_dtype(dtype))


def check_kernel(kernel, dtype=torch.float32) -> torch.Tensor:
    """A user kernel: a real 2D non-negative tensor summing to 1 (within 1 %, then renormalised)."""
    if not isinstance(kernel, torch.Tensor):
        raise TypeError(f"kernel must be a torch.Tensor, got {type(kernel).__name__}")
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be 2D (h, w), got shape {tuple(kernel.shape)}")
    if not kernel.is_floating_point():
        raise TypeError(f"kernel must be a floating-point tensor, got {kernel.dtype}")
    if not torch.isfinite(kernel).all() or (kernel < 0).any():
        raise ValueError("kernel must be finite and non-negative")
    total = kernel.sum().item()
    if abs(total - 1.0) > 1e-2:
        raise ValueError(
            f"kernel must sum to 1 (a blur keeps the mean intensity), got sum {total:.4g};"
            " pass kernel / kernel.sum()"
        )
    return (kernel / total).to(check_dtype(dtype))


def blur(
    kind="gaussian",
    *,
    sigma: float | None = None,
    size: int | None = None,
    circular: bool = True,
    img_size=None,
    noise_sigma: float = 0.0,
    poisson: float | None = None,
    generator: torch.Generator | None = None,
    device=None,
    dtype=torch.float32,
):
    r"""Blur operator y = k ∗ x + n.

    Parameters
    ----------
    kind : ``"gaussian"``, ``"motion"`` (a random camera-shake kernel drawn with ``generator``,
        see :func:`motion_kernel`) or a 2D non-negative kernel tensor summing to 1.
    sigma : Gaussian standard deviation in pixels (only for ``"gaussian"``; default 2.0).
    size : kernel side (odd recommended); default 2⌈3σ⌉+1 for Gaussian, 15 for motion.
    circular : ``True``: periodic boundary, applied by FFT (:class:`CircularBlur`, exact
        pseudo-inverse and prox through the SVD); ``False``: reflect boundary, direct convolution
        (deepinv ``Blur(padding="reflect")``, whose ``A_adjoint`` is its exact transpose).
    img_size : int or (H, W). Optional: the FFT of a circular blur is built for this size, or
        for the size of the first image the operator sees if ``None``.
    noise_sigma, poisson : Gaussian noise std and Poisson gain (see ``noise_model``).
    generator : draws the motion kernel and the measurement noise.
    device, dtype : where the kernel lives and its precision (float32 or float64).

    Examples
    --------
    >>> import torch
    >>> op = blur("gaussian", sigma=1.0)
    >>> x = torch.full((1, 1, 16, 16), 0.5)
    >>> torch.allclose(op.A(x), x)          # the kernel sums to 1: flat images pass unchanged
    True
    >>> xr = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> yr = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    >>> lhs, rhs = (op.A(xr) * yr).sum(), (xr * op.A_adjoint(yr)).sum()
    >>> bool(torch.isclose(lhs, rhs, rtol=1e-5))   # ⟨Ax, y⟩ = ⟨x, Aᵀy⟩
    True
    """
    check_generator(generator)
    device = as_device(device)
    if isinstance(kind, torch.Tensor):
        if sigma is not None or size is not None:
            raise ValueError("sigma and size apply to 'gaussian'/'motion' kernels, not to a kernel tensor")
        kernel = check_kernel(kind, dtype)
    elif kind == "gaussian":
        kernel = gaussian_kernel(2.0 if sigma is None else sigma, size, dtype=dtype)
    elif kind == "motion":
        if sigma is not None:
            raise ValueError("sigma applies to kind='gaussian' only, not to 'motion'")
        kernel = motion_kernel(MOTION_SIZE if size is None else size, generator=generator, dtype=dtype)
    else:
        raise ValueError(f"kind must be one of {KINDS} or a kernel tensor, got {kind!r}")
    if not isinstance(circular, bool):
        raise TypeError(f"circular must be a bool, got {type(circular).__name__}")
    noise = noise_model(noise_sigma, poisson, generator, device)
    kernel = kernel[None, None].to(device)
    if not circular:
        if img_size is not None:
            image_size(img_size)
        return Blur(filter=kernel, padding="reflect", noise_model=noise, device=device)
    return CircularBlur(kernel, img_size, noise_model=noise, device=device)
