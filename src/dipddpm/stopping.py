"""Stoppers: decide, from the training trajectory alone, which iterate to return and when to stop.

Every stopper has one method, :meth:`Stopper.observe`, called once per iteration with an
:class:`Observation`; it returns True once the stopper has fired. Many stoppers can watch one
run; after the run each one tells where it stopped (``fired_at``, or ``None`` when the run
ended first) and what it would return (``best_iteration``, ``best_output``).

Stoppers that compare with the observation ``y`` (recorruption, discrepancy, held-out) use the
measured output ``A xbar`` and may weight the measured values (0/1: observed or not, held out or
not). Only :class:`OracleStopper` sees a clean image; it is evaluation only.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .colour import COMPONENTS, component_mse, from_opponent, to_opponent
from .errors import InputError
from .metrics import tensor_psnr
from .noise import clipped_mean_inverse, clipped_mean_slope, clipped_noise_moments
from .noise_models import squared_error, weighted_mean
from .pilot import pilot_estimate

__all__ = [
    "ComponentMinima",
    "DiscrepancyStopper",
    "ExponentialVarianceStopper",
    "FixedStopper",
    "HeldOutStopper",
    "MinimumTracker",
    "Observation",
    "OracleStopper",
    "RecorruptionStopper",
    "ScheduleEndStopper",
    "Stopper",
    "WindowedVarianceStopper",
    "estimated_psnr",
    "holdout_mask",
    "noise_cross_estimate",
    "patience_exhausted",
    "recorruption_offset",
    "validation_target",
]


@dataclass
class Observation:
    """What a stopper sees after one training step.

    Attributes
    ----------
    iteration : int
        Steps done so far (1-based).
    output : torch.Tensor
        The image the run would return now (EMA of outputs by default), detached.
    raw : torch.Tensor
        The network's raw output of this step, detached.
    stage : int
        Curriculum stage of this step (0-based).
    final_stage : bool
        Whether the step trained on the final stage's target.
    schedule_finished : bool
        Whether the final stage has spent its budget.
    measured : torch.Tensor, optional
        ``A(output)``, the output as the forward operator measures it, detached; defaults to
        ``output`` (denoising, ``A = I``).
    """

    iteration: int
    output: torch.Tensor
    raw: torch.Tensor
    stage: int
    final_stage: bool
    schedule_finished: bool
    measured: torch.Tensor | None = None

    def __post_init__(self):
        if self.measured is None:
            self.measured = self.output


def _mse(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor | None = None) -> float:
    return float(weighted_mean(squared_error(a, b), weights))


class Stopper:
    """Base class. Subclasses implement :meth:`_update` and set ``value`` (their criterion).

    Attributes
    ----------
    name : str
        Registry name.
    value : float or None
        The criterion at the last observed iteration (``None`` until defined).
    best_iteration : int or None
        Iteration of the iterate this stopper returns.
    best_output : torch.Tensor or None
        That iterate.
    fired_at : int or None
        Iteration at which it decided to stop.
    """

    name = "stopper"
    evaluation_only = False

    def __init__(self):
        self.value: float | None = None
        self.best_iteration: int | None = None
        self.best_output: torch.Tensor | None = None
        self.fired_at: int | None = None

    def observe(self, obs: Observation) -> bool:
        """Update with one iteration; True once this stopper has fired (it then stays frozen)."""
        if self.fired_at is None and self._update(obs):
            self.fired_at = obs.iteration
        return self.fired_at is not None

    def _update(self, obs: Observation) -> bool:
        raise NotImplementedError

    def _keep(self, obs: Observation) -> None:
        self.best_iteration = obs.iteration
        self.best_output = obs.output.clone()

    def summary(self) -> dict:
        """JSON-ready description of where this stopper stopped."""
        return {"name": self.name, "fired_at": self.fired_at, "best_iteration": self.best_iteration,
                "evaluation_only": self.evaluation_only}


def patience_exhausted(iteration: int, best_iteration: int, start: int, patience: int) -> bool:
    """The patience rule of the minimum-tracking stoppers: fire when ``t - max(t0, t*) >= P``.

    ``t`` is the iteration, ``t*`` that of the best value so far, ``t0`` where counting starts
    (e.g. the final stage) and ``P`` the patience.

    Parameters
    ----------
    iteration, best_iteration, start, patience : int

    Returns
    -------
    bool
    """
    return iteration - max(start, best_iteration) >= patience


def delay_steps(minimum_iteration: int, delay: float) -> int:
    """How far after the minimum the returned iterate lies: ``round(delay * t*)`` iterations.

    Parameters
    ----------
    minimum_iteration : int
        ``t*``, the iteration of the criterion's minimum.
    delay : float
        ``rho >= 0``, a fraction of ``t*``.

    Returns
    -------
    int
    """
    return round(delay * minimum_iteration)


class MinimumTracker:
    """The lowest value of one criterion so far, and which iterate to keep: the minimum's, or with ``delay``
    ``rho > 0`` the one ``round(rho t*)`` iterations after it (:func:`delay_steps`; until that one is reached,
    the minimum itself).

    Parameters
    ----------
    delay : float
        ``rho >= 0``.
    """

    def __init__(self, delay: float = 0.0):
        if not delay >= 0:
            raise ValueError("delay must be a fraction >= 0")
        self.delay = delay
        self.best_value = math.inf
        self.minimum_iteration: int | None = None
        self.kept_iteration: int | None = None

    def update(self, iteration: int, value: float) -> bool:
        """Record the criterion ``value`` of ``iteration``; True when that iterate is now the one to keep."""
        keep = value < self.best_value
        if keep:
            self.best_value, self.minimum_iteration = value, iteration
        delay = self.delay_steps
        keep = keep or bool(delay and self.kept_iteration < self.minimum_iteration + delay <= iteration)
        if keep:
            self.kept_iteration = iteration
        return keep

    @property
    def delay_steps(self) -> int:
        """How far after the minimum the kept iterate lies (0 before any minimum)."""
        return delay_steps(self.minimum_iteration or 0, self.delay)

    def exhausted(self, iteration: int, start: int, patience: int) -> bool:
        """:func:`patience_exhausted` counted from the minimum, and not before the delayed iterate was kept."""
        return patience_exhausted(iteration, self.minimum_iteration or 0, start, max(patience, self.delay_steps))


class _MinimumWithPatience(Stopper):
    """Track the iterate with the lowest ``value`` and return it, or the one ``delay`` after it
    (:class:`MinimumTracker`); fire when :func:`patience_exhausted` says so, counting from the minimum, and not
    before the delayed iterate was kept. ``kept_value`` is the criterion at the returned iterate."""

    def __init__(self, patience: int, delay: float = 0.0):
        super().__init__()
        if patience < 1:
            raise ValueError("patience must be at least 1")
        self.patience = patience
        self.minimum = MinimumTracker(delay)
        self.kept_value: float | None = None

    @property
    def delay(self) -> float:
        return self.minimum.delay

    @property
    def best_value(self) -> float:
        return self.minimum.best_value

    @property
    def minimum_iteration(self) -> int | None:
        return self.minimum.minimum_iteration

    def _criterion(self, obs: Observation) -> float | None:
        raise NotImplementedError

    def _patience_start(self, obs: Observation) -> int:
        return 0

    def _keep(self, obs: Observation) -> None:
        super()._keep(obs)
        self.kept_value = self.value

    def summary(self) -> dict:
        return {**super().summary(), "minimum_iteration": self.minimum_iteration, "delay": self.delay}

    def _update(self, obs: Observation) -> bool:
        self.value = self._criterion(obs)
        if self.value is None:
            return False
        if self.minimum.update(obs.iteration, self.value):
            self._keep(obs)
        return self.minimum.exhausted(obs.iteration, self._patience_start(obs), self.patience)


class ComponentMinima:
    """Each opponent colour component's own minimum (:mod:`dipddpm.colour`), and the image made of them.

    Component ``c`` of the iterates ``xbar_t`` has the error ``e_c(t) = mean((T (xbar_t - target))_c^2)``
    (:func:`dipddpm.colour.component_mse`); each has a :class:`MinimumTracker` (with ``delay``), and the image is
    ``T^t (Y(t_Y), C1(t_C1), C2(t_C2))`` with ``t_c`` the iterate each keeps. Against a recorruption validation
    copy each ``e_c`` is its component's true error plus a constant (``T`` is orthonormal: the training and
    validation noises stay uncorrelated component by component), so each ``t_c`` estimates that component's
    best iterate; against the clean image (evaluation only) each ``t_c`` is that best iterate.

    Parameters
    ----------
    target : torch.Tensor
        What the iterates are compared with, shape ``(1, 3, H, W)`` (RGB).
    delay : float
        As in :class:`MinimumTracker`.
    """

    def __init__(self, target: torch.Tensor, delay: float = 0.0):
        if target.ndim != 4 or target.shape[1] != 3:
            raise ValueError(f"a colour split needs a (1, 3, H, W) image, got shape {tuple(target.shape)}")
        self.target = target
        self.trackers = [MinimumTracker(delay) for _ in COMPONENTS]
        self._kept: torch.Tensor | None = None  # the kept iterates' components, in the opponent basis

    def observe(self, iteration: int, output: torch.Tensor) -> bool:
        """Record one iterate; True when it replaced the kept iterate of at least one component."""
        keep = [t.update(iteration, e) for t, e in zip(self.trackers, component_mse(output, self.target),
                                                        strict=True)]
        if not any(keep):
            return False
        components = to_opponent(output.detach().double())
        if self._kept is None:
            self._kept = components.clone()
        for c, kept in enumerate(keep):
            if kept:
                self._kept[:, c] = components[:, c]
        return True

    def image(self) -> torch.Tensor | None:
        """The RGB image made of each component's kept iterate (the dtype of ``target``), or None before any."""
        return None if self._kept is None else from_opponent(self._kept).to(self.target.dtype)

    @property
    def iterations(self) -> dict[str, int | None]:
        """The iterate each component keeps, by name."""
        return {name: t.kept_iteration for name, t in zip(COMPONENTS, self.trackers, strict=True)}

    @property
    def latest(self) -> int | None:
        """The latest iterate the image draws on."""
        kept = [t.kept_iteration for t in self.trackers if t.kept_iteration is not None]
        return max(kept) if kept else None

    def summary(self) -> dict:
        return {name: {"minimum_iteration": t.minimum_iteration, "kept_iteration": t.kept_iteration}
                for name, t in zip(COMPONENTS, self.trackers, strict=True)}


