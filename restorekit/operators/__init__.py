"""Forward operators y = A(x) + noise, all deepinv ``LinearPhysics``, with named builders.

op = blur("gaussian", sigma=2.0, noise_sigma=0.01)
op = make("sr-x4", img_size=256, channels=3, noise_sigma=0.01)
x = cg_solve(op, z + gamma * op.A_adjoint(y), gamma=gamma)   # prox of gamma/2·‖Ax − y‖²
"""

from .blur import CircularBlur, blur, check_kernel, gaussian_kernel, motion_kernel
from .ct import ParallelBeamCT, ct, fbp
from .inpainting import box_mask, inpainting, random_mask
from .linalg import cg_solve, harmonic_fill, operator_norm, truncated_pinv
from .mri import RealMRI, cartesian_mask, coil_maps, mri
from .nonlinear import PhaseRetrieval, SpatiallyVaryingBlur, fienup, linear_ramp_weights
from .registry import BUILDERS, Spec, make
from .simple import denoising, super_resolution
from .volume import Blur3D, SliceWise, blur3d, volume_ct

__all__ = [
    "blur",
    "inpainting",
    "super_resolution",
    "denoising",
    "ct",
    "mri",
    "fbp",
    "cg_solve",
    "operator_norm",
    "truncated_pinv",
    "harmonic_fill",
    "BUILDERS",
    "Spec",
    "make",
    "CircularBlur",
    "ParallelBeamCT",
    "RealMRI",
    "gaussian_kernel",
    "motion_kernel",
    "check_kernel",
    "random_mask",
    "box_mask",
    "cartesian_mask",
    "coil_maps",
    "volume_ct",
    "blur3d",
    "SliceWise",
    "Blur3D",
]
from .noise import noise_level, noise_variance  # noqa: E402  (the one reader of an operator's noise)

__all__ += ["noise_level", "noise_variance"]
__all__ += ["PhaseRetrieval", "SpatiallyVaryingBlur", "fienup", "linear_ramp_weights"]
