"""DDPM noise schedules and the x0-space noise scale of each timestep.

Pure functions on numpy arrays. Timesteps are 0-based: ``betas[t]`` for ``t = 0 .. T-1``.

The forward process of DDPM (Ho et al., 2020) is ``y_t = sqrt(abar_t) * y + sqrt(1 - abar_t) * z``
with ``abar_t = prod_{s <= t} (1 - beta_s)``. Dividing by ``sqrt(abar_t)`` keeps the image scale
and gives the x0-space target ``y + s_t * z`` with ``s_t = sqrt((1 - abar_t) / abar_t)``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SCHEDULES",
    "alphas_cumprod",
    "beta_schedule",
    "geometric_scales",
    "timestep_for_scale",
    "x0_noise_scale",
]

SCHEDULES = ("linear", "scaled_linear", "sigmoid", "cosine")


def beta_schedule(name: str, num_timesteps: int = 1000, beta_start: float = 1e-4,
                  beta_end: float = 0.02, cosine_offset: float = 0.008) -> np.ndarray:
    """Variances ``beta_t`` of a DDPM forward process.

    Parameters
    ----------
    name : {"linear", "scaled_linear", "sigmoid", "cosine"}
        - ``linear``: ``beta = linspace(beta_start, beta_end, T)`` (Ho et al., 2020);
        - ``scaled_linear``: ``beta = linspace(sqrt(beta_start), sqrt(beta_end), T)**2``;
        - ``sigmoid``: ``beta = sigmoid(linspace(-6, 6, T)) * (beta_end - beta_start) + beta_start``;
        - ``cosine`` (Nichol & Dhariwal, 2021): ``abar_t = f(t) / f(0)`` with
          ``f(t) = cos((t/T + s) / (1 + s) * pi/2)**2``, ``beta_t = 1 - abar_t / abar_{t-1}``
          clipped to 0.999. ``beta_start``/``beta_end`` are ignored.
    num_timesteps : int
        ``T``.
    beta_start, beta_end : float
        First and last ``beta`` of the linear-type schedules.
    cosine_offset : float
        ``s`` of the cosine schedule.

    Returns
    -------
    numpy.ndarray
        ``betas`` of shape ``(T,)``, float64, in (0, 1).
    """
    if num_timesteps < 1:
        raise ValueError("num_timesteps must be at least 1")
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError("need 0 < beta_start <= beta_end < 1")
    t = num_timesteps
    if name == "linear":
        return np.linspace(beta_start, beta_end, t)
    if name == "scaled_linear":
        return np.linspace(np.sqrt(beta_start), np.sqrt(beta_end), t) ** 2
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-np.linspace(-6.0, 6.0, t))) * (beta_end - beta_start) + beta_start
    if name == "cosine":
        steps = np.arange(t + 1, dtype=np.float64) / t
        f = np.cos((steps + cosine_offset) / (1.0 + cosine_offset) * np.pi / 2) ** 2
        abar = f / f[0]
        return np.clip(1.0 - abar[1:] / abar[:-1], 0.0, 0.999)
    raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")


def alphas_cumprod(betas: np.ndarray) -> np.ndarray:
    """Cumulative signal fraction ``abar_t = prod_{s <= t} (1 - beta_s)``.

    Parameters
    ----------
    betas : numpy.ndarray
        Schedule from :func:`beta_schedule`.

    Returns
    -------
    numpy.ndarray
        ``abar`` of the same shape, decreasing from ``1 - beta_0``.
    """
    return np.cumprod(1.0 - np.asarray(betas, dtype=np.float64))


def x0_noise_scale(abar: np.ndarray | float) -> np.ndarray:
    """Noise scale of the x0-space target: ``s_t = sqrt((1 - abar_t) / abar_t)``.

    ``y_t / sqrt(abar_t) = y + s_t * z`` for the DDPM marginal ``y_t``.

    Parameters
    ----------
    abar : array_like
        Values of ``abar_t`` in (0, 1].

    Returns
    -------
    numpy.ndarray
        ``s_t``, increasing in ``t``.
    """
    abar = np.asarray(abar, dtype=np.float64)
    return np.sqrt((1.0 - abar) / abar)


def timestep_for_scale(scales: np.ndarray, scale: float) -> int:
    """Timestep whose x0-space noise scale is closest to ``scale`` (in log scale).

    Parameters
    ----------
    scales : numpy.ndarray
        ``s_t`` of a schedule, from :func:`x0_noise_scale`.
    scale : float
        Wanted noise scale, > 0.

    Returns
    -------
    int
        The 0-based timestep ``argmin_t |log s_t - log scale|``.
    """
    return int(np.argmin(np.abs(np.log(scales) - np.log(scale))))


def geometric_scales(s_max: float, s_min: float, num: int) -> np.ndarray:
    """``num`` noise scales from ``s_max`` down to ``s_min`` in geometric progression.

    ``s_k = s_max * (s_min / s_max) ** (k / (num - 1))`` for ``k = 0 .. num-1``.

    Parameters
    ----------
    s_max, s_min : float
        First (largest) and last (smallest) scale, ``s_max >= s_min > 0``.
    num : int
        Number of scales, >= 1 (one scale gives ``[s_min]``).

    Returns
    -------
    numpy.ndarray
        Decreasing scales.
    """
    if num < 1:
        raise ValueError("need at least one stage")
    if not s_max >= s_min > 0:
        raise ValueError("need s_max >= s_min > 0")
    if num == 1:
        return np.array([float(s_min)])
    return s_max * (s_min / s_max) ** (np.arange(num) / (num - 1))