class _FinalStageMinimum(_MinimumWithPatience):
    """A minimum whose patience counts only from the first step of the curriculum's final stage."""

    def __init__(self, patience: int, delay: float = 0.0):
        super().__init__(patience, delay)
        self.final_start: int | None = None

    def _patience_start(self, obs: Observation) -> int:
        if not obs.final_stage:
            return obs.iteration
        if self.final_start is None:
            self.final_start = obs.iteration
        return self.final_start


def validation_target(observation: torch.Tensor, noise: torch.Tensor, sigma: float, ratio: float,
                      scale: torch.Tensor | None = None) -> torch.Tensor:
    """The recorruption validation copy ``ytilde = y - c z``, ``c = sigma / a`` (or a given per-value ``c``).

    For Gaussian ``n``, ``n + a sigma z`` and ``n - (sigma / a) z`` are uncorrelated,
    hence independent: a net trained on ``y + a sigma z`` never sees ``ytilde``'s noise. For clipped
    noise of variance ``v < sigma^2`` the scale of :func:`validation_scale` keeps them uncorrelated.

    Parameters
    ----------
    observation, noise : torch.Tensor
        ``y`` and the fixed ``z``.
    sigma : float
        Noise standard deviation of ``y``.
    ratio : float
        ``a > 0``.
    scale : torch.Tensor, optional
        ``c`` per value (:func:`validation_scale`); default ``sigma / a`` everywhere.

    Returns
    -------
    torch.Tensor
    """
    return observation - (sigma / ratio if scale is None else scale) * noise


