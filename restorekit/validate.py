"""Boundary checks: shapes, dtypes, devices, ranges. Raised on entry, never in inner loops."""

from __future__ import annotations

import math

import torch

FLOAT_DTYPES = (torch.float32, torch.float64)
GRAY_CHOICES = ("per-channel", "luminance", "a colour prior")


def dtype_hint(dtype: torch.dtype) -> str:
    """How to convert a tensor of ``dtype`` into a float image in [0, 1] (for error messages)."""
    if dtype in (torch.uint8, torch.uint16, torch.int16, torch.int32):
        top = {torch.uint8: 255, torch.uint16: 65535}.get(dtype, "its maximum")
        return f"; images are floats in [0, 1]: convert with x.float() / {top}"
    if dtype in (torch.float16, torch.bfloat16):
        return "; convert with x.float() (networks may run in half precision inside)"
    if dtype.is_complex:
        return "; images are real: pass x.real, x.abs() or the channels of torch.view_as_real(x)"
    return ""


def operator_device(operator) -> torch.device | None:
    """The device of the first tensor an operator holds (mask, kernel, coil maps), if any."""
    for t in list(operator.buffers()) + list(operator.parameters()):
        return t.device
    return None


def check_image(x, name: str, *, in_range: bool = False) -> None:
    """x must be a finite floating (B, C, H, W) tensor; with ``in_range`` also within [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating-point tensor (float32 or float64), got {x.dtype}{dtype_hint(x.dtype)}"
        )
    if x.ndim != 4:
        raise ValueError(f"{name} must be shaped (B, C, H, W), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    if in_range:
        lo, hi = x.min().item(), x.max().item()
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(
                f"{name} must have values in [0, 1], got range [{lo:.3g}, {hi:.3g}]"
                " (convert e.g. uint8 images with x / 255)"
            )


def check_problem(y, operator, *, x_init=None, x_true=None, generator=None, prior=None) -> None:
    """Validate a solver's inputs: y, the operator, the optional x_init / x_true, and that the
    prior's channels match the images'."""
    from deepinv.physics import LinearPhysics, Physics

    nonlinear = isinstance(operator, Physics) and getattr(operator, "linear", True) is False
    if not isinstance(operator, LinearPhysics) and not nonlinear:
        raise TypeError(
            "operator must be a deepinv LinearPhysics (e.g. from restorekit.operators), "
            "or a non-linear deepinv Physics marked linear = False (see "
            f"restorekit.operators.nonlinear), got {type(operator).__name__}"
        )
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"y must be a floating-point tensor (float32 or float64), got {y.dtype}{dtype_hint(y.dtype)}"
        )
    if y.ndim < 4:
        raise ValueError(
            f"y must be batched, (B, C, H, W) or the operator's (B, …) measurement "
            f"shape, got shape {tuple(y.shape)}; add a batch dimension with y[None]"
        )
    if not torch.isfinite(y).all():
        raise ValueError("y contains NaN or Inf values")
    dev = operator_device(operator)
    if dev is not None and dev != y.device:
        raise ValueError(f"y is on {y.device} but the operator is on {dev}; move one with .to()")
    shape = torch.Size((y.shape[0], *operator.img_shape)) if nonlinear else check_measurement(y, operator)
    for name, x in (("x_init", x_init), ("x_true", x_true)):
        if x is None:
            continue
        check_image(x, name, in_range=True)
        if x.device != y.device:
            raise ValueError(f"{name} is on {x.device} but y is on {y.device}")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{name} has batch size {x.shape[0]} but y has {y.shape[0]}")
        if x.shape != shape:
            raise ValueError(
                f"{name} must have the shape of the operator's images, {tuple(shape)}, got {tuple(x.shape)}"
            )
    if prior is not None:
        check_prior_channels(prior, shape[1])
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator is not None and generator.device.type != y.device.type:
        raise ValueError(
            f"generator is on {generator.device} but y is on {y.device}; pass "
            f"torch.Generator(device={str(y.device)!r})"
        )


def _noise_scale(operator, peak: float) -> float:
    """A generous bound on |noise| of the operator's noise model at signal level ``peak``."""
    model = getattr(operator, "noise_model", None)
    sigma = float(getattr(model, "sigma", 0.0) or 0.0)
    gain = float(getattr(model, "gain", 0.0) or 0.0)
    return 10 * sigma + 10 * math.sqrt(gain * peak) + gain


