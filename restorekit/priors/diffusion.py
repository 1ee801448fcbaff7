"""Diffusion priors from diffusers UNets: ε-prediction, Tweedie, and a diffusion model as a denoiser.

A :class:`DiffusionPrior` wraps a diffusers ``UNet2DModel`` and its VP noise schedule. It has
the Diffusion capability (``predict``) used by the diffusion solvers, and the Denoiser
capability (``denoise``: one Tweedie step at the matching timestep), so PnP and RED can use it.

Class-conditional models (``UNet2DModel(num_class_embeds=K)``) follow one convention, shared
with our training script: labels 0 … K − 2 are the ``num_classes = K − 1`` real classes and the
last index ``null_class = K − 1`` is the "no class" label used for unconditional predictions
(classifier-free guidance trains it by label dropout). ``cond=None`` means the null class.
"""

from __future__ import annotations

import os
from typing import cast

import torch
import torch.nn.functional as F

from . import schedule
from .base import Prediction
from .schedule import abar_at, eps_from_v, eps_from_x0, timestep_for_sigma, tweedie_x0

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


class DiffusionPrior(torch.nn.Module):
    """A VP diffusion model ε_θ(u_t, t) as a prior on images in [0, 1].

    Parameters
    ----------
    unet : a diffusers ``UNet2DModel`` (or a module with the same call
        ``unet(u, t, class_labels=...).sample`` and a ``config`` with ``down_block_types``).
    scheduler_or_alphas_cumprod : a diffusers scheduler (its ``alphas_cumprod`` and
        ``config.prediction_type`` are read) or the ā_t tensor itself.
    prediction_type : ``"epsilon"``, ``"v_prediction"`` or ``"sample"``; overrides the
        scheduler's. Defaults to the scheduler's, or ``"epsilon"`` for a bare tensor.

    Inputs of any size are padded (reflect) to the UNet's size multiple
    2^(len(down_block_types) − 1) and cropped back; computation keeps the input's device and
    dtype (the network runs in its own dtype, e.g. fp16/bf16). Network calls run without an
    autograd graph unless grad is enabled and the input requires it (DPS backpropagates).
    The prior does not count network evaluations; solvers do (``Result.nfe``).
    """

    def __init__(
        self, unet: torch.nn.Module, scheduler_or_alphas_cumprod, *, prediction_type: str | None = None
    ):
        super().__init__()
        if isinstance(scheduler_or_alphas_cumprod, torch.Tensor):
            alphas_cumprod = scheduler_or_alphas_cumprod
            default_type = "epsilon"
        elif hasattr(scheduler_or_alphas_cumprod, "alphas_cumprod"):
            alphas_cumprod = scheduler_or_alphas_cumprod.alphas_cumprod
            default_type = scheduler_or_alphas_cumprod.config.prediction_type
        else:
            raise TypeError(
                "scheduler_or_alphas_cumprod must be a diffusers scheduler or a tensor "
                f"of ā_t, got {type(scheduler_or_alphas_cumprod).__name__}"
            )
        alphas_cumprod = torch.as_tensor(alphas_cumprod).detach().to("cpu", torch.float64)
        if alphas_cumprod.ndim != 1 or not ((alphas_cumprod > 0) & (alphas_cumprod < 1)).all():
            raise ValueError(
                "alphas_cumprod must be a 1-D tensor with values in (0, 1), got shape "
                f"{tuple(alphas_cumprod.shape)}"
            )
        prediction_type = prediction_type or default_type
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        self.unet = unet.eval()
        self.alphas_cumprod = alphas_cumprod
        self.prediction_type = prediction_type
        config = getattr(unet, "config", None)
        self.size_multiple = 2 ** (len(config.down_block_types) - 1) if config is not None else 1
        num_embeds = getattr(config, "num_class_embeds", None) if config is not None else None
        self.num_classes = None if num_embeds is None else num_embeds - 1
        self.null_class = None if num_embeds is None else num_embeds - 1

    @property
    def num_train_timesteps(self) -> int:
        return self.alphas_cumprod.numel()

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str,
        subfolder: str | None = None,
        *,
        device=None,
        dtype: torch.dtype | None = None,
        prediction_type: str | None = None,
        **hub_kwargs,
    ) -> DiffusionPrior:
        """Load with diffusers' own ``from_pretrained``, from a local directory or a hub id.

        Layouts: a saved pipeline (``unet/`` and ``scheduler/`` subfolders, as written by
        ``DDPMPipeline.save_pretrained``), or one directory holding both the UNet
        (``config.json`` + weights) and ``scheduler_config.json``. ``subfolder`` names the
        UNet's folder when it is elsewhere; the scheduler is then looked up in the sibling
        ``scheduler/`` folder or beside the UNet. ``hub_kwargs`` go to diffusers (e.g.
        ``local_files_only=True``, ``revision``).
        """

        if not isinstance(path_or_id, (str, os.PathLike)):
            raise TypeError(
                f"path_or_id must be a directory or a hub id string, got {type(path_or_id).__name__}"
            )
        path_or_id = os.fspath(path_or_id)
        if (os.path.isabs(path_or_id) or path_or_id.startswith(".")) and not os.path.isdir(path_or_id):
            raise ValueError(f"path_or_id {path_or_id!r} is not a directory")
        try:
            return cls._from_pretrained(
                path_or_id,
                subfolder,
                device=device,
                dtype=dtype,
                prediction_type=prediction_type,
                **hub_kwargs,
            )
        except (OSError, ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(
                f"path_or_id {path_or_id!r}: not a loadable diffusers UNet + scheduler "
                f"(corrupt or incomplete checkpoint?): {first}"
            ) from None

    @classmethod
    def _from_pretrained(cls, path_or_id, subfolder, *, device, dtype, prediction_type, **hub_kwargs):
        from diffusers import DDPMScheduler, UNet2DModel

        if subfolder is None and os.path.isdir(path_or_id):
            subfolder = "unet" if os.path.isdir(os.path.join(path_or_id, "unet")) else None
        elif subfolder is None:
            subfolder = "unet"
        # the dtype is given to diffusers (it knows which modules must stay float32); without
        # accelerate, low_cpu_mem_usage=False is what diffusers falls back to anyway
        unet_kwargs = {
            "low_cpu_mem_usage": False,
            **({"torch_dtype": dtype} if dtype is not None else {}),
            **hub_kwargs,
        }
        try:
            unet = UNet2DModel.from_pretrained(path_or_id, subfolder=subfolder, **unet_kwargs)
        except OSError:
            if os.path.isdir(path_or_id) or subfolder != "unet":
                raise
            unet = UNet2DModel.from_pretrained(path_or_id, **unet_kwargs)  # hub repo with a root UNet
            subfolder = None
        candidates = ["scheduler", subfolder] if subfolder is not None else [None, "scheduler"]
        scheduler, errors = None, []
        for sub in candidates:
            try:
                scheduler = DDPMScheduler.from_pretrained(path_or_id, subfolder=sub, **hub_kwargs)
                break
            except OSError as e:
                errors.append(f"{sub or '.'}: {e}")
        if scheduler is None:
            raise ValueError(f"no scheduler config found for {path_or_id!r}: " + "; ".join(errors))
        if device is not None:
            unet = unet.to(device=device)
        return cls(unet, scheduler, prediction_type=prediction_type)

    # ----- conversions -------------------------------------------------------------------
    to_model = staticmethod(schedule.to_model)
    to_image = staticmethod(schedule.to_image)

    def reset(self) -> None:
        """No per-run state."""

    # ----- network -----------------------------------------------------------------------
    def class_labels(self, cond, batch: int, device) -> torch.Tensor | None:
        """``cond`` (None, an int or a (B,) tensor of class indices) → LongTensor (B,) or None."""
        if self.num_classes is None:
            if cond is not None:
                raise ValueError(f"cond must be None for an unconditional diffusion prior, got {cond!r}")
            return None
        assert self.null_class is not None  # set together with num_classes in __init__
        if cond is None:
            cond = self.null_class
        labels = torch.as_tensor(cond, device=device).long().reshape(-1).expand(batch)
        if ((labels < 0) | (labels > self.null_class)).any():
            raise ValueError(
                f"class labels must be in [0, {self.null_class}] (the last index is "
                f"the null class), got {labels.tolist()}"
            )
        return labels

    def model_eps(self, u_t: torch.Tensor, t, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """ε̂(u_t, t) for u_t (B, C, H, W) in model space and t an int or a (B,) LongTensor,
        converted from the network's v/sample prediction when needed."""
        b, c, h, w = u_t.shape
        if self.num_classes is not None and class_labels is None:
            class_labels = self.class_labels(None, b, u_t.device)
        tt = torch.as_tensor(t, device=u_t.device).long().reshape(-1).expand(b)
        m = self.size_multiple
        ph, pw = (-h) % m, (-w) % m
        u_in = u_t
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            u_in = F.pad(u_t, (0, pw, 0, ph), mode=mode)
        net_dtype = getattr(self.unet, "dtype", u_t.dtype)
        with torch.set_grad_enabled(torch.is_grad_enabled() and u_t.requires_grad):
            out = self.unet(u_in.to(net_dtype), tt, class_labels=class_labels).sample
        out = out[:, :c, :h, :w].to(u_t.dtype)  # first C channels: learned-variance models add C more
        if self.prediction_type == "epsilon":
            return out
        abar = abar_at(self.alphas_cumprod, tt, u_t)
        if self.prediction_type == "v_prediction":
            return eps_from_v(u_t, out, abar)
        return eps_from_x0(u_t, out, abar)

    def predict(self, u_t: torch.Tensor, t, cond=None) -> Prediction:
        """Tweedie estimate û0 and ε̂ at integer timestep ``t`` (model space)."""
        eps = self.model_eps(u_t, t, self.class_labels(cond, u_t.shape[0], u_t.device))
        x0 = tweedie_x0(u_t, eps, abar_at(self.alphas_cumprod, _as_t(t, u_t), u_t))
        return Prediction(x0=x0, eps=eps, eps_renoise=eps)

    def denoise(self, x: torch.Tensor, sigma, cond=None) -> torch.Tensor:
        """One Tweedie step as a Gaussian denoiser at level ``sigma`` (:func:`tweedie_denoise`)."""
        return tweedie_denoise(self, x, sigma, cond)


def tweedie_denoise(prior, x: torch.Tensor, sigma, cond=None) -> torch.Tensor:
    """A diffusion prior (anything with ``alphas_cumprod`` and ``predict``, guided wrappers
    included) as a Gaussian denoiser at level ``sigma`` (image units, float or (B,)): in model
    space the noise std is 2σ; take t with s_t/a_t closest to 2σ, feed u_t = a_t·(2x − 1), and
    map û0 back to [0, 1]."""
    sig = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu()
    t = timestep_for_sigma(prior.alphas_cumprod, schedule.model_sigma(sig)).reshape(-1).expand(x.shape[0])
    abar = abar_at(prior.alphas_cumprod, t, x)
    u_t = abar.sqrt() * schedule.to_model(x)
    return schedule.to_image(prior.predict(u_t, t, cond).x0)


def conv_unet(
    channels: int = 1,
    widths: tuple[int, ...] = (32, 64),
    *,
    layers_per_block: int = 1,
    num_class_embeds: int | None = None,
    sample_size: int = 64,
) -> torch.nn.Module:
    """A fully convolutional diffusers ``UNet2DModel`` (no attention anywhere, DownBlock2D /
    UpBlock2D), the architecture of the house priors; randomly initialised from torch's global
    generator (seed it in the calling script for a reproducible network)."""
    from diffusers import UNet2DModel

    n = len(widths)
    return cast(
        torch.nn.Module,
        UNet2DModel(
            sample_size=sample_size,
            in_channels=channels,
            out_channels=channels,
            block_out_channels=tuple(widths),
            down_block_types=("DownBlock2D",) * n,
            up_block_types=("UpBlock2D",) * n,
            layers_per_block=layers_per_block,
            norm_num_groups=min(8, widths[0]),
            add_attention=False,
            num_class_embeds=num_class_embeds,
        ),
    )


def _as_t(t, like: torch.Tensor):
    """An int stays an int; a tensor of timesteps becomes a (B,) LongTensor."""
    if isinstance(t, torch.Tensor):
        return t.reshape(-1).expand(like.shape[0])
    return int(t)