def validation_scale(sigma: float, ratio: float, pilot: torch.Tensor) -> torch.Tensor:
    """``c = v(x_hat) / (a sigma)``: the validation noise's scale that keeps it uncorrelated with clipped noise.

    For ``y = clip(x + n, 0, 1)`` the noise about the clipped mean, ``e = y - m(x)``, has variance ``v(x) <= sigma^2``
    (:func:`dipddpm.noise.clipped_noise_moments`), so ``E[(e + a sigma z)(e - c z)] = v - a sigma c``: zero for
    ``c = v / (a sigma)``, negative (``v - sigma^2``) for the plain ``c = sigma / a``. ``x`` is unknown; ``x_hat =
    m^{-1}(g)`` from a pilot ``g(y)`` (:func:`dipddpm.pilot.pilot_estimate`), which never sees ``z``, so the copy
    ``y - c z`` stays a function of ``y`` and ``z`` whose noise is uncorrelated with the training noise up to the
    pilot's error in ``v``.

    Parameters
    ----------
    sigma : float
        Noise standard deviation of ``y`` before clipping.
    ratio : float
        ``a > 0``.
    pilot : torch.Tensor
        ``g(y)``, an estimate of the clipped mean.

    Returns
    -------
    torch.Tensor
        ``c``, float64, the shape and device of ``pilot``.
    """
    clean = clipped_mean_inverse(pilot.detach().double().clamp(0.0, 1.0).cpu().numpy(), sigma)
    bias, second = clipped_noise_moments(clean, sigma)
    return torch.from_numpy((second - bias**2) / (ratio * sigma)).to(pilot.device)


def recorruption_offset(sigma: float, ratio: float, noise: torch.Tensor, estimate: torch.Tensor | None = None,
                        weights: torch.Tensor | None = None, central: bool = False,
                        scale: torch.Tensor | None = None) -> float:
    """What to subtract from the validation error to estimate the MSE: ``s^2 + mean((c z)^2)``, ``c = sigma/a``.

    Without clipping ``E ||xbar - ytilde||^2 / N = MSE(xbar, x) + sigma^2 + (sigma/a)^2 mean(z^2)``, so
    ``s^2 = sigma^2`` and, with ``mean(z^2) -> 1``, this is the ``sigma^2 (1 + 1/a^2)`` of the method; using
    the drawn ``z`` removes its sampling error.

    For an observation clipped to [0, 1], pass the fit ``xbar``. Clipped noise ``e = clip(x + n) - x`` has
    a mean ``b(x)`` and a variance ``v(x)`` that shrink near black and white
    (:func:`dipddpm.noise.clipped_noise_moments`), and the net fits ``m(x) = x + b(x)``, not ``x``: with
    ``xbar = m(x) + d``, ``E ||xbar - ytilde||^2 / N = mean(d^2) + mean(v) + (sigma/a)^2 mean(z^2)`` while
    ``MSE(xbar, x) = mean(d^2) + mean(b^2) + 2 mean(b d)``. So ``s^2 = mean(v - b^2) = mean(E e^2 - 2 b^2)``,
    evaluated at ``x = m^{-1}(xbar)`` (:func:`dipddpm.noise.clipped_mean_inverse`); the small ``mean(b d)``
    is left out. With ``central``, ``s^2 = mean(v)``: ``v - offset`` then estimates ``mean(d^2)``, the error
    of the fit as an estimate of ``m(x)`` (what a declipped result needs). With ``weights``, the means run
    over the weighted values only. With a per-value ``scale`` ``c`` (:func:`validation_scale`), the copy's own
    noise is ``c z`` and its energy ``mean((c z)^2)``.

    Parameters
    ----------
    sigma : float
        Noise standard deviation of ``y`` (before clipping).
    ratio : float
        ``a``.
    noise : torch.Tensor
        The fixed ``z``.
    estimate : torch.Tensor, optional
        The fit ``xbar`` (an estimate of the clipped mean ``m(x)``), for a clipped observation.
    weights : torch.Tensor, optional
        0/1 weights of the measured values that count (default: all).
    central : bool
        Subtract the clipped noise's variance only (above).
    scale : torch.Tensor, optional
        The validation copy's ``c`` per value (default ``sigma / a``).

    Returns
    -------
    float
    """
    if estimate is None:
        energy = sigma**2
    else:
        clean = clipped_mean_inverse(estimate.detach().double().clamp(0.0, 1.0).cpu().numpy(), sigma)
        w = None if weights is None else np.broadcast_to(weights.detach().double().cpu().numpy(), clean.shape)
        bias, second = clipped_noise_moments(clean, sigma)
        energy = float(np.average(second - (1 if central else 2) * bias**2, weights=w))
    return energy + _z_energy(noise if scale is None else scale * noise, weights,
                              (sigma / ratio) ** 2 if scale is None else 1.0)


def _z_energy(noise: torch.Tensor, weights: torch.Tensor | None, factor: float = 1.0) -> float:
    """``factor * mean_w(noise^2)``."""
    return factor * float(weighted_mean(noise.double() ** 2, None if weights is None else weights.double()))


