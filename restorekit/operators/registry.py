"""Every operator by name, with defaults for a given image size (used by tests and the CLI)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .blur import blur
from .ct import ct
from .inpainting import inpainting
from .mri import mri
from .simple import denoising, super_resolution


@dataclass(frozen=True)
class Spec:
    """A named operator: its builder, the preset arguments, a one-line description, and whether
    it handles gray images only (builders without a ``channels`` argument otherwise act on any
    number of channels)."""

    build: Callable
    description: str
    preset: Mapping = field(default_factory=lambda: MappingProxyType({}))
    gray_only: bool = False


def _spec(build, description, gray_only=False, **preset) -> Spec:
    return Spec(build, description, MappingProxyType(preset), gray_only)


BUILDERS: dict[str, Spec] = {
    "denoising": _spec(denoising, "identity with Gaussian noise (sigma 0.1)"),
    "gaussian-blur": _spec(blur, "Gaussian blur, std 2 px, periodic boundary", kind="gaussian"),
    "gaussian-blur-reflect": _spec(
        blur, "Gaussian blur, std 2 px, reflect boundary", kind="gaussian", circular=False
    ),
    "motion-blur": _spec(blur, "random camera-shake blur, 15x15 kernel, periodic boundary", kind="motion"),
    "inpainting-random": _spec(inpainting, "keep 50% of the pixels at random", mask="random"),
    "inpainting-box": _spec(inpainting, "remove a box of half the image side", mask="box"),
    "sr-x2": _spec(super_resolution, "x2 super-resolution, bicubic antialiasing", factor=2),
    "sr-x4": _spec(super_resolution, "x4 super-resolution, bicubic antialiasing", factor=4),
    "ct": _spec(ct, "parallel-beam CT, N views over 180 degrees", gray_only=True),
    "ct-sparse": _spec(
        ct, "sparse-view parallel-beam CT, 30 views over 180 degrees", gray_only=True, views=30
    ),
    "ct-limited": _spec(
        ct, "limited-angle parallel-beam CT, N views over 90 degrees", gray_only=True, angle_range=90.0
    ),
    "mri": _spec(mri, "single-coil Cartesian MRI, x4 acceleration, 8% centre", gray_only=True),
    "mri-multicoil": _spec(mri, "4-coil Cartesian MRI, x4 acceleration, 8% centre", gray_only=True, coils=4),
}


def make(name: str, img_size, channels: int = 1, **kwargs):
    """Build the operator ``name`` of :data:`BUILDERS` for images of ``img_size`` (int or (H, W))
    with ``channels`` channels; ``kwargs`` override the preset (e.g. ``noise_sigma``, ``generator``)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown operator {name!r}; choose one of {', '.join(BUILDERS)}")
    spec = BUILDERS[name]
    params = inspect.signature(spec.build).parameters
    args = dict(spec.preset)
    if "img_size" in params:
        args["img_size"] = img_size
    if "channels" in params:
        args["channels"] = channels
    elif spec.gray_only and channels != 1:
        raise ValueError(f"operator {name!r} supports channels=1 only, got channels={channels}")
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise TypeError(
            f"operator {name!r} does not accept {', '.join(unknown)}; its arguments are {', '.join(params)}"
        )
    args.update(kwargs)
    return spec.build(**args)
