"""Parallel-beam computed tomography: y = R x / ‖R‖ + n, sparse-view and limited-angle."""

from __future__ import annotations

import torch
from deepinv.physics import Tomography

from ._common import (
    as_device,
    check_dtype,
    check_generator,
    image_size,
    noise_model,
    positive_int,
    real_number,
)
from .linalg import power_iteration


class ParallelBeamCT(Tomography):
    r"""deepinv :class:`~deepinv.physics.Tomography` (parallel beam, whole square image, exact
    adjoint by autograd through the Radon transform) scaled to unit norm, whose ``A_dagger`` is
    the filtered back-projection (ramp filter) instead of an iterative least-squares solve.

    The scaling ‖R‖₂ is computed here by a seeded power iteration (deepinv's own normalisation
    draws its start vector from the global generator and only runs in float32).
    """

    def __init__(self, angles: torch.Tensor, img_width: int, *, device, dtype, **kwargs):
        super().__init__(
            angles=angles,
            img_width=img_width,
            circle=False,
            adjoint_via_backprop=True,
            fbp_interpolate_boundary=True,
            normalize=False,
            device=device,
            dtype=dtype,
            **kwargs,
        )
        norm = power_iteration(
            self, (1, img_width, img_width), max_iter=30, tol=1e-3, dtype=dtype, device=device
        )
        # the attributes deepinv's Tomography uses for a normalised operator
        self.register_buffer("operator_norm", torch.tensor(norm, dtype=dtype, device=device))
        self.normalize = True
        self._auto_grad_adjoint_fn = None  # the cached autograd adjoint predates the scaling

    def A_dagger(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        """Filtered back-projection of the sinogram ``y`` (an approximate inverse, exact as the
        number of views over 180° grows; not the least-squares pseudo-inverse)."""
        return self.fbp(y)


def ct(
    *,
    img_size,
    views: int | None = None,
    angle_range: float = 180.0,
    noise_sigma: float = 0.0,
    poisson: float | None = None,
    generator: torch.Generator | None = None,
    device=None,
    dtype=torch.float32,
):
    r"""Parallel-beam CT operator y = R x / ‖R‖₂ + n on square (N, N) gray images.

    The sinogram has ``views`` projections at angles θ_k = k·angle_range/views degrees,
    k = 0…views−1, each with ⌈√2·N⌉ detector cells (the whole square image is projected).
    ``A_dagger`` (and :func:`fbp`) is the filtered back-projection.

    Parameters
    ----------
    img_size : int N or (N, N).
    views : number of projection angles (sparse-view CT when small); default N.
    angle_range : angular range in degrees, in (0, 180]; below 180 gives limited-angle CT.
    noise_sigma, poisson : Gaussian noise std and Poisson gain on the normalised sinogram.
    generator : draws the measurement noise.
    """
    check_generator(generator)
    device, dtype = as_device(device), check_dtype(dtype)
    h, w = image_size(img_size)
    if h != w:
        raise ValueError(f"img_size must be square for CT, got {(h, w)}")
    views = h if views is None else positive_int(views, "views")
    angle_range = real_number(angle_range, "angle_range", low=0.0, high=180.0, low_open=True)
    angles = torch.arange(views, dtype=dtype, device=device) * (angle_range / views)
    return ParallelBeamCT(
        angles,
        h,
        device=device,
        dtype=dtype,
        noise_model=noise_model(noise_sigma, poisson, generator, device),
    )


def angular_range(operator: Tomography) -> float:
    """The angular range in degrees covered by the views of a CT ``operator`` (views ×
    spacing, as :func:`ct` places them: 180 for a full scan, below for limited-angle CT)."""
    angles = operator.angles.reshape(-1)
    if angles.numel() < 2:
        return 0.0
    return float(angles.numel() * (angles[1] - angles[0]).abs())


def fbp(operator, y: torch.Tensor) -> torch.Tensor:
    """Filtered back-projection of the sinogram ``y`` by the CT ``operator`` (from :func:`ct`)."""
    if not isinstance(operator, Tomography):
        raise TypeError(
            f"operator must be a CT operator (deepinv Tomography, e.g. from ct()), "
            f"got {type(operator).__name__}"
        )
    return operator.fbp(y)