def noise_cross_estimate(observation: torch.Tensor, pilot: torch.Tensor, noise: torch.Tensor,
                         weights: torch.Tensor | None = None) -> float:
    """``c_hat = mean_w((y - g) z)``, an estimate of the unseen ``mean_w(n z)`` from a pilot ``g = g(y)``.

    With ``y = m + n`` (``m`` the mean of ``y``), ``c_hat = mean_w(n z) + mean_w((m - g) z)``. The pilot is a
    function of ``y`` alone, so given ``y`` the second term has mean 0 over ``z`` and a standard deviation of
    ``sqrt(sum w^2 (m - g)^2) / sum w``, against ``sqrt(sum w^2 n^2) / sum w`` for ``mean_w(n z)`` itself: the
    estimate removes the share of the cross term that the pilot's error leaves (:mod:`dipddpm.pilot`).

    Parameters
    ----------
    observation, pilot, noise : torch.Tensor
        ``y``, ``g(y)`` and the fixed ``z`` (broadcastable).
    weights : torch.Tensor, optional
        Non-negative weights of the values (default: all equal).

    Returns
    -------
    float
    """
    product = (observation.double() - pilot.double()) * noise.double()
    return float(weighted_mean(product, None if weights is None else
                               torch.broadcast_to(weights.double(), product.shape)))


def estimated_psnr(validation_mse: float, offset: float) -> float | None:
    """``PSNR_hat = -10 log10(validation_mse - offset)``, or None when the difference is <= 0.

    Parameters
    ----------
    validation_mse : float
        ``||xbar - ytilde||^2 / N``.
    offset : float
        From :func:`recorruption_offset`.

    Returns
    -------
    float or None
        Estimated PSNR in dB for a data range of 1.
    """
    excess = validation_mse - offset
    return -10.0 * math.log10(excess) if excess > 0 else None


@dataclass(frozen=True)
class _RecorruptionEstimate:
    """The pieces of a recorruption estimate at one returned iterate (``version``: which one, counted each time the
    returned iterate changes): the weighted validation error ``value``,
    the weighted ``offset``, ``gain`` (the weights' mean), the weighted energy ``mean((c z)^2)`` of the validation
    copy's own noise (``c = sigma/a`` or :func:`validation_scale`), the effective count
    of values ``(sum w)^2 / sum w^2``, the correction ``cross = 2 (sigma/a) c_hat`` for the cross term
    (:func:`noise_cross_estimate`; 0 without a pilot) and ``pilot_distance = mean_w((A xbar - g)^2)`` (None
    without a pilot)."""

    version: int
    value: float
    offset: float
    gain: float
    copy_energy: float
    count: float
    cross: float = 0.0
    pilot_distance: float | None = None

    @property
    def fit_error(self) -> float:
        """``v - offset + 2 (sigma/a) c_hat``: the estimated weighted error of the fit, before the gain."""
        return self.value - self.offset + self.cross


