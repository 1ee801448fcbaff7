"""Priors: every prior is a Denoiser; see :mod:`.base` for the capability protocols."""

from .base import Denoiser, Diffusion, Energy, Prediction, Proximal, require
from .channels import PerChannel
from .composite import CompositePrior, composite
from .denoisers import Decorrelated, DenoiserPrior
from .diffusion import DiffusionPrior
from .gaussian import GaussianPrior
from .guidance import APG, CFG, CFGpp
from .lpn import LPN
from .registry import available, load
from .tv import TV
from .tv3d import TV3D

__all__ = [
    "Denoiser",
    "Diffusion",
    "Energy",
    "Prediction",
    "Proximal",
    "require",
    "DenoiserPrior",
    "DiffusionPrior",
    "GaussianPrior",
    "APG",
    "CFG",
    "CFGpp",
    "LPN",
    "TV",
    "available",
    "load",
    "PerChannel",
    "TV3D",
    "CompositePrior",
    "composite",
    "Decorrelated",
]
