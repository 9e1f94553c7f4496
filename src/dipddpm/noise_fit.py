"""Signal-dependent noise from one image: fit ``var(y | x) = a x + b`` (Poisson-Gaussian noise).

After Foi, Trimeche, Katkovnik & Egiazarian, "Practical Poissonian-Gaussian noise modeling and fitting for
single-image raw-data", IEEE Trans. Image Process. 17(10), 2008: local levels and local noise variances of
the smooth parts of the image, grouped by level, and the clipped noise model fitted to them. Re-derived
here with non-overlapping 3x3 blocks (:func:`block_statistics`), a texture screen on each block's
neighbours (:func:`smooth_blocks`), equal-count level bins with a clipped mean square
(:func:`binned_variances`), and a weighted least-squares fit of the variance that noise of variance
``a x + b`` keeps after clipping to [0, 1] (:func:`clipped_moments`, :func:`fit_clipped_model`), with
``a, b >= 0``. Unlike Foi et al.'s normal approximation, the Poisson part is summed exactly: at a few photons
its upper tail reaches much further than a normal one, which matters where values clip at 1.
:func:`fit_noise_model` runs them and returns a :class:`NoiseFit`.

For ``y = Poisson(lam x) / lam`` (:func:`dipddpm.noise_models.sample_poisson`), ``a = 1 / lam`` and
``b = 0``; for Gaussian noise of standard deviation ``sigma``, ``a = 0`` and ``b = sigma^2``; a camera's raw
data, ``y = alpha Poisson(x / alpha) + N(0, s^2)``, has ``a = alpha``, ``b = s^2``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import uniform_filter
from scipy.optimize import least_squares
from scipy.special import gammaincinv, gammaln

from .errors import InputError
from .noise import clipped_noise_moments

__all__ = ["NOISE_KINDS", "NoiseFit", "binned_variances", "block_statistics", "clipped_moments",
           "choose_kind", "fit_clipped_model", "fit_noise_model", "initial_models", "model_variance", "relative_misfit",
           "smooth_blocks"]

NOISE_KINDS = ("gaussian", "poisson", "poisson-gaussian")
"""Values of :attr:`NoiseFit.kind`."""

_CONTRAST = np.outer([1.0, -2.0, 1.0], [1.0, -2.0, 1.0]) / 6.0  # zero sum, unit norm; kills 1, i, j, ij, i^2, j^2
_MIN_BLOCKS_PER_BIN = 32
_MAX_BINS = 24
_EXACT_PHOTONS = 2000.0  # above, the Poisson part is taken as normal
_CLEAN_LEVELS = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class NoiseFit:
    """A fitted noise model ``var(y | x) = a x + b`` in image units (values in [0, 1]).

    Attributes
    ----------
    a, b : float
        The signal-dependent (Poisson) and constant (Gaussian) parts of the variance, both >= 0; the part
        that :attr:`kind` leaves out is 0.
    a_sd, b_sd : float
        Their standard deviations, from the covariance of the fit of both parts: what the data can tell
        (with one part left out, the other's own error bar would ignore that the points may not rule the
        first out; at a few thousand blocks ``a`` and ``b`` trade off strongly).
    kind : str
        ``"gaussian"`` (``a`` compatible with 0), ``"poisson"`` (``b`` compatible with 0) or
        ``"poisson-gaussian"``; see :func:`choose_kind`.
    levels, variances : tuple of float
        The fitted points: mean level and noise variance of each bin of smooth blocks.
    blocks : int
        Blocks (3x3 pixels each) behind the points.
    """

    a: float
    b: float
    a_sd: float
    b_sd: float
    kind: str
    levels: tuple[float, ...]
    variances: tuple[float, ...]
    blocks: int

    @property
    def photons(self) -> float:
        """``lam = 1 / a``: the expected count of a white pixel if ``y = Poisson(lam x) / lam`` (inf for ``a = 0``)."""
        return 1.0 / self.a if self.a > 0 else math.inf

    @property
    def photons_sd(self) -> float:
        """Standard deviation of :attr:`photons` to first order, ``a_sd / a^2``."""
        return self.a_sd / self.a**2 if self.a > 0 else math.inf

    @property
    def read_noise(self) -> float:
        """``sqrt(b)``: the standard deviation of the signal-independent noise (sigma, for Gaussian noise)."""
        return math.sqrt(self.b)

    @property
    def read_noise_sd(self) -> float:
        """``sqrt(b + b_sd) - sqrt(b)``: one standard deviation of ``b`` in read-noise units (``b_sd / (2 sqrt(b))``
        for a well-determined ``b``, ``sqrt(b_sd)`` at ``b = 0``)."""
        return math.sqrt(self.b + self.b_sd) - math.sqrt(self.b)

    def to_dict(self) -> dict:
        """JSON-ready: the fields and the properties (None where infinite)."""
        out = asdict(self)
        for name in ("photons", "photons_sd", "read_noise", "read_noise_sd"):
            value = getattr(self, name)
            out[name] = value if math.isfinite(value) else None
        out["levels"], out["variances"] = list(self.levels), list(self.variances)
        return out


def block_statistics(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Level ``m`` and detail ``d`` of every non-overlapping 3x3 block of a grey plane.

    ``d = sum_ij c_i c_j y_ij / 6`` with ``c = (1, -2, 1)``: a contrast of zero sum and unit norm
    (``sum (c_i c_j / 6)^2 = 1``) that vanishes on ``1, i, j, ij, i^2, j^2``, so smooth shading leaves
    ``d`` to the noise: for independent noise of variance ``v(x) = a x + b`` on a block of one level ``x``,
    ``E d = 0`` and ``E d^2 = v(x)``. ``m`` is the mean of the 9x9 pixels centred on the block (its own
    3x3 mean on the image's border), which equals the block's mean level under linear shading. For
    Poisson noise ``E[d^2 | m] = a m`` holds even given the noisy ``m``: given the window's total count
    ``N`` over ``n`` pixels of one level, the counts are multinomial with ``p = 1/n``, so for weights ``w``
    of zero sum and unit norm ``Var(sum w_k k_k | N) = N p sum w_k^2 - N p^2 (sum w_k)^2 = N / n``.
    Binning blocks by their noisy level therefore does not bias the line, and the 9x9 window makes the
    level three times steadier than the block's own mean, which keeps the bins sharp where clipping bends
    the curve.

    Parameters
    ----------
    plane : numpy.ndarray
        ``(H, W)`` floats; the last ``H mod 3`` rows and ``W mod 3`` columns are left out.

    Returns
    -------
    levels, details : numpy.ndarray
        ``(H // 3, W // 3)`` each.
    """
    rows, cols = plane.shape[0] // 3, plane.shape[1] // 3
    blocks = plane[:3 * rows, :3 * cols].reshape(rows, 3, cols, 3)
    levels = blocks.mean(axis=(1, 3))
    levels[1:-1, 1:-1] = uniform_filter(levels, size=3)[1:-1, 1:-1]
    return levels, np.einsum("ikjl,kl->ij", blocks, _CONTRAST)