class RecorruptionStopper(_FinalStageMinimum):
    """Minimum of the recorruption validation error (the default stopper for Gaussian noise).

    The final stage trains on ``y + a sigma z``; the stopper watches
    ``v_t = ||A xbar_t - ytilde||^2 / N`` with ``ytilde = y - (sigma/a) z``. Because the two noises
    are independent, ``E v_t = MSE(A xbar_t, A x) + offset`` (:func:`recorruption_offset`): the
    argmin of ``v_t`` estimates the best iterate without the clean image. In earlier stages
    (``s_k > a sigma``) the training noise is negatively correlated with ``ytilde``'s, so
    ``v_t`` over-estimates the error there and cannot cause an early stop; patience counts only
    from the start of the final stage. The independence holds for Gaussian noise only. With
    ``weights`` the means run over the weighted measured values (e.g. the observed pixels of an
    inpainting mask), and the PSNR estimate is that of ``A xbar`` on them.

    Parameters
    ----------
    observation : torch.Tensor
        ``y``.
    noise : torch.Tensor
        The fixed ``z``.
    sigma : float
        Noise standard deviation of ``y``.
    ratio : float
        ``a``.
    patience : int
        Iterations without a new minimum (within the final stage) before firing.
    clipped : bool
        Whether ``y`` was clipped to [0, 1] (then the PSNR estimate allows for the smaller noise
        near black and white).
    sigma_rel_error : float
        Relative uncertainty of ``sigma`` (0 when it is known), used only for the range of the
        PSNR estimate.
    weights : torch.Tensor, optional
        0/1 weights of the measured values that count (default: all).
    declipped : bool
        The result will be the declipped fit ``m^{-1}(xbar)`` (:func:`dipddpm.noise.clipped_mean_inverse`;
        ``restore_tensor`` does this for clipped observations): the estimate is then of its error,
        ``mean(d^2 / m'(x)^2)``, the validation error and the offset weighted by ``1 / m'(x)^2`` (central
        offset; :attr:`estimated_mse`).
    correct_cross : bool
        Estimate the cross term ``-2 (sigma/a) mean(n z)`` of the validation error from a pilot ``g(y)``
        (:func:`dipddpm.pilot.pilot_estimate`, :func:`noise_cross_estimate`) and remove it from the PSNR
        estimate. The stop does not change (the term is the same at every iteration).
    delay : float
        Return the iterate ``round(delay t*)`` iterations after the validation minimum ``t*`` (0: the minimum;
        what ensemble members use, :attr:`dipddpm.config.StoppingConfig.ensemble_delay`).
    clip_aware : bool
        For a clipped observation, validate on ``y - c z`` with ``c = v(x_hat) / (a sigma)`` per value
        (:func:`validation_scale`, ``x_hat`` from the pilot), whose noise is uncorrelated with the clipped
        training noise; the offset and the cross term follow ``c``.
    split_colour : bool
        For an RGB image, return each opponent colour component (luminance and two chrominances,
        :mod:`dipddpm.colour`) at its own validation minimum over the iterations run (:class:`ComponentMinima`,
        with ``delay``): chrominance, which holds little of an image's detail, is best early, luminance later.
        The run still ends when the whole image's patience has run out, so it is no longer; ``best_iteration``
        is then the latest iterate the result draws on, ``kept_value`` the composed image's validation error.
        Denoising only (no ``weights``).
    """

    name = "recorruption"

    def __init__(self, observation: torch.Tensor, noise: torch.Tensor, sigma: float, ratio: float,
                 patience: int = 150, clipped: bool = True, sigma_rel_error: float = 0.0,
                 weights: torch.Tensor | None = None, declipped: bool = False, correct_cross: bool = True,
                 delay: float = 0.0, clip_aware: bool = False, split_colour: bool = False):
        super().__init__(patience, delay)
        if split_colour and weights is not None:
            raise ValueError("a colour split needs every value measured (no weights)")
        self.declipped = declipped and clipped
        self.observation = observation
        self._pilot: torch.Tensor | None = None
        self.scale: torch.Tensor | None = None
        if clip_aware and clipped:
            self._pilot = pilot_estimate(observation, sigma)
            self.scale = validation_scale(sigma, ratio, self._pilot).to(observation.dtype)
        self.validation = validation_target(observation, noise, sigma, ratio, self.scale)
        self.noise = noise
        self.sigma = sigma
        self.ratio = ratio
        self.clipped = clipped
        self.sigma_rel_error = sigma_rel_error
        self.weights = weights
        self.correct_cross = correct_cross
        self._best_measured: torch.Tensor | None = None  # A(best_output) when it is not best_output itself
        self._pieces: _RecorruptionEstimate | None = None
        self._kept_count = 0  # how often the returned iterate changed (the estimate's pieces are of one of them)
        self.components = ComponentMinima(self.validation, delay) if split_colour else None

    def _criterion(self, obs: Observation) -> float:
        return _mse(obs.measured, self.validation, self.weights)

    def _copy_energy(self, weights: torch.Tensor | None) -> float:
        """``mean_w((c z)^2)``, the validation copy's own noise energy."""
        if self.scale is None:
            return _z_energy(self.noise, weights, (self.sigma / self.ratio) ** 2)
        return _z_energy(self.scale * self.noise, weights)

    def _keep(self, obs: Observation) -> None:
        if self.components is not None:
            return  # a split result is kept per component (_update); the whole image's minimum only times the run
        super()._keep(obs)
        self._best_measured = None if obs.measured is obs.output else obs.measured.clone()
        self._kept_count += 1

    def _update(self, obs: Observation) -> bool:
        fired = super()._update(obs)
        if self.components is not None and self.components.observe(obs.iteration, obs.output):
            self.best_output, self.best_iteration = self.components.image(), self.components.latest
            self.kept_value = _mse(self.best_output, self.validation)
            self._kept_count += 1
        return fired

    def _estimate(self) -> _RecorruptionEstimate | None:
        """The estimate's pieces at the returned iterate, computed once per returned iterate: with clipping
        they are a pass over the whole image, and the estimate, its range and the summary all read them."""
        if self.best_output is None:
            return None
        if self._pieces is None or self._pieces.version != self._kept_count:
            measured = self.best_output if self._best_measured is None else self._best_measured
            weights, gain, value = self.weights, 1.0, self.kept_value
            if self.declipped:
                fit = measured.detach().double().clamp(0.0, 1.0)
                slope = clipped_mean_slope(clipped_mean_inverse(fit.cpu().numpy(), self.sigma), self.sigma)
                error_weights = torch.from_numpy(1.0 / np.maximum(slope, 0.5) ** 2).to(fit.device)
                weights = error_weights if self.weights is None else error_weights * self.weights.double()
                gain = float(weighted_mean(weights, None if self.weights is None else
                                           torch.broadcast_to(self.weights.double(), weights.shape)))
                value = _mse(measured.detach().double(), self.validation.double(), weights)
            full = torch.broadcast_to(torch.as_tensor(1.0 if weights is None else weights).double(), self.noise.shape)
            offset = recorruption_offset(self.sigma, self.ratio, self.noise, measured if self.clipped else None,
                                         weights, central=self.declipped, scale=self.scale)
            cross, distance = 0.0, None
            if self.correct_cross:
                if self._pilot is None:
                    self._pilot = pilot_estimate(self.observation, self.sigma)
                cross = (2 * (self.sigma / self.ratio) * noise_cross_estimate(self.observation, self._pilot,
                                                                              self.noise, weights)
                         if self.scale is None else
                         2 * noise_cross_estimate(self.observation, self._pilot, self.scale * self.noise, weights))
                distance = _mse(measured.detach().double(), self._pilot.double(), weights)
            self._pieces = _RecorruptionEstimate(
                version=self._kept_count, value=value, offset=offset, gain=gain,
                copy_energy=self._copy_energy(weights), count=float(full.sum() ** 2 / (full**2).sum()),
                cross=cross, pilot_distance=distance)
        return self._pieces

    @property
    def offset(self) -> float | None:
        """Noise energy of ``ytilde`` at the returned iterate (:func:`recorruption_offset`), with the estimate's
        pixel weights (:attr:`error_gain`)."""
        pieces = self._estimate()
        return None if pieces is None else pieces.offset

    @property
    def error_gain(self) -> float | None:
        """``mean(1 / m'(x)^2)`` at the declipped fit (1 when not declipped): how much declipping scales the
        fit's error on average (:func:`dipddpm.noise.clipped_mean_slope`). The estimate weighs each value's
        validation error and offset by ``1 / m'(x)^2`` and multiplies their difference by this mean."""
        pieces = self._estimate()
        return None if pieces is None else pieces.gain

    @property
    def estimated_mse(self) -> float | None:
        """The estimated MSE of the result: ``(v - offset + 2 (sigma/a) c_hat) * error_gain``, ``v``, the offset
        and the cross-term estimate ``c_hat`` (0 without ``correct_cross``) with the estimate's weights: for a
        declipped result ``mean(w (d^2 - s^2)) = mean(d^2 / m'(x)^2)`` with ``w = 1 / m'(x)^2``, the fit's error
        ``d`` as the declipped result's error ``d / m'(x)`` (``docs/method.md``, 4e)."""
        pieces = self._estimate()
        return None if pieces is None else pieces.fit_error * pieces.gain

    @property
    def cross_correction(self) -> float | None:
        """``2 (sigma/a) c_hat`` (before the gain), what :attr:`estimated_mse` adds for the cross term."""
        pieces = self._estimate()
        return None if pieces is None else pieces.cross

    @property
    def estimated_psnr(self) -> float | None:
        """``PSNR_hat`` of the returned iterate (dB), see :func:`estimated_psnr`."""
        return None if self.offset is None else estimated_psnr(self.estimated_mse, 0.0)

    @property
    def noise_cross_sd(self) -> float | None:
        """Standard deviation of what is unknown of the cross term ``-2 (sigma/a) mean(n z)`` of the estimate:
        ``2 (sigma/a) sqrt(u mean(z^2) / N)``. Without a pilot ``u = s_e^2`` (the whole term); with one, ``u``
        bounds the pilot's error ``mean((m - g)^2)`` by the triangle inequality,
        ``(sqrt(mean((A xbar - g)^2)) + sqrt(mean(d^2)))^2`` with ``mean(d^2)`` estimated. The antithetic twin's
        term is equal and opposite."""
        if self.offset is None:
            return None
        pieces = self._estimate()
        if pieces.pilot_distance is None:
            unknown = max(self._noise_energy(), 0.0)
        else:
            unknown = (math.sqrt(pieces.pilot_distance) + math.sqrt(max(pieces.fit_error, 0.0))) ** 2
        return 2 * math.sqrt(unknown * pieces.copy_energy / pieces.count)

    @property
    def error_cross_sd(self) -> float | None:
        """Standard deviation of the term ``-2 mean(e (n - (sigma/a) z))`` of the estimate (``e`` the error of the
        returned iterate, independent of the validation noise): ``2 sqrt(MSE_hat (offset) / N)``."""
        if self.offset is None:
            return None
        pieces = self._estimate()
        return 2 * math.sqrt(max(pieces.fit_error, 0.0) * pieces.offset / pieces.count)

    @property
    def energy_sd(self) -> float | None:
        """Standard deviation of ``mean(n^2)`` about ``s_e^2`` (the noise energy drawn): ``s_e^2 sqrt(2 / N)``."""
        return None if self.offset is None else max(self._noise_energy(), 0.0) * math.sqrt(2.0 / self._estimate().count)

    @property
    def sigma_sd(self) -> float | None:
        """Standard deviation of the estimate's error from the sigma error: an error ``r`` (relative, at
        most ``sigma_rel_error``) moves the noise energy ``s_e^2`` by about ``2 r s_e^2``."""
        return None if self.offset is None else 2 * self.sigma_rel_error * self._noise_energy()

    def _noise_energy(self) -> float:
        """``s_e^2``: the offset less the validation noise's known part ``(sigma/a)^2 mean(z^2)``."""
        pieces = self._estimate()
        return pieces.offset - pieces.copy_energy

    @property
    def offset_uncertainty(self) -> float | None:
        """Standard deviation of the error of ``v - offset`` as an estimate of the MSE: the four terms
        :attr:`noise_cross_sd`, :attr:`error_cross_sd`, :attr:`energy_sd` and :attr:`sigma_sd` in quadrature.

        Small ``a`` makes the cross terms large: the stop is unaffected (the offset is constant over
        iterations), but the PSNR estimate becomes loose (``docs/method.md``, 4c).
        """
        if self.offset is None:
            return None
        return math.sqrt(self.noise_cross_sd ** 2 + self.error_cross_sd ** 2 + self.energy_sd ** 2 + self.sigma_sd ** 2)

    @property
    def estimated_psnr_range(self) -> tuple[float | None, float | None] | None:
        """About a 95% range (offset +/- 2 standard deviations) of ``PSNR_hat``; None above means unbounded."""
        if self.best_output is None:
            return None
        spread = 2 * self.offset_uncertainty * self.error_gain
        return estimated_psnr(self.estimated_mse + spread, 0.0), estimated_psnr(self.estimated_mse - spread, 0.0)

    def summary(self) -> dict:
        split = {} if self.components is None else {"components": self.components.summary()}
        return {**super().summary(), **split, "estimated_psnr": self.estimated_psnr,
                "estimated_psnr_range": self.estimated_psnr_range, "validation_mse": self.kept_value,
                "estimated_mse": self.estimated_mse, "error_gain": self.error_gain,
                "offset": self.offset, "offset_uncertainty": self.offset_uncertainty,
                "cross_correction": self.cross_correction,
                "noise_cross_sd": self.noise_cross_sd, "error_cross_sd": self.error_cross_sd,
                "energy_sd": self.energy_sd, "sigma_sd": self.sigma_sd}


