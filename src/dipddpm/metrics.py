"""Image quality metrics with the conventions every report of this project states.

PSNR: ``10 log10(1 / MSE)`` over all pixels and channels of images in [0, 1].
SSIM: Wang et al. (2004) settings -- Gaussian window with sigma 1.5, population covariance,
``data_range = 1`` -- averaged over channels (scikit-image's implementation).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["PSNR_CONVENTION", "SSIM_CONVENTION", "psnr", "ssim", "tensor_psnr"]

PSNR_CONVENTION = "PSNR in dB over all pixels and channels, images in [0, 1] (data_range = 1)"
SSIM_CONVENTION = ("SSIM with Wang et al. settings (Gaussian window sigma 1.5, population covariance, "
                   "data_range = 1), mean over channels")


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio ``10 log10(1 / mean((image - reference)^2))`` in dB.

    Parameters
    ----------
    image, reference : numpy.ndarray
        Same shape, values in [0, 1].

    Returns
    -------
    float
    """
    from skimage.metrics import peak_signal_noise_ratio  # imported here: it brings scipy.stats (0.4 s per process)

    return float(peak_signal_noise_ratio(np.asarray(reference, np.float64), np.asarray(image, np.float64),
                                         data_range=1.0))


def tensor_psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """:func:`psnr` for tensors, ``10 log10(1 / mean((image - reference)^2))``, accumulated in float64.

    Parameters
    ----------
    image, reference : torch.Tensor
        Same shape, values in [0, 1].

    Returns
    -------
    float
        ``inf`` when the two are equal.
    """
    mse = float(torch.mean((image.double() - reference.double()) ** 2))
    return -10.0 * math.log10(mse) if mse > 0 else math.inf


def ssim(image: np.ndarray, reference: np.ndarray, channel_axis: int | None = None) -> float:
    """Structural similarity with the settings of Wang et al. (2004).

    Parameters
    ----------
    image, reference : numpy.ndarray
        Same shape, values in [0, 1].
    channel_axis : int or None
        Axis of colour channels, None for grey.

    Returns
    -------
    float
    """
    from skimage.metrics import structural_similarity

    image = np.asarray(image, np.float64)
    reference = np.asarray(reference, np.float64)
    return float(structural_similarity(reference, image, data_range=1.0, channel_axis=channel_axis,
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False))
