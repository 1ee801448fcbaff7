"""Priors: every prior is a Denoiser; see :mod:`.base` for the capability protocols."""
from .base import Denoiser, Diffusion, Energy, Prediction, Proximal, require
from .denoisers import DenoiserPrior
from .diffusion import DiffusionPrior
from .gaussian import GaussianPrior
from .tv import TV

__all__ = ["Denoiser", "Diffusion", "Energy", "Prediction", "Proximal", "require", "DenoiserPrior",
           "DiffusionPrior", "GaussianPrior", "TV"]