class WindowedVarianceStopper(_MinimumWithPatience):
    """ES-WMV (Wang et al., TMLR 2023): minimum of the windowed moving variance of the outputs.

    ``VAR_t = 1/(W N) sum_{w=0}^{W-1} ||x_{t-w} - mean_W||^2`` over the last ``W`` raw outputs;
    fire when it has not reached a new minimum for ``patience`` iterations.

    Parameters
    ----------
    window : int
        ``W``.
    patience : int
        ``P``.
    """

    name = "es-wmv"

    def __init__(self, window: int = 100, patience: int = 1000):
        super().__init__(patience)
        if window < 2:
            raise ValueError("window must be at least 2")
        self.window = window
        self._frames: deque[torch.Tensor] = deque()
        self._sum: torch.Tensor | None = None
        self._sum_sq: torch.Tensor | None = None

    def _criterion(self, obs: Observation) -> float | None:
        frame = obs.raw.double()
        if self._sum is None:
            self._sum = torch.zeros_like(frame)
            self._sum_sq = torch.zeros_like(frame)
        self._frames.append(frame)
        self._sum += frame
        self._sum_sq += frame * frame
        if len(self._frames) > self.window:
            old = self._frames.popleft()
            self._sum -= old
            self._sum_sq -= old * old
        if len(self._frames) < self.window:
            return None
        mean = self._sum / self.window
        return float(torch.mean(self._sum_sq / self.window - mean * mean))