def clipped_moments(x: np.ndarray, a: float, b: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``y = clip(a k + g, 0, 1)``, ``k ~ Poisson(x / a)``, ``g ~ N(0, b)``.

    The variance of ``a k + g`` is ``a x + b``. With ``M_1(k), M_2(k)`` the first two moments of the
    clipped normal ``clip(a k + g, 0, 1)`` (:func:`dipddpm.noise.clipped_noise_moments`; ``min(a k, 1)``
    and its square when ``b = 0``), ``E y^j = sum_k p_k(x / a) M_j(k)`` over
    ``k <= 1 / a + 12 sqrt(1 / a) + 40`` (beyond, the probabilities are negligible for ``x <= 1``). For
    ``a = 0`` or more than 2000 photons (``1 / a``) the Poisson part is taken as normal: ``clip(x + e, 0, 1)``
    with ``e ~ N(0, a x + b)``.

    Parameters
    ----------
    x : numpy.ndarray
        Clean levels, 1-D.
    a : float
        >= 0.
    b : float or numpy.ndarray
        >= 0; an array gives one curve per value (last axis).

    Returns
    -------
    mean, variance : numpy.ndarray
        Shape ``x.shape + np.shape(b)``.
    """
    x = np.asarray(x, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a <= 1.0 / _EXACT_PHOTONS:
        level = x.reshape(x.shape + (1,) * b.ndim)
        sigma = np.sqrt(np.maximum(a * level + b, 1e-14))
        shift, second = clipped_noise_moments(level, sigma)
        return level + shift, np.maximum(second - shift * shift, 0.0)
    photons = 1.0 / a
    k = np.arange(int(photons + 12.0 * math.sqrt(photons) + 40.0), dtype=np.float64)
    mu = x[:, None] * photons
    pmf = np.exp(k * np.log(np.maximum(mu, 1e-300)) - mu - gammaln(k + 1.0))
    pmf[x == 0] = k == 0
    centre = (a * k).reshape(k.shape + (1,) * b.ndim)
    sigma = np.sqrt(np.maximum(b, 1e-300))
    shift, second = clipped_noise_moments(centre, sigma)
    first_k = np.where(b > 0, centre + shift, np.minimum(centre, 1.0))
    second_k = np.where(b > 0, centre * centre + 2.0 * centre * shift + second, np.minimum(centre, 1.0) ** 2)
    mean = np.tensordot(pmf, first_k, axes=1)
    return mean, np.maximum(np.tensordot(pmf, second_k, axes=1) - mean * mean, 0.0)


def model_variance(levels: np.ndarray, a: float, b: float) -> np.ndarray:
    """The noise variance that the clipped model (:func:`clipped_moments`) predicts at OBSERVED levels.

    An observed level is a clipped mean: the curve ``(E y(x), Var y(x))`` is traced over 101 clean levels
    ``x`` in [0, 1] and interpolated at ``levels`` (clamped to its ends). Away from 0 and 1 this is
    ``a m + b``. Near 0 read noise clipped at 0 raises the observed level of dark pixels by about
    ``0.4 sqrt(b) P(k = 0)``, so the curve moves like ``sqrt(b)``, not ``b``: the fits work in the read noise.
    """
    mean, variance = clipped_moments(_CLEAN_LEVELS, a, b)
    return np.interp(levels, np.maximum.accumulate(mean), variance)


def _chi2_quantile(dof: np.ndarray, probability: float) -> np.ndarray:
    return 2.0 * gammaincinv(dof / 2.0, probability)


def smooth_blocks(levels: np.ndarray, details: np.ndarray, variance: np.ndarray,
                  confidence: float = 0.99) -> np.ndarray:
    """Blocks whose neighbourhood looks like noise: the weak-texture screen.

    Texture and edges leak into the detail ``d``, and they extend over several blocks. A block is kept
    when its up to 8 neighbours ``n`` (those inside the image) pass ``sum_n d_n^2 / v_n < F^-1(confidence)``,
    ``F`` the chi-square law with as many degrees of freedom as neighbours and ``v_n`` the current model's
    variance at each neighbour's level. The block's own ``d`` is not part of its test, so for noise alone
    the screen is independent of it and does not bias the variance of the blocks it keeps.

    Parameters
    ----------
    levels, details : numpy.ndarray
        Of the blocks of one plane, :func:`block_statistics`.
    variance : numpy.ndarray
        The model's noise variance at each block, > 0.
    confidence : float
        Probability that a neighbourhood of pure Gaussian noise passes.

    Returns
    -------
    numpy.ndarray
        Boolean mask of the blocks kept, shape of ``levels``.
    """
    energy = details**2 / variance

    def neighbour_sum(values: np.ndarray) -> np.ndarray:
        return uniform_filter(values, size=3, mode="constant") * 9.0 - values

    count = np.round(neighbour_sum(np.ones_like(energy)))
    return neighbour_sum(energy) < _chi2_quantile(count, confidence)


def binned_variances(levels: np.ndarray, details: np.ndarray, bins: int,
                     clip: float = 5.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Noise variance by level: equal-count bins of blocks sorted by level, a clipped mean square in each.

    In each bin, ``v = mean(d^2)`` over the details with ``d^2 <= clip^2 v``, three rounds (isolated texture
    left by the screen); the mean square, not the MAD, because at low photon counts ``d`` is discrete and
    far from normal, which biases a median. With ``n`` details kept and kurtosis ``k = mean(d^4) /
    mean(d^2)^2``, ``Var v ~= (k - 1) v^2 / n``.

    Parameters
    ----------
    levels, details : numpy.ndarray
        One value per block (flattened).
    bins : int
        Number of bins (each gets ``len // bins`` or one more blocks).
    clip : float
        Outlier threshold in standard deviations.

    Returns
    -------
    levels, variances, counts, kurtosis : numpy.ndarray
        Per bin: mean level, ``v``, ``n`` and ``k``.
    """
    order = np.argsort(levels, kind="stable")
    out = []
    for members in np.array_split(order, bins):
        squares = details[members] ** 2
        keep = np.ones(squares.size, dtype=bool)
        for _ in range(3):
            variance = squares[keep].mean()
            keep = squares <= clip * clip * variance if variance > 0 else keep
        kept = squares[keep]
        variance = kept.mean()
        out.append((levels[members].mean(), variance, kept.size,
                    np.mean(kept**2) / variance**2 if variance > 0 else 3.0))
    return tuple(np.array(column, dtype=np.float64) for column in zip(*out, strict=True))


def relative_misfit(levels: np.ndarray, variances: np.ndarray, counts: np.ndarray, kurtosis: np.ndarray,
                    a: float, b: float) -> float:
    """``sum_i n_i / (k_i - 1) (v_i / V(m_i) - 1)^2``: the points' misfit to a model, each point weighed by the
    inverse of its variance ``(k_i - 1) V^2 / n_i`` under the model (``V`` from :func:`model_variance`)."""
    model = np.maximum(model_variance(levels, a, b), 1e-30)
    return float(np.sum(counts / np.maximum(kurtosis - 1.0, 0.5) * (variances / model - 1.0) ** 2))


def initial_models(levels: np.ndarray, variances: np.ndarray, counts: np.ndarray,
                   kurtosis: np.ndarray) -> list[tuple[float, float]]:
    """Starts for :func:`fit_clipped_model`: the best clipped model of a grid, the best pure Poisson one
    (``b = 0``) and the best pure Gaussian one (``a = 0``), by :func:`relative_misfit`.

    The misfit of the clipped model has several valleys (near 0, read noise clipped at 0 lowers the variance
    as a lower photon count would), so one start is not enough. ``a`` runs over 0 and 1e-4..1 (65 log-spaced
    values), ``b`` over 0 and 1e-7..0.3 (49).

    Parameters
    ----------
    levels, variances, counts, kurtosis : numpy.ndarray
        Per bin, :func:`binned_variances`.

    Returns
    -------
    list of (a, read_noise)
        Without repeats; ``read_noise = sqrt(b)``.
    """
    b_grid = np.concatenate([[0.0], np.logspace(-7, -0.5, 49)])
    a_grid = np.concatenate([[0.0], np.logspace(-4, 0, 65)])
    weight = counts / np.maximum(kurtosis - 1.0, 0.5)
    misfit = np.empty((a_grid.size, b_grid.size))
    for i, a in enumerate(a_grid):
        mean, variance = clipped_moments(_CLEAN_LEVELS, float(a), b_grid)
        mean = np.maximum.accumulate(mean, axis=0)
        for j in range(b_grid.size):
            model = np.maximum(np.interp(levels, mean[:, j], variance[:, j]), 1e-30)
            misfit[i, j] = np.sum(weight * (variances / model - 1.0) ** 2)
    best = np.unravel_index(np.argmin(misfit), misfit.shape)
    starts = [(a_grid[best[0]], b_grid[best[1]]), (a_grid[np.argmin(misfit[:, 0])], 0.0),
              (0.0, b_grid[np.argmin(misfit[0])])]
    return list(dict.fromkeys((float(a), math.sqrt(b)) for a, b in starts))


def fit_clipped_model(levels: np.ndarray, variances: np.ndarray, counts: np.ndarray, kurtosis: np.ndarray,
                      a: float, read_noise: float, free: tuple[bool, bool] = (True, True),
                      rounds: int = 2) -> tuple[float, float, np.ndarray]:
    """Weighted least squares of the clipped model to the binned variances, from ``(a, read_noise)``, both >= 0.

    Minimises ``sum_i w_i (v_i - V(m_i; a, r^2))^2`` (``V`` from :func:`model_variance`, ``r = sqrt(b)`` the
    read noise, in which the optimiser works) with fixed weights ``w_i = n_i / ((k_i - 1) V(m_i)^2)``, the
    inverse variance of ``v_i`` under the previous model, and repeats with updated weights. Away from
    clipping ``V = a m + b`` and this is the weighted line fit. The covariance of ``(a, b)`` is
    ``(J^T W J)^-1 max(1, chi2 / (n - p))``, ``chi2`` the weighted residual (the weights' scale, or more when
    the points scatter more than they say) and ``J`` the secant of ``V`` over a step of 5% of each free
    parameter, at least 1% of the median variance for ``b`` (and its equivalent for ``a``): near ``b = 0``
    the curve moves like ``sqrt(b)`` (:func:`model_variance`), whose derivative there would be infinite.

    Parameters
    ----------
    levels, variances, counts, kurtosis : numpy.ndarray
        Per bin, :func:`binned_variances`.
    a, read_noise : float
        Where to start (:func:`initial_models`); a parameter that is not free keeps its value.
    free : (bool, bool)
        Which of ``a``, ``read_noise`` are fitted.
    rounds : int
        Reweighting rounds.

    Returns
    -------
    a, read_noise : float
    covariance : numpy.ndarray
        2x2, of ``(a, b)``; zero in the rows and columns of a fixed parameter.
    """
    free = np.array(free)
    params = np.array([a, read_noise], dtype=np.float64)
    typical = float(np.median(variances))
    scale = np.maximum(params, [0.01 * typical, 0.1 * math.sqrt(typical)]) + 1e-12  # the optimiser sees params / scale

    def predicted(scaled: np.ndarray) -> np.ndarray:
        full = params.copy()
        full[free] = scaled * scale[free]
        return model_variance(levels, float(full[0]), float(full[1]) ** 2)

    def residuals(scaled: np.ndarray, root: np.ndarray) -> np.ndarray:
        return root * (predicted(scaled) - variances)

    for _ in range(rounds):
        weights = counts / (np.maximum(kurtosis - 1.0, 0.5)
                            * np.maximum(predicted(params[free] / scale[free]), 1e-12) ** 2)
        fit = least_squares(residuals, params[free] / scale[free], bounds=(0.0, np.inf), diff_step=1e-4,
                            args=(np.sqrt(weights),))
        params[free] = fit.x * scale[free]
    a, b = params[0], params[1] ** 2
    steps = np.maximum(0.05 * np.array([a, b]), [0.02 * typical, 0.01 * typical])
    base = model_variance(levels, a, b)
    secant = np.stack([(model_variance(levels, a + steps[0], b) - base) / steps[0],
                       (model_variance(levels, a, b + steps[1]) - base) / steps[1]], axis=1)[:, free]
    jacobian = np.sqrt(weights)[:, None] * secant
    covariance = np.zeros((2, 2))
    covariance[np.ix_(free, free)] = (np.linalg.pinv(jacobian.T @ jacobian)
                                      * max(1.0, float(np.sum(fit.fun**2)) / max(levels.size - int(free.sum()), 1)))
    return float(params[0]), float(params[1]), covariance


def choose_kind(misfit_both: float, misfit_poisson: float, misfit_gaussian: float, points: int,
                significance: float = 3.0) -> str:
    """Which model the points call for: a likelihood-ratio test of each one-part model against both parts.

    With ``M`` the :func:`relative_misfit` (a chi-square) of each fit and ``s = max(1, M_both / (n - 2))``
    the overdispersion of the points, a part is left out when dropping it raises the misfit by less than
    ``significance^2`` (1 degree of freedom; 3 = three standard deviations): ``(M_one - M_both) / s <= 9``.
    Gaussian when ``a`` can go, else Poisson when ``b`` can go, else Poisson-Gaussian; when both can go
    (little data, or no noise), the one that fits better.

    Parameters
    ----------
    misfit_both, misfit_poisson, misfit_gaussian : float
        Of the fits of ``(a, b)``, of ``a`` with ``b = 0`` and of ``b`` with ``a = 0``.
    points : int
        Number of points ``n``.
    significance : float
        In standard deviations.

    Returns
    -------
    str
        One of :data:`NOISE_KINDS`.
    """
    scale = max(1.0, misfit_both / max(points - 2, 1))
    rise = {"gaussian": (misfit_gaussian - misfit_both) / scale, "poisson": (misfit_poisson - misfit_both) / scale}
    compatible = [kind for kind, value in rise.items() if value <= significance**2]
    if not compatible:
        return "poisson-gaussian"
    return min(compatible, key=rise.get)


def _best_fit(binned: tuple[np.ndarray, ...], starts: list[tuple[float, float]],
              free: tuple[bool, bool] = (True, True)) -> tuple[float, float, np.ndarray]:
    """:func:`fit_clipped_model` from every ``(a, read_noise)`` start; the fit of least :func:`relative_misfit`."""
    fits = [fit_clipped_model(*binned, a, r, free) for a, r in dict.fromkeys(starts)]
    return min(fits, key=lambda fit: relative_misfit(*binned, fit[0], fit[1] ** 2))


def _smooth(means: list[np.ndarray], details: list[np.ndarray], variance: np.ndarray,
            confidence: float) -> np.ndarray:
    """:func:`smooth_blocks` of every channel, flattened and joined like ``variance``."""
    out, offset = [], 0
    for m, d in zip(means, details, strict=True):
        out.append(smooth_blocks(m, d, variance[offset:offset + m.size].reshape(m.shape), confidence).ravel())
        offset += m.size
    return np.concatenate(out)


def _planes(image: np.ndarray, channel_axis: int | None) -> list[np.ndarray]:
    image = np.asarray(image)
    if image.dtype.kind not in "uif" or image.dtype == np.bool_:
        raise InputError(f"expected a numeric image, got dtype {image.dtype}")
    image = image.astype(np.float64)
    if channel_axis is not None:
        if image.ndim != 3 or not -3 <= channel_axis < 3:
            raise InputError(f"with channel_axis {channel_axis} the image must be 3-D with that axis, got shape "
                             f"{image.shape}")
        image = np.moveaxis(image, channel_axis, 0)
    elif image.ndim != 2:
        raise InputError(f"expected a grey (H, W) image or channel_axis for colour, got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise InputError("the image has NaN or infinite values")
    if image.size and (image.min() < 0 or image.max() > 1):
        raise InputError("the noise model is fitted to values in [0, 1]; map the image to that range first")
    return [image] if channel_axis is None else list(image)


def fit_noise_model(image: np.ndarray, channel_axis: int | None = None, rounds: int = 3,
                    confidence: float = 0.99) -> NoiseFit:
    """Fit ``var(y | x) = a x + b`` to one noisy image in [0, 1] (Poisson-Gaussian noise, after Foi et al. 2008).

    The blocks of every channel (:func:`block_statistics`) are pooled: one model for all channels. Blocks
    at exactly 0 or 1 (saturated) are left out. A grid of clipped models (:func:`initial_models`) on the
    bins of all blocks gives a start; each round then keeps the blocks that the texture screen
    (:func:`smooth_blocks`) passes under the current model, bins them by level
    (:func:`binned_variances`: at least 32 blocks a bin, at most 24 bins) and refits the clipped model
    (:func:`fit_clipped_model`).

    Parameters
    ----------
    image : numpy.ndarray
        Noisy image, values in [0, 1] (e.g. a uint8 image / 255); ``(H, W)`` or with ``channel_axis``.
    channel_axis : int or None
        Axis of colour channels, or None for a grey image.
    rounds : int
        Rounds of screening and fitting.
    confidence : float
        Of the texture screen, :func:`smooth_blocks`.

    Returns
    -------
    NoiseFit

    Raises
    ------
    InputError
        Not a grey or colour image of finite values in [0, 1]; fewer than 96 unsaturated 3x3 blocks (a grey
        image of about 30x30 pixels); a constant image.
    """
    planes = _planes(image, channel_axis)
    levels, details = zip(*(block_statistics(plane) for plane in planes), strict=True)
    flat_levels = np.concatenate([m.ravel() for m in levels])
    flat_details = np.concatenate([d.ravel() for d in details])
    if flat_levels.size and np.ptp(np.concatenate([p.ravel() for p in planes])) == 0:
        raise InputError("the image is constant: it has no noise to fit")
    inside = (flat_levels > 0) & (flat_levels < 1)
    if inside.sum() < 3 * _MIN_BLOCKS_PER_BIN:
        raise InputError(f"an image of shape {np.shape(image)} is too small to fit a noise model: it has "
                         f"{int(inside.sum())} unsaturated 3x3 blocks, needs {3 * _MIN_BLOCKS_PER_BIN}")

    def points(keep: np.ndarray) -> tuple[np.ndarray, ...]:
        count = int(keep.sum())
        return binned_variances(flat_levels[keep], flat_details[keep], min(_MAX_BINS, count // _MIN_BLOCKS_PER_BIN))

    binned, keep = points(inside), inside
    starts = initial_models(*binned)
    a, r, covariance = _best_fit(binned, starts)
    for _ in range(rounds):
        variance = np.maximum(model_variance(flat_levels, a, r * r), 1e-12)
        screened = inside & _smooth(levels, details, variance, confidence)
        keep = screened if screened.sum() >= 3 * _MIN_BLOCKS_PER_BIN else keep
        binned = points(keep)
        a, r, covariance = _best_fit(binned, [(a, r), *starts])
    fits = {"poisson-gaussian": (a, r),
            "poisson": _best_fit(binned, [(a, 0.0), *((s, 0.0) for s, _ in starts if s > 0)], (True, False))[:2],
            "gaussian": _best_fit(binned, [(0.0, r), *((0.0, s) for _, s in starts if s > 0)], (False, True))[:2]}
    misfit = {kind: relative_misfit(*binned, fit[0], fit[1] ** 2) for kind, fit in fits.items()}
    kind = choose_kind(misfit["poisson-gaussian"], misfit["poisson"], misfit["gaussian"], binned[0].size)
    sd = np.sqrt(np.diag(covariance))
    return NoiseFit(a=fits[kind][0], b=fits[kind][1] ** 2, a_sd=float(sd[0]), b_sd=float(sd[1]), kind=kind,
                    levels=tuple(binned[0].tolist()), variances=tuple(binned[1].tolist()), blocks=int(keep.sum()))
