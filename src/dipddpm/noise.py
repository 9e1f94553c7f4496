"""Noise: synthetic Gaussian noise, the moments of clipped Gaussian noise, and noise-level estimation."""

from __future__ import annotations

import numpy as np
import pywt
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import uniform_filter
from scipy.special import gammaincinv, ndtr

from .errors import InputError

__all__ = ["add_gaussian_noise", "clipped_mean_inverse", "clipped_mean_slope", "clipped_noise_moments",
           "estimate_sigma", "estimate_sigma_pca", "estimate_sigma_weak_texture", "estimate_sigma_wavelet",
           "pca_noise_variance", "touches_bounds", "SIGMA_METHODS", "SIGMA_ESTIMATE_REL_ERROR"]

SIGMA_METHODS = ("wavelet", "pca", "weak-texture")
"""Values of ``method`` accepted by :func:`estimate_sigma`."""

SIGMA_ESTIMATE_REL_ERROR = 0.1
"""Relative error of :func:`estimate_sigma` allowed for in the range of the PSNR estimate.

Measured with the default method (weak-texture) on 256 px centre crops of 191 images of six sets
(``benchmarks/results/sigma_estimates.md``), clipped 8-bit noise: 90th percentile of the absolute
error 5.7% at sigma = 15/255, 4.3% at 25/255, 3.2% at 50/255, 13.4% at 5/255 (grain of the clean
images)."""

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


def clipped_mean_inverse(values: np.ndarray, sigma: float, points: int = 4097) -> np.ndarray:
    """The clean value whose clipped noisy version has mean ``values``: the inverse of ``m(x) = E clip(x + sigma n)``.

    ``m(x) = x + E e(x)`` with ``E e`` from :func:`clipped_noise_moments`; ``m`` increases strictly from
    ``m(0) > 0`` to ``m(1) < 1``, so a fit of clipped data (which estimates ``m(x)``, not ``x``) is mapped
    back to ``x`` by ``m^{-1}``, tabulated on ``points`` values of ``x`` and interpolated linearly. Values
    below ``m(0)`` map to 0 and above ``m(1)`` to 1 (Foi, "Clipped noisy images: heteroskedastic modeling and
    practical denoising", Signal Processing 2009, applies this after denoising).

    Parameters
    ----------
    values : numpy.ndarray
        Estimates of ``E clip(x + sigma n, 0, 1)``.
    sigma : float
        Noise standard deviation before clipping, > 0.
    points : int
        Size of the table.

    Returns
    -------
    numpy.ndarray
        Estimates of ``x``, in [0, 1], the shape of ``values``.
    """
    grid = np.linspace(0.0, 1.0, points)
    means = grid + clipped_noise_moments(grid, sigma)[0]
    return np.interp(np.asarray(values, dtype=np.float64), means, grid)


def clipped_mean_slope(x: np.ndarray, sigma: float) -> np.ndarray:
    """``m'(x) = Phi((1 - x) / sigma) - Phi(-x / sigma)``: the slope of the clipped mean ``m(x) = E clip(x + sigma n)``.

    It is the probability that ``x + sigma n`` is not clipped: 1 far from 0 and 1, about 1/2 at them. An error
    ``d`` in an estimate of ``m(x)`` becomes about ``d / m'(x)`` after :func:`clipped_mean_inverse`.

    Parameters
    ----------
    x : numpy.ndarray
        Clean values in [0, 1].
    sigma : float
        Noise standard deviation before clipping, > 0.

    Returns
    -------
    numpy.ndarray
    """
    x = np.asarray(x, dtype=np.float64)
    return ndtr((1.0 - x) / sigma) - ndtr(-x / sigma)


def touches_bounds(values: np.ndarray) -> bool:
    """Whether an image in [0, 1] has values at exactly 0 or 1: the mark of clipping (8-bit noisy images have
    many). Unclipped noisy data never sits exactly on a bound."""
    values = np.asarray(values)
    return bool(values.size and values.min() >= 0 and values.max() <= 1 and ((values == 0) | (values == 1)).any())


def _clipped_std_ratio(x: np.ndarray, sigma: float) -> np.ndarray:
    mean, second = clipped_noise_moments(x, sigma)
    return np.sqrt(np.maximum(second - mean * mean, 0.0)) / sigma


