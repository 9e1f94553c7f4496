"""dipddpm: Deep Image Prior denoising with DDPM-staged targets and a stop that needs no clean image."""

__version__ = "0.1.0"

from .api import denoise, mask_operator
from .config import DenoiserConfig, LowNoiseOptimiser, StagingConfig, StoppingConfig, TileSettings
from .engine import TrainConfig
from .errors import InputError
from .nets import NetConfig
from .noise import add_gaussian_noise, estimate_sigma
from .noise_fit import NoiseFit, fit_noise_model
from .noise_models import NOISE_MODELS
from .physics import Downsample, PixelMask, from_deepinv
from .restore import STOPPERS, DIPDenoiser, restore_tensor
from .result import Restoration

__all__ = [
    "NOISE_MODELS",
    "STOPPERS",
    "DIPDenoiser",
    "DenoiserConfig",
    "Downsample",
    "InputError",
    "LowNoiseOptimiser",
    "TileSettings",
    "NetConfig",
    "NoiseFit",
    "PixelMask",
    "Restoration",
    "StagingConfig",
    "StoppingConfig",
    "TrainConfig",
    "add_gaussian_noise",
    "denoise",
    "estimate_sigma",
    "fit_noise_model",
    "from_deepinv",
    "mask_operator",
    "restore_tensor",
]