def check_measurement(y, operator) -> torch.Size:
    """y must be something the operator produces from images in [0, 1]; returns the image shape.

    The shape test is A(Aᵀy) having y's shape. The range test: any x in [0, 1] gives
    |A x| ≤ max|A| 1 for the non-negative operators (blur, masks, decimation, CT) and for the
    orthonormal DFT; y may exceed that by its noise. A y twice as large (plus 10 noise stds) is
    not a measurement of an image in [0, 1] — typically 8-bit data not divided by 255.
    """
    with torch.no_grad():
        try:
            x = operator.A_adjoint(y)
            ones = torch.ones_like(x)
            back = operator.A(ones)
        except (RuntimeError, ValueError, IndexError) as e:
            raise ValueError(
                f"y of shape {tuple(y.shape)} is not a measurement of this operator "
                f"({type(operator).__name__}): {str(e).splitlines()[0]}"
            ) from None
        if back.shape != y.shape or x.ndim != (5 if getattr(operator, "volumes", False) else 4):
            raise ValueError(
                f"y of shape {tuple(y.shape)} is not a measurement of this operator "
                f"({type(operator).__name__}), which maps images {tuple(x.shape)} to "
                f"{tuple(back.shape)}"
            )
        peak = back.abs().max().item()
        limit = 2 * peak + _noise_scale(operator, peak)
        top = y.abs().max().item()
    if top > limit:
        raise ValueError(
            f"y has values up to {top:.4g} but measurements of images in [0, 1] by this "
            f"operator stay within ±{peak:.3g} plus noise; restorekit works on images in "
            "[0, 1] (divide 8-bit data by 255, 16-bit data by 65535)"
        )
    return x.shape


def prior_channels(prior) -> int | None:
    """The number of image channels a prior takes, or None when it takes any (TV, Gaussian,
    a per-channel wrapper, a network of unknown kind)."""
    from .priors.dncnn import BiasFreeDenoiser, DnCNN, MultiLevelDnCNN

    if hasattr(prior, "channels"):
        return prior.channels
    inner = getattr(prior, "prior", None) or getattr(prior, "high", None)
    if inner is not None:  # guidance wrappers, composite priors
        return prior_channels(inner)
    unet = getattr(prior, "unet", None)
    if unet is not None and hasattr(getattr(unet, "config", None), "in_channels"):
        return int(unet.config.in_channels)
    config = getattr(prior, "config", None)
    if isinstance(config, dict) and "channels" in config:  # LPN
        return int(config["channels"])
    net = getattr(prior, "net", None)
    if isinstance(net, (DnCNN, BiasFreeDenoiser, MultiLevelDnCNN)):
        return 1
    return getattr(net, "channels", None)


def check_prior_channels(prior, channels: int) -> None:
    """Refuse a gray prior on colour images (listing the choices) and a colour prior on gray."""
    want = prior_channels(prior)
    if want is None or want == channels:
        return
    name = getattr(prior, "name", type(prior).__name__)
    if want == 1:
        raise ValueError(
            f"prior {name!r} takes gray (1-channel) images but the images have {channels} channels; "
            f"choose one of {', '.join(GRAY_CHOICES)}: restorekit.priors.PerChannel(prior) "
            "(per-channel, each channel restored alone), a gray image "
            "(restorekit.data.load_image(..., color=False), luminance) or a colour prior "
            "(e.g. restorekit.priors.load('diffusion-rgb'))"
        )
    raise ValueError(
        f"prior {name!r} takes {want}-channel images but the images have {channels} "
        "channels; load the image in colour (color=True) or use a gray prior"
    )
