"""Noise models beyond Gaussian: a sampler for benchmarks and a matching training loss for each.

Four models, those of the ES-WMV benchmark (Wang et al., "Early Stopping for Deep Image Prior", TMLR;
its noise follows ImageNet-C, which calls Poisson noise "shot" noise), with ``x`` the clean image in [0, 1]:

- ``gaussian``: ``x + N(0, sigma^2)``; level = sigma; loss :func:`squared_error`.
- ``poisson``: ``Poisson(lam x) / lam``; level = lam, photons at white; loss :func:`poisson_divergence`.
- ``impulse``: each value replaced with probability ``amount``, half by 0, half by 1; loss :func:`absolute_error`.
- ``speckle``: ``x + x N(0, c^2)``; level = c; loss :func:`squared_error`.

Every sampler clips to [0, 1] and, by default, rounds to 8 bits like an image file. ES-WMV truncated
when casting to uint8 (a mean bias of about -0.5 grey level); we round. :data:`ESWMV_LEVELS` holds the
benchmark's levels 2/3/4 (low/medium/high).

Every loss is elementwise, ``loss(prediction, observation)`` -> one loss per value, whose expected
value, over the noise of that value, is minimised by the clean value (before clipping, which biases
all of them near 0 and 1); :func:`weighted_mean` turns it into a training loss. The Anscombe
transform, its expected value under Poisson noise and its unbiased inverse are here for Poisson data
made Gaussian (:class:`dipddpm.physics.AnscombeStabilised`), and the generalised transform with its expected
value for Poisson-Gaussian data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import gammaln

from .errors import InputError
from .noise import add_gaussian_noise

__all__ = [
    "ESWMV_LEVELS",
    "NOISE_MODELS",
    "NoiseModel",
    "absolute_error",
    "anscombe",
    "expected_anscombe",
    "expected_generalised_anscombe",
    "generalised_anscombe",
    "get_noise_model",
    "inverse_anscombe",
    "poisson_divergence",
    "sample_gaussian",
    "sample_impulse",
    "sample_poisson",
    "sample_speckle",
    "squared_error",
    "weighted_mean",
]

ESWMV_LEVELS: dict[str, dict[int, float]] = {
    "gaussian": {2: 0.12, 3: 0.18, 4: 0.26},
    "poisson": {2: 25.0, 3: 12.0, 4: 5.0},
    "impulse": {2: 0.3, 3: 0.5, 4: 0.7},
    "speckle": {2: 0.20, 3: 0.35, 4: 0.45},
}
"""Noise levels of the ES-WMV benchmark, by model name and level (2 low, 3 medium, 4 high).

