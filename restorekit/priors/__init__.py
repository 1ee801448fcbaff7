"""Priors: capabilities in base.py; every prior is at least a Denoiser."""
from .base import Denoiser, Diffusion, Energy, Prediction, Proximal, require
from .diffusion import DiffusionPrior
from .gaussian import GaussianPrior