def _estimate_plane(plane: np.ndarray, iterations: int = 4, clip_correction: bool = True) -> float:
    if min(plane.shape) == 1:  # a single row or column: the 1-D detail band
        line = plane.ravel()
        detail = np.abs(pywt.dwt(line, "db2", mode="symmetric")[1])
        return float(np.median(detail)) / _MAD_TO_SIGMA
    _, (_, _, diagonal) = pywt.dwt2(plane, "db2", mode="symmetric")
    detail = np.abs(diagonal)
    sigma = float(np.median(detail)) / _MAD_TO_SIGMA
    if sigma <= 0 or not clip_correction:
        return max(sigma, 0.0)
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


def _planes(image: np.ndarray, channel_axis: int | None) -> list[np.ndarray]:
    image = np.asarray(image, dtype=np.float64)
    if channel_axis is None:
        return [image]
    if not -image.ndim <= channel_axis < image.ndim:
        raise InputError(f"channel_axis {channel_axis} is out of range for a {image.ndim}-D image")
    return list(np.moveaxis(image, channel_axis, 0))


def _too_small(plane: np.ndarray, what: str) -> InputError:
    return InputError(f"a {'x'.join(map(str, plane.shape))} image is too small to estimate its noise level "
                      f"({what}); give sigma")


def _check_plane(plane: np.ndarray, patch: int) -> None:
    if plane.ndim != 2:
        raise InputError(f"expected a grey (H, W) image or channel_axis for colour, got shape {plane.shape}")
    h, w = plane.shape
    if h < patch or w < patch or (h - patch + 1) * (w - patch + 1) < 2 * patch * patch:
        raise _too_small(plane, f"needs at least {2 * patch * patch} overlapping {patch}x{patch} patches")


def _was_clipped(plane: np.ndarray, clip_correction: bool | None) -> bool:
    """Whether to correct for clipping: as asked, or (``None``) when the values lie in [0, 1], for values
    outside cannot come from clipped noise."""
    if clip_correction is None:
        return bool(plane.min() >= 0.0 and plane.max() <= 1.0)
    return bool(clip_correction)


def _clipping_correction(sigma_eff: float, level: np.ndarray, iterations: int = 6) -> float:
    """The sigma before clipping whose clipped noise has mean variance ``sigma_eff**2`` at these grey levels.

    Solves ``sigma**2 * mean(r(level, sigma)**2) = sigma_eff**2`` by fixed-point iteration, with ``r`` the ratio of
    clipped to unclipped noise std (:func:`clipped_noise_moments`). Values of ``level`` outside [0, 1] are clipped.
    """
    if sigma_eff <= 0 or level.size == 0:
        return max(sigma_eff, 0.0)
    level = np.clip(level, 0.0, 1.0)
    sigma = sigma_eff
    for _ in range(iterations):
        attenuation = float(np.mean(_clipped_std_ratio(level, sigma) ** 2))
        if attenuation < 0.25:  # more than half of the noise clipped away: do not extrapolate further
            attenuation = 0.25
        sigma = sigma_eff / np.sqrt(attenuation)
    return float(sigma)