class ExponentialVarianceStopper(_MinimumWithPatience):
    """ES-EMV (Wang et al., TMLR 2023): minimum of the exponential moving variance of the raw outputs, O(1) memory.

    With ``x_t`` the network's raw output of observation ``t`` (1-based; the forward pass that gives the
    training loss, as in the authors' notebook), ``N`` its number of values and ``alpha`` the smoothing factor:

    .. math::

        m_1 = x_1, \\quad v_1 = 0, \\qquad
        d_t = x_t - m_{t-1}, \\quad
        m_t = \\mathrm{clip}_{[0, 1]}(m_{t-1} + \\alpha d_t), \\quad
        v_t = (1 - \\alpha)\\,(v_{t-1} + \\alpha d_t^2),

    elementwise, and the criterion is ``EMV_t = mean(v_t)``, i.e. the authors' ``||d_t||^2`` recursion divided by
    ``N`` (the argmin is the same). Without the clip (a no-op for outputs in [0, 1], such as our sigmoid's),
    ``m_t`` and ``v_t`` are the weighted mean and weighted population variance of ``x_1 .. x_t`` with weights
    ``(1 - alpha)^(t-1)`` for ``x_1`` and ``alpha (1 - alpha)^(t-k)`` for ``x_k``, ``k >= 2`` (they sum to 1).

    The first ``burn_in`` observations only feed ``m`` and ``v``; from observation ``burn_in + 1`` on the
    stopper keeps the iterate with the lowest ``EMV_t`` and fires once it has not been beaten for ``patience``
    iterations (:func:`patience_exhausted`). It returns the run's output (``Observation.output``) at that
    iteration, as every stopper here does; the authors' notebook evaluates its own ``m_t`` there instead.

    Source: ``sun-umn/Early_Stopping_for_DIP``, ``ES_EMV.ipynb`` (line numbers of the notebook file):
    ``alpha = 0.1`` and ``patience = 1000`` (lines 98-100); the recursion (lines 136-146); the check only
    ``if iterator > 100`` on a 0-based iterator, i.e. from the 102nd output on (lines 276-280); the patience
    rule ``wait_count >= patience`` on consecutive non-improving checks (lines 126-134).

    Parameters
    ----------
    alpha : float
        Smoothing factor in (0, 1).
    patience : int
        ``P``.
    burn_in : int
        Observations before the criterion counts (the authors': 101).
    """

    name = "es-emv"

    def __init__(self, alpha: float = 0.1, patience: int = 1000, burn_in: int = 101):
        super().__init__(patience)
        if not 0 < alpha < 1:
            raise ValueError("alpha must lie in (0, 1)")
        if burn_in < 0:
            raise ValueError("burn_in must be non-negative")
        self.alpha = alpha
        self.burn_in = burn_in
        self.mean: torch.Tensor | None = None
        self.variance: torch.Tensor | None = None
        self.emv: float | None = None  # mean(v_t), also during the burn-in

    def _criterion(self, obs: Observation) -> float | None:
        frame = obs.raw.double()
        if self.mean is None:
            self.mean = frame.clone()
            self.variance = torch.zeros_like(frame)
        else:
            d = frame - self.mean
            self.mean = (self.mean + self.alpha * d).clamp_(0.0, 1.0)
            self.variance = (1.0 - self.alpha) * (self.variance + self.alpha * d * d)
        self.emv = float(torch.mean(self.variance))
        return self.emv if obs.iteration > self.burn_in else None


class DiscrepancyStopper(Stopper):
    """Morozov's discrepancy principle: stop when ``||A xbar - y||^2 / N <= tau sigma^2``.

    Parameters
    ----------
    observation : torch.Tensor
        ``y``.
    sigma : float
        Noise standard deviation of ``y``.
    tau : float
        Threshold factor.
    weights : torch.Tensor, optional
        0/1 weights of the measured values that count (default: all); the mean runs over them.
    """

    name = "discrepancy"

    def __init__(self, observation: torch.Tensor, sigma: float, tau: float = 1.0,
                 weights: torch.Tensor | None = None):
        super().__init__()
        self.observation = observation
        self.threshold = tau * sigma**2
        self.weights = weights

    def _update(self, obs: Observation) -> bool:
        self.value = _mse(obs.measured, self.observation, self.weights)
        self._keep(obs)
        return self.value <= self.threshold


