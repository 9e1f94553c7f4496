"""Noise: synthetic Gaussian noise, the moments of clipped Gaussian noise, and noise-level estimation."""

from __future__ import annotations

import numpy as np
import pywt
from scipy.ndimage import uniform_filter
from scipy.special import ndtr

from .errors import InputError

__all__ = ["add_gaussian_noise", "clipped_noise_moments", "estimate_sigma", "SIGMA_ESTIMATE_REL_ERROR"]

SIGMA_ESTIMATE_REL_ERROR = 0.1
"""Relative error of :func:`estimate_sigma` allowed for in the range of the PSNR estimate.

Measured on centre crops of the tuning images (first 4 of Kodak24 and of CBSD68) with clipped,
8-bit noise: mean errors within +6%, the largest +15% at sigma = 15/255 where fine texture reads
as noise, at most 8% at 25/255 and 50/255 (``python benchmarks/sigma_estimates.py``, table in
``benchmarks/results/sigma_estimates.md``)."""

_MAD_TO_SIGMA = 0.6744897501960817  # median |N(0, 1)|


def add_gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator, clip: bool = True,
                       bits: int | None = 8) -> np.ndarray:
    """Additive white Gaussian noise, optionally clipped to [0, 1] and quantised.

    ``y = Q(clip(x + sigma * n))`` with ``n ~ N(0, I)`` and ``Q`` rounding to ``2**bits - 1``
    levels; this is how an 8-bit noisy image file is made.

    Parameters
    ----------
    image : numpy.ndarray
        Clean image, floats in [0, 1].
    sigma : float
        Noise standard deviation (image units, e.g. ``25/255``).
    rng : numpy.random.Generator
        Source of the noise.
    clip : bool
        Clip to [0, 1].
    bits : int or None
        Quantise to this many bits (``None``: keep floats). Requires ``clip``.

    Returns
    -------
    numpy.ndarray
        float64 noisy image of the same shape.
    """
    if sigma < 0:
        raise ValueError("sigma must be non-negative")
    noisy = np.asarray(image, dtype=np.float64) + sigma * rng.standard_normal(np.shape(image))
    if clip:
        noisy = np.clip(noisy, 0.0, 1.0)
    if bits is not None:
        if not clip:
            raise ValueError("quantising needs clipping")
        levels = 2**bits - 1
        noisy = np.round(noisy * levels) / levels
    return noisy


def clipped_noise_moments(x: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and second moment of ``e = clip(x + sigma n, 0, 1) - x`` for ``n ~ N(0, 1)``.

    With ``a = -x / sigma``, ``b = (1 - x) / sigma``, ``Phi``/``phi`` the normal CDF/PDF:

    ``E e   = -x Phi(a) + (1 - x)(1 - Phi(b)) + sigma (phi(a) - phi(b))``

    ``E e^2 = x^2 Phi(a) + (1 - x)^2 (1 - Phi(b)) + sigma^2 (Phi(b) - Phi(a) - b phi(b) + a phi(a))``

    Far from 0 and 1 these are 0 and ``sigma^2``; near them clipping shrinks the noise.

    Parameters
    ----------
    x : numpy.ndarray
        Clean values in [0, 1].
    sigma : float
        Standard deviation before clipping, > 0.

    Returns
    -------
    mean, second_moment : numpy.ndarray
    """
    x = np.asarray(x, dtype=np.float64)
    a, b = -x / sigma, (1.0 - x) / sigma
    pdf_a, pdf_b = np.exp(-0.5 * a * a) / np.sqrt(2 * np.pi), np.exp(-0.5 * b * b) / np.sqrt(2 * np.pi)
    cdf_a, cdf_b = ndtr(a), ndtr(b)
    mean = -x * cdf_a + (1.0 - x) * (1.0 - cdf_b) + sigma * (pdf_a - pdf_b)
    second = x * x * cdf_a + (1.0 - x) ** 2 * (1.0 - cdf_b) + sigma**2 * (cdf_b - cdf_a - b * pdf_b + a * pdf_a)
    return mean, second


def _clipped_std_ratio(x: np.ndarray, sigma: float) -> np.ndarray:
    mean, second = clipped_noise_moments(x, sigma)
    return np.sqrt(np.maximum(second - mean * mean, 0.0)) / sigma


def _estimate_plane(plane: np.ndarray, iterations: int = 4) -> float:
    if min(plane.shape) == 1:  # a single row or column: the 1-D detail band
        line = plane.ravel()
        detail = np.abs(pywt.dwt(line, "db2", mode="symmetric")[1])
        return float(np.median(detail)) / _MAD_TO_SIGMA
    _, (_, _, diagonal) = pywt.dwt2(plane, "db2", mode="symmetric")
    detail = np.abs(diagonal)
    sigma = float(np.median(detail)) / _MAD_TO_SIGMA
    if sigma <= 0:
        return 0.0
    local_mean = uniform_filter(plane, size=5, mode="reflect")
    rows = np.clip(2 * np.arange(detail.shape[0]) - 1, 0, plane.shape[0] - 1)
    cols = np.clip(2 * np.arange(detail.shape[1]) - 1, 0, plane.shape[1] - 1)
    level = local_mean[np.ix_(rows, cols)]
    for _ in range(iterations):
        ratio = _clipped_std_ratio(level, sigma)
        keep = ratio > 0.5
        if keep.sum() < 16:
            break
        sigma = float(np.median(detail[keep] / ratio[keep])) / _MAD_TO_SIGMA
    return sigma


def estimate_sigma(image: np.ndarray, channel_axis: int | None = None) -> float:
    """Noise standard deviation of an image in [0, 1], allowing for clipping at 0 and 1.

    Donoho's MAD estimator on the finest diagonal wavelet band (db2),
    ``sigma = median(|HH|) / 0.6745``, refined: each coefficient is divided by the factor by
    which clipping shrinks the noise at its local grey level (5x5 mean, see
    :func:`clipped_noise_moments`), coefficients where clipping removes more than half of the
    noise are dropped, and the median is taken again (4 rounds). Without the correction the
    plain estimator reads about 9% low at sigma = 50/255 on clipped 8-bit images. Channels are
    estimated separately and averaged.

    Parameters
    ----------
    image : numpy.ndarray
        Noisy image, floats in [0, 1].
    channel_axis : int or None
        Axis of colour channels, or None for a grey image.

    Returns
    -------
    float
        Estimated sigma in image units (0 for a noise-free image).
    """
    image = np.asarray(image, dtype=np.float64)
    planes = [image] if channel_axis is None else list(np.moveaxis(image, channel_axis, 0))
    if planes[0].size < 4:
        raise InputError(f"a {'x'.join(map(str, planes[0].shape))} image is too small to estimate its noise "
                         f"level; give sigma")
    return float(np.mean([_estimate_plane(p) for p in planes]))