def _patch_moments(plane: np.ndarray, patch: int, keep: np.ndarray | None = None,
                   chunk: int = 1 << 15) -> tuple[int, np.ndarray, np.ndarray]:
    """Count, sum and sum of outer products of the (selected) overlapping ``patch x patch`` patches, in chunks."""
    windows = sliding_window_view(plane, (patch, patch))  # (H-p+1, W-p+1, p, p), a view
    rows, cols = windows.shape[:2]
    dim = patch * patch
    count, total, outer = 0, np.zeros(dim), np.zeros((dim, dim))
    step = max(1, chunk // cols)
    for r0 in range(0, rows, step):
        block = windows[r0:r0 + step].reshape(-1, dim)
        if keep is not None:
            block = block[keep[r0:r0 + step].ravel()]
        count += block.shape[0]
        total += block.sum(axis=0)
        outer += block.T @ block
    return count, total, outer


def _patch_eigenvalues(plane: np.ndarray, patch: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Eigenvalues, in decreasing order, of the covariance of the (selected) overlapping patches."""
    count, total, outer = _patch_moments(plane, patch, keep)
    mean = total / count
    covariance = outer / count - np.outer(mean, mean)
    return np.linalg.eigvalsh(covariance)[::-1]


def pca_noise_variance(eigenvalues: np.ndarray) -> float:
    """Noise variance from a patch-covariance spectrum by the rule of Chen, Zhu & Heng (ICCV 2015).

    With the eigenvalues sorted ``l_1 >= l_2 >= ... >= l_r``, the eigenvalues of pure noise form the
    tail ``S_i = {l_i, ..., l_r}`` and are spread symmetrically about their mean. The estimate is

    ``sigma^2 = tau_i = mean(S_i)`` for the smallest ``i`` (the largest tail) with ``mean(S_i) = median(S_i)``,

    where "mean equals median" is tested as: as many members of ``S_i`` lie above ``tau_i`` as below it
    (a tail of one or two values always passes, so there is always an answer).

    Parameters
    ----------
    eigenvalues : numpy.ndarray
        Eigenvalues of a covariance matrix, any order.

    Returns
    -------
    float
        The noise variance (not its square root), at least 0.
    """
    values = np.sort(np.asarray(eigenvalues, dtype=np.float64).ravel())[::-1]
    if values.size == 0:
        raise InputError("no eigenvalues to estimate a noise variance from")
    for i in range(values.size):
        tail = values[i:]
        tau = tail.mean()
        if np.count_nonzero(tail > tau) == np.count_nonzero(tail < tau):
            return float(max(tau, 0.0))
    return float(max(values[-1], 0.0))


def _local_levels(plane: np.ndarray, size: int) -> np.ndarray:
    return uniform_filter(plane, size=size, mode="reflect")


def estimate_sigma_pca(image: np.ndarray, channel_axis: int | None = None, patch: int = 8,
                       clip_correction: bool | None = None) -> float:
    """Noise standard deviation by the PCA of all overlapping patches (Chen, Zhu & Heng, ICCV 2015).

    For each channel, the covariance ``Sigma_y = Sigma_x + sigma^2 I`` of the ``d x d`` overlapping
    patches is diagonalised. A natural image's patches lie near a low-dimensional subspace, so
    its smallest eigenvalues are those of noise alone, ``sigma^2``; their number is chosen by the
    mean = median rule of :func:`pca_noise_variance`. With ``clip_correction``, ``sigma`` is then
    raised for clipping at 0 and 1: it solves ``sigma^2 mean_p r(x_p, sigma)^2 = sigma_hat^2`` with
    ``r`` the std ratio of clipped to unclipped noise at the ``d x d`` local mean ``x_p`` of each
    pixel (:func:`clipped_noise_moments`). Channels are estimated separately and their sigmas averaged.

    Parameters
    ----------
    image : numpy.ndarray
        Noisy image, floats in [0, 1].
    channel_axis : int or None
        Axis of colour channels, or None for a grey image.
    patch : int
        Patch side ``d``.
    clip_correction : bool or None
        Allow for clipping at 0 and 1; None: only when every value lies in [0, 1] (values outside mean
        the noise was not clipped).

    Returns
    -------
    float
        Estimated sigma in image units.
    """
    sigmas = []
    for plane in _planes(image, channel_axis):
        _check_plane(plane, patch)
        sigma = np.sqrt(pca_noise_variance(_patch_eigenvalues(plane, patch)))
        if _was_clipped(plane, clip_correction):
            sigma = _clipping_correction(sigma, _local_levels(plane, patch))
        sigmas.append(sigma)
    return float(np.mean(sigmas))


def _gradient_quadratic_form(patch: int) -> np.ndarray:
    """``M = D_h^T D_h + D_v^T D_v`` for forward differences inside a ``patch x patch`` patch (row-major)."""
    eye = np.eye(patch)
    diff = np.diff(eye, axis=0)  # (p-1, p): forward differences of a line
    d_h = np.kron(eye, diff)  # along rows (horizontal)
    d_v = np.kron(diff, eye)  # along columns (vertical)
    return d_h.T @ d_h + d_v.T @ d_v


def _gradient_energy(plane: np.ndarray, patch: int) -> np.ndarray:
    """``tr(G^T G)`` of every overlapping patch: the sum of its squared horizontal and vertical differences."""
    dh = np.diff(plane, axis=1) ** 2  # (H, W-1)
    dv = np.diff(plane, axis=0) ** 2  # (H-1, W)

    def box(values: np.ndarray, bh: int, bw: int) -> np.ndarray:
        integral = np.pad(np.cumsum(np.cumsum(values, 0), 1), ((1, 0), (1, 0)))
        return integral[bh:, bw:] - integral[:-bh, bw:] - integral[bh:, :-bw] + integral[:-bh, :-bw]

    return box(dh, patch, patch - 1) + box(dv, patch - 1, patch)


def _box_mean(plane: np.ndarray, patch: int) -> np.ndarray:
    """Mean of every overlapping ``patch x patch`` patch, shape ``(H - patch + 1, W - patch + 1)``."""
    integral = np.pad(np.cumsum(np.cumsum(plane, 0), 1), ((1, 0), (1, 0)))
    p = patch
    return (integral[p:, p:] - integral[:-p, p:] - integral[p:, :-p] + integral[:-p, :-p]) / (p * p)


def estimate_sigma_weak_texture(image: np.ndarray, channel_axis: int | None = None, patch: int = 7,
                                confidence: float = 0.99, iterations: int = 5, spectrum: str = "pca",
                                clip_correction: bool | None = None, min_clip_ratio: float = 0.9) -> float:
    """Noise standard deviation from weak-texture patches (after Liu, Tanaka & Okutomi, TIP 2013).

    A patch ``y`` (``N x N``, row-major vector) of a flat region is pure noise ``n ~ N(0, sigma^2 I)``;
    its gradient energy ``t = tr(G^T G) = ||D_h y||^2 + ||D_v y||^2 = n^T M n`` with
    ``M = D_h^T D_h + D_v^T D_v`` (forward differences inside the patch) has mean ``sigma^2 tr(M)`` and
    variance ``2 sigma^4 tr(M^2)``. Matching a Gamma law to these moments,
    ``t / sigma^2 ~ Gamma(k, theta)`` with ``k = tr(M)^2 / (2 tr(M^2))``, ``theta = 2 tr(M^2) / tr(M)``,
    so a patch is "weak texture" when

    ``t < tau = sigma^2 theta F^{-1}(confidence; k)``  (``F`` the regularised lower incomplete gamma).

    Starting from ``sigma^2`` = the smallest eigenvalue of the covariance of all patches, the
    patches below ``tau`` are selected and ``sigma^2`` is re-estimated from their covariance,
    ``iterations`` times or until it settles. ``spectrum="smallest"`` takes the smallest eigenvalue
    (as in the paper; it reads low, the downward bias of a sample covariance's smallest eigenvalue:
    -11% on a 64x64 image of pure noise; a high ``confidence`` such as ``1 - 1e-6`` offsets it on
    textured images by letting in a little texture), and ``spectrum="pca"`` (the default) the
    mean = median tail of :func:`pca_noise_variance`, unbiased on pure noise from 64x64 on. The defaults
    (``N = 7``, ``confidence = 0.99``, ``"pca"``, ``min_clip_ratio = 0.9``): see
    ``benchmarks/results/sigma_estimates.md``. With ``clip_correction``
    only patches whose mean grey level ``x`` keeps ``r(x, sigma) >= min_clip_ratio`` of the noise std
    under clipping are selected (flat patches at 0 or 1 have little noise left and would pass the
    threshold first), unless fewer than ``2 N^2`` remain, and the final sigma is raised for the
    remaining clipping at the selected patches' mean grey levels, as in :func:`estimate_sigma_pca`.
    Channels are estimated separately and their sigmas averaged.

    Parameters
    ----------
    image : numpy.ndarray
        Noisy image, floats in [0, 1].
    channel_axis : int or None
        Axis of colour channels, or None for a grey image.
    patch : int
        Patch side ``N``.
    confidence : float
        Probability that a pure-noise patch passes the threshold, in (0, 1).
    iterations : int
        Most rounds of selection.
    spectrum : {"smallest", "pca"}
        How the noise variance is read from the selected patches' covariance.
    clip_correction : bool or None
        Allow for clipping at 0 and 1; None: only when every value lies in [0, 1] (values outside mean
        the noise was not clipped).
    min_clip_ratio : float
        With the clipping correction, leave out patches whose noise std clipping shrinks below this
        fraction (0: keep all).

    Returns
    -------
    float
        Estimated sigma in image units.
    """
    if spectrum not in ("smallest", "pca"):
        raise InputError(f"unknown spectrum {spectrum!r}; use 'smallest' or 'pca'")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    quadratic = _gradient_quadratic_form(patch)
    trace, trace_sq = np.trace(quadratic), np.sum(quadratic * quadratic)
    shape, scale = trace**2 / (2 * trace_sq), 2 * trace_sq / trace
    unit_threshold = scale * float(gammaincinv(shape, confidence))
    dim = patch * patch

    def read(eigenvalues: np.ndarray) -> float:
        if spectrum == "smallest":
            return float(max(eigenvalues[-1], 0.0))
        return pca_noise_variance(eigenvalues)

    sigmas = []
    for plane in _planes(image, channel_axis):
        _check_plane(plane, patch)
        energy = _gradient_energy(plane, patch)
        clipped = _was_clipped(plane, clip_correction)
        means = _box_mean(plane, patch) if clipped else None
        variance = float(max(_patch_eigenvalues(plane, patch)[-1], 0.0))
        keep = None
        for _ in range(iterations):
            selected = energy < variance * unit_threshold
            if clipped and min_clip_ratio > 0 and variance > 0:
                far = _clipped_std_ratio(np.clip(means, 0.0, 1.0), np.sqrt(variance)) >= min_clip_ratio
                if np.count_nonzero(selected & far) >= 2 * dim:
                    selected &= far
            if selected.sum() < 2 * dim:  # too few patches for a covariance: keep the last estimate
                break
            keep = selected
            new = read(_patch_eigenvalues(plane, patch, keep))
            settled = abs(new - variance) <= 1e-4 * max(variance, 1e-12)
            variance = new
            if settled:
                break
        sigma = np.sqrt(variance)
        if clipped:
            sigma = _clipping_correction(sigma, means[keep] if keep is not None else means.ravel())
        sigmas.append(sigma)
    return float(np.mean(sigmas))


def estimate_sigma_wavelet(image: np.ndarray, channel_axis: int | None = None,
                           clip_correction: bool | None = True) -> float:
    """Noise standard deviation by the wavelet MAD of the finest diagonal band, allowing for clipping.

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
    clip_correction : bool or None
        Allow for clipping at 0 and 1 (True, the behaviour before ``method`` existed, even for values
        outside [0, 1]); None: only when every value lies in [0, 1].

    Returns
    -------
    float
        Estimated sigma in image units (0 for a noise-free image).
    """
    planes = _planes(image, channel_axis)
    if planes[0].size < 4:
        raise _too_small(planes[0], "needs at least 4 pixels")
    return float(np.mean([_estimate_plane(p, clip_correction=_was_clipped(p, clip_correction)) for p in planes]))


def estimate_sigma(image: np.ndarray, channel_axis: int | None = None, method: str = "weak-texture") -> float:
    """Noise standard deviation of an image in [0, 1], allowing for clipping at 0 and 1.

    Parameters
    ----------
    image : numpy.ndarray
        Noisy image, floats in [0, 1].
    channel_axis : int or None
        Axis of colour channels, or None for a grey image.
    method : {"wavelet", "pca", "weak-texture"}
        ``"wavelet"``: MAD of the finest diagonal db2 band (:func:`estimate_sigma_wavelet`);
        ``"pca"``: smallest eigenvalues of the patch covariance, Chen et al. 2015
        (:func:`estimate_sigma_pca`); ``"weak-texture"``: covariance of low-gradient patches,
        after Liu et al. 2013 (:func:`estimate_sigma_weak_texture`). Each with its clipping correction
        and default parameters. The default, weak-texture, is the only one within 5% on at least 90%
        of (image, sigma >= 15) pairs in ``benchmarks/results/sigma_estimates.md`` (92% clipped 8-bit,
        94% float; the wavelet, the default before, 68% and 74%); it is about 10x slower than the
        wavelet (about 2 s for a grey megapixel on one core) and needs at least 16x16 pixels.

    Returns
    -------
    float
        Estimated sigma in image units (about 0 for a noise-free image).
    """
    if method == "wavelet":
        return estimate_sigma_wavelet(image, channel_axis)
    if method == "pca":
        return estimate_sigma_pca(image, channel_axis)
    if method == "weak-texture":
        return estimate_sigma_weak_texture(image, channel_axis)
    raise InputError(f"unknown noise-estimation method {method!r}; use one of {', '.join(SIGMA_METHODS)}")