def holdout_mask(weights: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A fixed random subset of the measured values to validate on, as 0/1 weights ``h``.

    Of the ``n`` values with weight > 0, ``max(1, round(fraction * n))`` are drawn uniformly without
    replacement, each value (one channel of one pixel) on its own; ``h`` is 1 there and 0 elsewhere.

    Parameters
    ----------
    weights : torch.Tensor
        Weights of the measured values (0: not measured, never held out).
    fraction : float
        In (0, 1).
    seed : int
        Seed of the draw.

    Returns
    -------
    torch.Tensor
        float32, shape and device of ``weights``.
    """
    if not 0 < fraction < 1:
        raise InputError(f"the held-out fraction must lie in (0, 1), got {fraction!r}")
    candidates = torch.nonzero(weights.detach().flatten().cpu() > 0).squeeze(1)
    n = candidates.numel()
    count = max(1, round(fraction * n))
    if count >= n:
        raise InputError(f"the image has {n} measured values: too few to hold out a fraction {fraction:g} of them "
                         f"and train on the rest")
    chosen = candidates[torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count]]
    held = torch.zeros(weights.numel())
    held[chosen] = 1.0
    return held.reshape(weights.shape).to(weights.device)


class HeldOutStopper(_FinalStageMinimum):
    """Minimum of the loss on held-out measured values: a stop for any pixel-wise independent noise.

    A fixed random subset ``h`` of the measured values (:func:`holdout_mask`, 10% by default) is
    removed from training: the run's training weights are ``measured * (1 - h)``. The stopper watches

        v_t = sum(h * l(A xbar_t, y)) / sum(h)

    with the noise model's elementwise loss ``l``, and returns the iterate at its minimum once
    :func:`patience_exhausted` says so (counting from the start of the final stage).

    Why it works: when the noise is independent from value to value, the noise ``n_h`` of the
    held-out values is independent of everything the network was trained on, hence of ``xbar_t``.
    For the squared error ``E v_t = MSE_h(A xbar_t, A x) + E n_h^2``: the error on values the
    network never saw plus a constant, so the argmin of ``v_t`` estimates the best iterate, as the
    recorruption pair does for Gaussian noise. For the absolute error (impulse noise) and the
    Poisson divergence the same independence makes ``E v_t`` the expected loss of a prediction made
    without the value's own noise, which each loss is built to minimise at the clean value
    (:mod:`dipddpm.noise_models`): a consistent proxy, though not the error plus a constant. It
    needs neither Gaussian noise nor sigma.

    What it costs: the held-out values (10% by default) never train the network, which fills them
    from their neighbours as it fills the missing pixels of an inpainting; and ``v_t`` averages over
    those values only, so it is noisier than a criterion over the whole image.

    Parameters
    ----------
    observation : torch.Tensor
        ``y``.
    held_out : torch.Tensor
        ``h``, 0/1 weights of the held-out values, shape of ``y``.
    loss : callable
        The elementwise loss ``l(prediction, observation)``.
    patience : int
        Iterations without a new minimum (within the final stage) before firing.
    delay : float
        Return the iterate ``round(delay t*)`` iterations after the minimum ``t*`` (0: the minimum).
    """

    name = "held-out"

    def __init__(self, observation: torch.Tensor, held_out: torch.Tensor,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], patience: int = 150,
                 delay: float = 0.0):
        super().__init__(patience, delay)
        if held_out.shape != observation.shape or not bool(held_out.sum() > 0):
            raise ValueError("the held-out weights need the observation's shape and at least one held-out value")
        self.observation = observation
        self.held_out = held_out
        self.loss = loss

    def _criterion(self, obs: Observation) -> float:
        return float(weighted_mean(self.loss(obs.measured, self.observation), self.held_out))

    def summary(self) -> dict:
        return {**super().summary(), "held_out_values": int(self.held_out.sum()), "validation_loss": self.kept_value}


class FixedStopper(Stopper):
    """Stop after a fixed number of iterations (DIP: 1800 or 3000).

    Parameters
    ----------
    iterations : int
        Where to stop.
    """

    name = "fixed"

    def __init__(self, iterations: int):
        super().__init__()
        if iterations < 1:
            raise ValueError("the fixed stop must be at least 1 iteration")
        self.iterations = iterations

    def _update(self, obs: Observation) -> bool:
        self.value = float(obs.iteration)
        self._keep(obs)
        return obs.iteration >= self.iterations


class ScheduleEndStopper(Stopper):
    """The seed's behaviour: stop when the final stage has spent its budget."""

    name = "schedule-end"

    def _update(self, obs: Observation) -> bool:
        self.value = float(obs.stage)
        self._keep(obs)
        return obs.schedule_finished


class OracleStopper(Stopper):
    """EVALUATION ONLY: the iterate with the highest PSNR against the clean reference.

    Never fires; it needs the clean image, which a real user does not have.

    Parameters
    ----------
    reference : torch.Tensor
        The clean image, same shape as the outputs, in [0, 1].
    split_colour : bool
        For a run whose result is split by colour component (:class:`RecorruptionStopper`): each opponent
        component at its own best iterate (:class:`ComponentMinima` against the reference), the best such a
        result could be; ``best_iteration`` is then the latest iterate it draws on.
    """

    name = "oracle"
    evaluation_only = True

    def __init__(self, reference: torch.Tensor, split_colour: bool = False):
        super().__init__()
        self.reference = reference
        self.best_value = -math.inf
        self.components = ComponentMinima(reference) if split_colour else None

    def _update(self, obs: Observation) -> bool:
        self.value = tensor_psnr(obs.output, self.reference)
        if self.components is not None:
            if self.components.observe(obs.iteration, obs.output):
                self.best_output, self.best_iteration = self.components.image(), self.components.latest
                self.best_value = tensor_psnr(self.best_output, self.reference)
        elif self.value > self.best_value:
            self.best_value = self.value
            self._keep(obs)
        return False

    def summary(self) -> dict:
        split = {} if self.components is None else {"components": self.components.summary()}
        return {**super().summary(), **split, "psnr": self.best_value}