Fitted on its data (``shared/data/eswmv/README.md``): gaussian sigma, poisson photons at white, impulse
amount, speckle c; the same constants as ImageNet-C severities 2/3/4 except impulse."""


def _clean_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if image.size == 0 or not np.all(np.isfinite(image)) or image.min() < 0 or image.max() > 1:
        raise InputError("the clean image must hold finite values in [0, 1]")
    return image


def _finish(noisy: np.ndarray, bits: int | None) -> np.ndarray:
    """Clip to [0, 1], then round to ``2**bits - 1`` levels unless ``bits`` is None."""
    noisy = np.clip(noisy, 0.0, 1.0)
    if bits is None:
        return noisy
    if bits < 1:
        raise InputError(f"bits must be a positive integer or None, got {bits}")
    levels = 2**bits - 1
    return np.round(noisy * levels) / levels


def sample_gaussian(image: np.ndarray, sigma: float, rng: np.random.Generator, bits: int | None = 8) -> np.ndarray:
    """Additive white Gaussian noise: ``y = Q(clip(x + sigma n, 0, 1))``, ``n ~ N(0, I)``.

    ``Q`` rounds to ``2**bits - 1`` levels. Same draws as :func:`dipddpm.noise.add_gaussian_noise`.
    Training loss: :func:`squared_error`, the Gaussian negative log-likelihood up to constants.

    Parameters
    ----------
    image : numpy.ndarray
        Clean image, floats in [0, 1].
    sigma : float
        Standard deviation in image units (ES-WMV: 0.12, 0.18, 0.26), >= 0.
    rng : numpy.random.Generator
        Source of the noise.
    bits : int or None
        Quantise to this many bits; None keeps floats.

    Returns
    -------
    numpy.ndarray
        float64 noisy image of the same shape, in [0, 1].
    """
    image = _clean_image(image)
    if not sigma >= 0:
        raise InputError(f"the Gaussian sigma must be >= 0, got {sigma}")
    return _finish(add_gaussian_noise(image, sigma, rng, bits=None), bits)


def sample_poisson(image: np.ndarray, photons: float, rng: np.random.Generator, bits: int | None = 8) -> np.ndarray:
    """Poisson (shot) noise: ``y = Q(clip(Poisson(lam x) / lam, 0, 1))``.

    ``lam`` is the expected photon count of a white pixel, so ``E y = x`` and ``Var y = x / lam``
    (before clipping): fewer photons, more noise. Training loss: :func:`poisson_divergence`.

    Parameters
    ----------
    image : numpy.ndarray
        Clean image, floats in [0, 1].
    photons : float
        ``lam`` > 0 (ES-WMV: 25, 12, 5).
    rng : numpy.random.Generator
        Source of the noise.
    bits : int or None
        Quantise to this many bits; None keeps floats.

    Returns
    -------
    numpy.ndarray
        float64 noisy image of the same shape, in [0, 1].
    """
    image = _clean_image(image)
    if not (photons > 0 and np.isfinite(photons)):
        raise InputError(f"the photon count at white must be > 0, got {photons}")
    return _finish(rng.poisson(photons * image) / photons, bits)


def sample_impulse(image: np.ndarray, amount: float, rng: np.random.Generator, bits: int | None = 8) -> np.ndarray:
    """Salt-and-pepper (impulse) noise, each channel of each pixel independently.

    ``y = x`` with probability ``1 - amount``, else 0 or 1 with equal odds, like scikit-image's
    ``random_noise(mode='s&p')``; a pixel has all ``C`` channels replaced with probability
    ``amount**C``. Training loss: :func:`absolute_error`, whose minimiser is the median, which is the clean
    value while ``amount < 1/2``.

    Parameters
    ----------
    image : numpy.ndarray
        Clean image, floats in [0, 1].
    amount : float
        Probability that a value is replaced, in [0, 1] (ES-WMV: 0.3, 0.5, 0.7).
    rng : numpy.random.Generator
        Source of the noise.
    bits : int or None
        Quantise to this many bits; None keeps floats.

    Returns
    -------
    numpy.ndarray
        float64 noisy image of the same shape, in [0, 1].
    """
    image = _clean_image(image)
    if not 0 <= amount <= 1:
        raise InputError(f"the impulse amount must be in [0, 1], got {amount}")
    replaced = rng.random(image.shape) < amount
    salt = rng.random(image.shape) < 0.5
    return _finish(np.where(replaced, salt.astype(np.float64), image), bits)


def sample_speckle(image: np.ndarray, c: float, rng: np.random.Generator, bits: int | None = 8) -> np.ndarray:
    """Multiplicative (speckle) noise: ``y = Q(clip(x + x c n, 0, 1))``, ``n ~ N(0, I)``.

    ``E y = x`` and ``std y = c x`` (before clipping). Training loss: :func:`squared_error`. The noise has
    zero mean, so the expected squared error is minimised by the clean value, as for Gaussian noise.
    The likelihood would weight each pixel by ``1 / (c x)^2``, which needs the unknown ``x`` and blows
    up in the dark; with MSE, bright (noisier) regions simply weigh more.

    Parameters
    ----------
    image : numpy.ndarray
        Clean image, floats in [0, 1].
    c : float
        Relative standard deviation, >= 0 (ES-WMV: 0.20, 0.35, 0.45).
    rng : numpy.random.Generator
        Source of the noise.
    bits : int or None
        Quantise to this many bits; None keeps floats.

    Returns
    -------
    numpy.ndarray
        float64 noisy image of the same shape, in [0, 1].
    """
    image = _clean_image(image)
    if not c >= 0:
        raise InputError(f"the speckle c must be >= 0, got {c}")
    return _finish(image + image * c * rng.standard_normal(image.shape), bits)


def squared_error(prediction: torch.Tensor, observation: torch.Tensor) -> torch.Tensor:
    """Squared error ``(p - y)^2`` per value; its expected value is minimised by ``E y``."""
    return (prediction - observation) ** 2


def absolute_error(prediction: torch.Tensor, observation: torch.Tensor) -> torch.Tensor:
    """Absolute error ``|p - y|`` per value; its expected value is minimised by the median of ``y``."""
    return torch.abs(prediction - observation)


def poisson_divergence(prediction: torch.Tensor, observation: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Poisson negative log-likelihood per value, as the generalised Kullback-Leibler divergence.

    ``y' log(y' / p') - y' + p'`` with ``y' = y + eps``, ``p' = p + eps``.

    For ``lam y ~ Poisson(lam p)`` the negative log-likelihood is ``lam (p - y log p)`` plus terms
    without ``p``; dividing by ``lam`` and adding ``y log y - y`` gives this divergence, so the loss
    needs no ``lam``, is >= 0 and is 0 at ``p = y``. The offset ``eps`` (a known background in both)
    keeps the value and gradient ``1 - y' / p'`` finite at ``p = 0`` and leaves the expected-loss
    minimiser exactly at ``E y``, for any ``lam``.

    We prefer it to MSE after the Anscombe transform: that transform only stabilises the variance
    from about 4 to 20 counts up, while ES-WMV's high level has ``lam = 5`` (at most 5 counts), and
    its squared-error minimiser is biased at low counts.

    Parameters
    ----------
    prediction : torch.Tensor
        Predicted clean image ``p`` >= 0.
    observation : torch.Tensor
        Noisy image ``y`` >= 0, in the same image units.
    eps : float
        Background offset in image units, > 0.

    Returns
    -------
    torch.Tensor
        The divergence of every value, same shape.
    """
    y, p = observation + eps, prediction + eps
    return y * torch.log(y / p) - y + p


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The loss of a run from elementwise losses: ``sum(w l) / sum(w)``, or ``mean(l)`` without weights.

    Weights of 0 and 1 select the values that count (observed, not held out).

    Parameters
    ----------
    values : torch.Tensor
        Elementwise losses ``l``.
    weights : torch.Tensor, optional
        ``w`` >= 0, broadcastable to ``values``, with a positive sum.

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    if weights is None:
        return torch.mean(values)
    return torch.sum(weights * values) / torch.sum(weights)


