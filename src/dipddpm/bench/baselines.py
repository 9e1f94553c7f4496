"""Classical denoisers given the noise level, as benchmark baselines (scikit-image; BM3D if installed)."""

from __future__ import annotations

import numpy as np
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet

__all__ = ["bayes_shrink", "tv_chambolle", "nl_means", "bm3d_denoise", "bm3d_available"]


def bayes_shrink(noisy: np.ndarray, sigma: float | None, channel_axis: int | None) -> np.ndarray:
    """Wavelet BayesShrink, soft thresholds, YCbCr for colour (scikit-image ``denoise_wavelet``).

    ``sigma=None`` lets scikit-image estimate it.
    """
    return denoise_wavelet(noisy, sigma=sigma, method="BayesShrink", mode="soft", rescale_sigma=True,
                           channel_axis=channel_axis, convert2ycbcr=channel_axis is not None)


def tv_chambolle(noisy: np.ndarray, sigma: float, channel_axis: int | None) -> np.ndarray:
    """Total variation (Chambolle) with weight ``sigma`` (in [0, 1] units)."""
    return denoise_tv_chambolle(noisy, weight=sigma, channel_axis=channel_axis)


def nl_means(noisy: np.ndarray, sigma: float, channel_axis: int | None) -> np.ndarray:
    """Non-local means, fast mode, 5x5 patches, 13x13 search window, ``h = 0.6 sigma``.

    These are scikit-image's documented settings for fast mode with a known sigma.
    """
    return denoise_nl_means(noisy, h=0.6 * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6,
                            channel_axis=channel_axis)


def bm3d_available() -> bool:
    """Whether the optional ``bm3d`` package (non-commercial licence) is installed."""
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


def bm3d_denoise(noisy: np.ndarray, sigma: float, channel_axis: int | None) -> np.ndarray:
    """BM3D (CBM3D for colour) from the optional ``bm3d`` package."""
    import bm3d

    if channel_axis is None:
        return np.clip(bm3d.bm3d(noisy, sigma_psd=sigma), 0, 1)
    return np.clip(bm3d.bm3d_rgb(noisy, sigma_psd=sigma), 0, 1)
