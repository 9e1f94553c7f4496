"""Staged targets along one DDPM forward trajectory of the observation, and when to change stage.

Stage ``k`` trains on ``yhat_k = y + s_k * z`` with ONE fixed ``z ~ N(0, I)`` and decreasing
``s_k``. Only the noisy observation ``y`` enters; the clean image never does. With
``y = x + n`` and ``n ~ N(0, sigma^2 I)`` the noise of target ``k`` has the known variance
``sigma_k^2 = sigma^2 + s_k^2``.

The last stage uses ``s_K = a * sigma``, so that ``y - (sigma / a) * z`` is an independent
validation copy (:func:`dipddpm.stopping.validation_target`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .schedule import alphas_cumprod, beta_schedule, geometric_scales, timestep_for_scale, x0_noise_scale

__all__ = [
    "Curriculum",
    "FixedBudgetRule",
    "NoiseFloorRule",
    "Stage",
    "geometric_stages",
    "plain_stages",
    "seed_budgets",
    "staged_target",
    "timestep_stages",
]


@dataclass(frozen=True)
class Stage:
    """One stage of the curriculum.

    Attributes
    ----------
    scale : float
        ``s_k``, the standard deviation of the added noise ``s_k * z``.
    timestep : int
        The DDPM timestep whose x0-space scale is closest to ``s_k`` (0-based).
    beta : float
        ``beta`` of the schedule at that timestep (used by the seed's budget formula).
    """

    scale: float
    timestep: int
    beta: float


def staged_target(observation: torch.Tensor, noise: torch.Tensor, scale: float) -> torch.Tensor:
    """Target of one stage: ``yhat = y + s * z``.

    Parameters
    ----------
    observation : torch.Tensor
        The noisy image ``y``.
    noise : torch.Tensor
        The fixed ``z ~ N(0, I)``, same shape.
    scale : float
        ``s``.

    Returns
    -------
    torch.Tensor
        ``y + s * z``.
    """
    return observation + scale * noise


def _stages_for(scales: np.ndarray, schedule: str) -> list[Stage]:
    betas = beta_schedule(schedule)
    s_t = x0_noise_scale(alphas_cumprod(betas))
    stages = []
    for s in scales:
        t = timestep_for_scale(s_t, float(s)) if s > 0 else 0
        stages.append(Stage(scale=float(s), timestep=t, beta=float(betas[t])))
    return stages


def plain_stages(schedule: str = "linear") -> list[Stage]:
    """One stage that fits ``y`` itself (``s = 0``): plain DIP, e.g. for noise whose level is unknown.

    Parameters
    ----------
    schedule : str
        DDPM schedule used only to attach a timestep and ``beta`` to the stage.

    Returns
    -------
    list of Stage
    """
    return _stages_for(np.array([0.0]), schedule)


def geometric_stages(sigma: float, num_stages: int, s_max_factor: float, ratio: float,
                     schedule: str = "linear") -> list[Stage]:
    """Stages with geometric noise scales from ``s_max = s_max_factor * sigma`` to ``a * sigma``.

    Parameters
    ----------
    sigma : float
        Noise standard deviation of the observation.
    num_stages : int
        ``K``; the last stage has ``s_K = a * sigma``. ``K = 1`` trains on ``y + a sigma z`` only.
    s_max_factor : float
        ``s_1 / sigma``; must be ``>= ratio``.
    ratio : float
        ``a``; 0 means plain DIP on ``y`` (then ``K`` must be 1).
    schedule : str
        DDPM schedule used only to attach a timestep and ``beta`` to each stage.

    Returns
    -------
    list of Stage
        In order of decreasing noise.
    """
    if sigma <= 0 or ratio < 0:
        raise ValueError("sigma must be positive and the validation ratio non-negative")
    if ratio == 0:
        if num_stages != 1:
            raise ValueError("geometric stages end at a * sigma, so they need a > 0")
        return plain_stages(schedule)
    if s_max_factor < ratio:
        raise ValueError("s_max_factor must be at least the validation ratio a")
    return _stages_for(geometric_scales(s_max_factor * sigma, ratio * sigma, num_stages), schedule)


def timestep_stages(timesteps: list[int], sigma: float, ratio: float, schedule: str = "linear",
                    num_timesteps: int = 1000) -> list[Stage]:
    """Stages at given DDPM timesteps, followed by the final stage ``s_K = a * sigma``.

    Parameters
    ----------
    timesteps : list of int
        Decreasing 0-based timesteps ``t_1 > ... > t_{K-1}``; their scales must exceed ``a sigma``.
    sigma, ratio : float
        ``sigma`` and ``a``.
    schedule : str
        One of :data:`dipddpm.schedule.SCHEDULES`.
    num_timesteps : int
        ``T``.

    Returns
    -------
    list of Stage
    """
    betas = beta_schedule(schedule, num_timesteps)
    s_t = x0_noise_scale(alphas_cumprod(betas))
    if any(t < 0 or t >= num_timesteps for t in timesteps):
        raise ValueError(f"timesteps must lie in [0, {num_timesteps - 1}]")
    if list(timesteps) != sorted(timesteps, reverse=True) or len(set(timesteps)) != len(timesteps):
        raise ValueError("timesteps must be strictly decreasing")
    final = ratio * sigma
    if any(s_t[t] <= final for t in timesteps):
        raise ValueError(f"every stage must be noisier than the final stage (s > a*sigma = {final:.4g})")
    stages = [Stage(scale=float(s_t[t]), timestep=int(t), beta=float(betas[t])) for t in timesteps]
    return stages + _stages_for(np.array([final]), schedule)


def seed_budgets(betas: np.ndarray, e_max: int, a: float, k: float, corrected: bool) -> list[int]:
    """Iterations per stage by the seed report's exponential formula.

    As written: ``E_i = E_max * (1 - a * exp(-k * beta_i))`` -- this gives MORE iterations to
    noisier stages (larger ``beta``). Corrected: ``E_i = E_max * (1 - a * (1 - exp(-k * beta_i /
    beta_max)))``, which gives fewer iterations to noisier stages.

    Parameters
    ----------
    betas : numpy.ndarray
        ``beta`` at each stage's timestep.
    e_max : int
        ``E_max``.
    a : float
        In [0, 1).
    k : float
        Rate.
    corrected : bool
        Use the corrected form.

    Returns
    -------
    list of int
        Budgets, each at least 1.
    """
    betas = np.asarray(betas, dtype=np.float64)
    if corrected:
        e = e_max * (1.0 - a * (1.0 - np.exp(-k * betas / betas.max())))
    else:
        e = e_max * (1.0 - a * np.exp(-k * betas))
    return [max(1, int(round(v))) for v in e]


@dataclass(frozen=True)
class NoiseFloorRule:
    """Leave stage ``k`` when the smoothed training MSE reaches ``(1 + delta) * sigma_k^2``.

    Attributes
    ----------
    delta : float
        Relative margin above the noise floor.
    min_iter, max_iter : int
        Bounds on the iterations spent in a non-final stage.
    final_iter : int or None
        Budget of the final stage (``None``: unbounded; the stopper ends it).
    """

    delta: float = 0.02
    min_iter: int = 50
    max_iter: int = 500
    final_iter: int | None = None

    def advance(self, stage: int, iterations: int, smoothed_loss: float, floor: float) -> bool:
        """Whether to leave non-final stage ``stage`` after ``iterations`` steps in it."""
        if iterations >= self.max_iter:
            return True
        return iterations >= self.min_iter and smoothed_loss <= (1.0 + self.delta) * floor

    def final_budget(self) -> int | None:
        """Iterations of the final stage, or ``None``."""
        return self.final_iter


@dataclass(frozen=True)
class FixedBudgetRule:
    """A fixed number of iterations per stage (the last entry is the final stage's budget)."""

    budgets: tuple[int, ...]

    def __post_init__(self):
        if not self.budgets or min(self.budgets) < 1:
            raise ValueError("stage budgets must be positive")

    def advance(self, stage: int, iterations: int, smoothed_loss: float, floor: float) -> bool:
        """Whether stage ``stage`` has spent its budget."""
        return iterations >= self.budgets[stage]

    def final_budget(self) -> int:
        """Budget of the last stage."""
        return self.budgets[-1]


class Curriculum:
    """Walks through the stages: holds the current target and decides when to move on.

    Parameters
    ----------
    observation : torch.Tensor
        ``y``, shape ``(1, C, H, W)``.
    noise : torch.Tensor
        The fixed ``z``, same shape.
    stages : list of Stage
        Decreasing noise scales; the last one is the final stage.
    sigma : float
        Noise standard deviation of ``y`` (0 when unknown: then use one stage, as the noise floor is unknown).
    rule : NoiseFloorRule or FixedBudgetRule
        Transition rule.
    smoothing : float
        EMA factor of the training MSE used by the noise-floor rule.
    """

    def __init__(self, observation: torch.Tensor, noise: torch.Tensor, stages: list[Stage], sigma: float,
                 rule: NoiseFloorRule | FixedBudgetRule, smoothing: float = 0.9):
        if not stages:
            raise ValueError("a curriculum needs at least one stage")
        scales = [s.scale for s in stages]
        if any(b >= a for a, b in zip(scales, scales[1:], strict=False)):
            raise ValueError("stage scales must be strictly decreasing")
        if isinstance(rule, FixedBudgetRule) and len(rule.budgets) != len(stages):
            raise ValueError(f"{len(stages)} stages need {len(stages)} budgets, got {len(rule.budgets)}")
        self.observation = observation
        self.noise = noise
        self.stages = stages
        self.sigma = sigma
        self.rule = rule
        self.smoothing = smoothing
        self.stage = 0
        self.iterations_in_stage = 0
        self.smoothed_loss: float | None = None
        self.target = staged_target(observation, noise, stages[0].scale)

    @property
    def is_final(self) -> bool:
        """Whether the current stage is the last one."""
        return self.stage == len(self.stages) - 1

    @property
    def noise_floor(self) -> float:
        """``sigma_k^2 = sigma^2 + s_k^2`` of the current stage."""
        return self.sigma**2 + self.stages[self.stage].scale ** 2

    @property
    def finished(self) -> bool:
        """Whether the final stage has spent its budget (the seed's "schedule end")."""
        budget = self.rule.final_budget()
        return self.is_final and budget is not None and self.iterations_in_stage >= budget

    def update(self, loss: float) -> bool:
        """Record one training step's MSE; move to the next stage when the rule says so.

        Parameters
        ----------
        loss : float
            Training MSE of this step against the current target.

        Returns
        -------
        bool
            True when the stage changed.
        """
        self.iterations_in_stage += 1
        if self.smoothed_loss is None:
            self.smoothed_loss = loss
        else:
            self.smoothed_loss = self.smoothing * self.smoothed_loss + (1.0 - self.smoothing) * loss
        if self.is_final or not self.rule.advance(self.stage, self.iterations_in_stage,
                                                  self.smoothed_loss, self.noise_floor):
            return False
        self.stage += 1
        self.iterations_in_stage = 0
        self.smoothed_loss = None
        self.target = staged_target(self.observation, self.noise, self.stages[self.stage].scale)
        return True
