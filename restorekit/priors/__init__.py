"""Priors: TV, denoisers (and, as they land, LPN and diffusion); see :mod:`.base` for capabilities."""
from .base import Denoiser, Diffusion, Energy, Prediction, Proximal, require
from .denoisers import DenoiserPrior
from .tv import TV

__all__ = ["Denoiser", "Diffusion", "Energy", "Prediction", "Proximal", "require", "DenoiserPrior", "TV"]