def anscombe(counts: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Anscombe variance-stabilising transform ``A(z) = 2 sqrt(z + 3/8)``.

    For ``z ~ Poisson(mu)``, ``Var A(z)`` is close to 1 once ``mu`` is about 20 or more. For an image
    of :func:`sample_poisson`, pass the counts ``lam y``.

    Parameters
    ----------
    counts : numpy.ndarray or torch.Tensor
        Counts ``z`` >= 0.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``A(z)``, same type and shape.
    """
    return generalised_anscombe(counts, 0.0)


def expected_anscombe(mean: np.ndarray) -> np.ndarray:
    """Expected Anscombe transform of Poisson counts: ``g(mu) = E[2 sqrt(Z + 3/8)]``, ``Z ~ Poisson(mu)``.

    ``g(mu) = sum_k e^-mu mu^k / k! 2 sqrt(k + 3/8)``, summed over ``|k - mu| <= 12 sqrt(mu) + 40``,
    outside which the Poisson probabilities are below 1e-15, for ``mu <= 1000``. Above, the fourth-order
    expansion of ``E sqrt(m + d)``, ``m = mu + 3/8``, ``d = Z - mu`` (moments ``0, mu, mu, 3 mu^2 + mu``):
    ``g = 2 sqrt(m) (1 - mu/(8 m^2) + mu/(16 m^3) - 5 (3 mu^2 + mu)/(128 m^4))``, off by about
    ``mu^-5/2`` (2e-9 at 1000). ``g(0) = 2 sqrt(3/8)``, and ``g(mu) - 2 sqrt(mu + 1/8) -> 0`` as ``mu``
    grows; at low counts ``g`` lies below the transform of the mean, which is the bias
    :func:`inverse_anscombe` undoes.

    Parameters
    ----------
    mean : numpy.ndarray
        Poisson means ``mu`` >= 0.

    Returns
    -------
    numpy.ndarray
        ``g(mu)`` in float64, same shape.
    """
    mean = np.asarray(mean, dtype=np.float64)
    if mean.size and (not np.all(np.isfinite(mean)) or mean.min() < 0):
        raise InputError("Poisson means must be finite and >= 0")
    shape, mean = mean.shape, np.atleast_1d(mean)
    m = mean + 0.375
    out = 2.0 * np.sqrt(m) * (1 - mean / (8 * m**2) + mean / (16 * m**3) - 5 * (3 * mean**2 + mean) / (128 * m**4))
    low = mean <= 1000.0
    mu = mean[low][:, None]
    if mu.size:
        reach = 12.0 * float(mu.max()) ** 0.5 + 40.0
        k = np.maximum(np.floor(mu - reach), 0.0) + np.arange(int(2 * reach) + 2)
        log_pmf = k * np.log(np.maximum(mu, np.finfo(np.float64).tiny)) - mu - gammaln(k + 1.0)
        out[low] = np.sum(np.exp(log_pmf) * 2.0 * np.sqrt(k + 0.375), axis=-1)
    return out.reshape(shape)


def generalised_anscombe(counts: np.ndarray | torch.Tensor, read_noise: float) -> np.ndarray | torch.Tensor:
    """Generalised Anscombe transform ``f(c) = 2 sqrt(c + 3/8 + s^2)`` (Makitalo and Foi, IEEE TIP 22(1), 2013).

    For ``c = z + n``, ``z ~ Poisson(mu)``, ``n ~ N(0, s^2)`` (both in counts), ``Var f(c)`` is close to 1;
    ``s = 0`` is :func:`anscombe`. Counts clipped at 0 (as in an image file) keep ``f`` real.

    Parameters
    ----------
    counts : numpy.ndarray or torch.Tensor
        ``c`` >= 0.
    read_noise : float
        ``s`` >= 0, the Gaussian part's standard deviation in counts.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``f(c)``, same type and shape.
    """
    if (counts < 0).any():
        raise InputError("Poisson counts must be >= 0 (clipped at 0, as in an image file)")
    return 2.0 * (counts + 0.375 + read_noise**2) ** 0.5


def expected_generalised_anscombe(mean: np.ndarray, read_noise: float) -> np.ndarray:
    """``g(mu) = E f(max(Z + s N, 0))``, ``Z ~ Poisson(mu)``, ``N ~ N(0, 1)``: the expected generalised Anscombe
    transform (:func:`generalised_anscombe`) of Poisson-Gaussian counts clipped at 0.

    ``g(mu) = sum_k p_k(mu) h(k)``, ``h(k) = E f(max(k + s N, 0))`` by the trapezoid rule on 801 points of
    ``N`` in [-8, 8], the sum over ``|k - mu| <= 12 sqrt(mu) + 40`` as in :func:`expected_anscombe`. Above
    ``mu = 1000`` (no clipping left), the fourth-order expansion of ``E sqrt(m + d)``, ``m = mu + 3/8 + s^2``,
    with the moments of ``d = Z + s N - mu``: ``0, mu + s^2, mu, 3 (mu + s^2)^2 + mu``. ``s = 0`` is
    :func:`expected_anscombe`.

    Parameters
    ----------
    mean : numpy.ndarray
        ``mu`` >= 0.
    read_noise : float
        ``s`` >= 0, in counts.

    Returns
    -------
    numpy.ndarray
        ``g(mu)`` in float64, same shape.
    """
    if read_noise == 0:
        return expected_anscombe(mean)
    mean = np.asarray(mean, dtype=np.float64)
    if mean.size and (not np.all(np.isfinite(mean)) or mean.min() < 0):
        raise InputError("Poisson means must be finite and >= 0")
    shape, mean = mean.shape, np.atleast_1d(mean)
    variance, m = mean + read_noise**2, mean + 0.375 + read_noise**2
    out = 2.0 * np.sqrt(m) * (1 - variance / (8 * m**2) + mean / (16 * m**3)
                              - 5 * (3 * variance**2 + mean) / (128 * m**4))
    low = mean <= 1000.0
    mu = mean[low][:, None]
    if mu.size:
        reach = 12.0 * float(mu.max()) ** 0.5 + 40.0
        k = np.arange(int(mu.max() + reach) + 2, dtype=np.float64)
        normal = np.linspace(-8.0, 8.0, 801)
        weights = np.exp(-0.5 * normal**2)
        weights[[0, -1]] *= 0.5
        weights /= weights.sum()
        per_count = generalised_anscombe(np.maximum(k[:, None] + read_noise * normal, 0.0), read_noise) @ weights
        log_pmf = k * np.log(np.maximum(mu, np.finfo(np.float64).tiny)) - mu - gammaln(k + 1.0)
        out[low] = np.exp(log_pmf) @ per_count
    return out.reshape(shape)


def inverse_anscombe(transformed: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Closed-form approximation of the exact unbiased inverse of the Anscombe transform.

    ``I(D) = D^2/4 + sqrt(3/2) D^-1/4 - 11 D^-2/8 + 5 sqrt(3/2) D^-3/8 - 1/8``
    (Makitalo and Foi, IEEE Trans. Image Process. 20(9), 2011). It maps ``E A(z)`` back to ``mu`` for
    ``z ~ Poisson(mu)``, where the algebraic inverse ``D^2/4 - 3/8`` is biased at low counts.
    ``I(A(0)) = 0``; values below ``A(0) = sqrt(3/2)`` give 0.

    Parameters
    ----------
    transformed : numpy.ndarray or torch.Tensor
        ``D``, e.g. a denoised Anscombe-domain image.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Estimated Poisson mean ``mu``, same type and shape.
    """
    floor = 1.5**0.5
    if isinstance(transformed, torch.Tensor):
        d = transformed.clamp(min=floor)
    else:
        d = np.maximum(transformed, floor)
    return 0.25 * d**2 + 0.25 * floor / d - 1.375 / d**2 + 0.625 * floor / d**3 - 0.125


@dataclass(frozen=True)
class NoiseModel:
    """A noise model: its name, what its level means, a sampler and a training loss.

    ``sample(image, level, rng, bits=8)`` makes a noisy image; ``loss(prediction, observation)``
    is the elementwise training loss (one value per pixel value), which needs no level.
    """

    name: str
    level_meaning: str
    sample: Callable[..., np.ndarray]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


NOISE_MODELS: dict[str, NoiseModel] = {
    "gaussian": NoiseModel("gaussian", "sigma, the standard deviation in image units", sample_gaussian,
                          squared_error),
    "poisson": NoiseModel("poisson", "photons at white (Poisson lam); fewer is noisier", sample_poisson,
                         poisson_divergence),
    "impulse": NoiseModel("impulse", "amount, the probability a value is replaced by 0 or 1", sample_impulse,
                          absolute_error),
    "speckle": NoiseModel("speckle", "c, the standard deviation relative to the clean value", sample_speckle,
                          squared_error),
}
"""The noise models by name."""


def get_noise_model(name: str) -> NoiseModel:
    """The noise model called ``name``; :class:`InputError` listing the valid names if there is none."""
    try:
        return NOISE_MODELS[name]
    except KeyError:
        raise InputError(f"unknown noise model {name!r}; choose one of {', '.join(NOISE_MODELS)}") from None
