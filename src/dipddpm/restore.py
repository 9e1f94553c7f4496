"""Torch-level restoration: compose the curriculum, the stoppers and the training loop.

:func:`restore_tensor` restores one ``(1, C, H, W)`` tensor measured through a forward operator
(:mod:`dipddpm.physics`: identity for denoising, a pixel mask for inpainting, downsampling for
super-resolution) under one of the noise models of :mod:`dipddpm.noise_models`;
:class:`DIPDenoiser` is a module for ``(B, C, H, W)`` batches (each image gets its own network).
The clean reference, when given, reaches only the oracle stopper and the evaluation numbers.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from .callbacks import report_finished_runs
from .config import DenoiserConfig, StagingConfig, StoppingConfig
from .curriculum import (
    Curriculum,
    FixedBudgetRule,
    NoiseFloorRule,
    Stage,
    geometric_stages,
    plain_stages,
    seed_budgets,
    timestep_stages,
)
from .engine import StepInfo, run
from .ensemble import Member, ensemble_mse, ensemble_mse_uncertainty, plan_members
from .errors import InputError
from .executors import run_in_order, runs_at_once
from .metrics import tensor_psnr
from .noise import SIGMA_ESTIMATE_REL_ERROR, clipped_mean_inverse, estimate_sigma, touches_bounds
from .noise_fit import fit_noise_model
from .noise_models import NoiseModel, get_noise_model
from .physics import AnscombeStabilised, Identity, Operator, describe, image_shape, observed_weights
from .precision import forward_precision
from .result import Restoration
from .stopping import (
    DiscrepancyStopper,
    ExponentialVarianceStopper,
    FixedStopper,
    HeldOutStopper,
    OracleStopper,
    RecorruptionStopper,
    ScheduleEndStopper,
    Stopper,
    WindowedVarianceStopper,
    estimated_psnr,
    holdout_mask,
)

__all__ = ["DEFAULT_STOPPER", "ESTIMATE_CLIPPED_SIGMA_MAX", "PHOTONS_OFF", "STOPPERS", "DIPDenoiser", "build_stages",
           "check_sigma", "check_stopper_name", "combine_members", "draw_holdout", "ensemble_members", "draw_noise",
           "estimate_withheld", "no_estimate_reason", "noise_level", "photon_count", "photons_estimable",
           "resolve_device", "resolve_stopper", "restore_tensor"]

PHOTONS_OFF = "off"
"""The ``photons`` value that keeps Poisson data unstabilised: the network fits ``y`` with the Poisson loss."""

ESTIMATE_CLIPPED_SIGMA_MAX = 35.0 / 255.0
"""Largest sigma (image units) at which a clipped image's run gives a PSNR estimate (:func:`estimate_withheld`)."""

STOPPERS = ("recorruption", "held-out", "es-wmv", "es-emv", "discrepancy", "fixed", "schedule-end", "oracle")
DEFAULT_STOPPER = "auto"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is checked to exist."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {device!r}; use auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but CUDA is not available")
    return dev


def build_stages(sigma: float, cfg: StagingConfig) -> list[Stage]:
    """The stages for noise level ``sigma``: DDPM timesteps if given, else geometric scales."""
    if cfg.timesteps:
        return timestep_stages(list(cfg.timesteps), sigma, cfg.ratio, cfg.schedule)
    return geometric_stages(sigma, cfg.num_stages, cfg.s_max_factor, cfg.ratio, cfg.schedule)


def _build_rule(stages: list[Stage], cfg: StagingConfig) -> NoiseFloorRule | FixedBudgetRule:
    if cfg.rule == "noise-floor":
        return NoiseFloorRule(delta=cfg.delta, min_iter=cfg.min_iter, max_iter=cfg.max_iter, final_iter=cfg.max_iter)
    if cfg.rule == "fixed":
        if len(cfg.budgets) != len(stages):
            raise InputError(f"the fixed stage rule needs {len(stages)} budgets, got {len(cfg.budgets)}")
        return FixedBudgetRule(tuple(cfg.budgets))
    budgets = seed_budgets(np.array([s.beta for s in stages]), cfg.seed_e_max, cfg.seed_a, cfg.seed_k,
                           corrected=cfg.rule == "seed-corrected")
    return FixedBudgetRule(tuple(budgets))


def check_sigma(sigma) -> float:
    """Return ``sigma`` as a float if it is a finite positive number; raise :class:`InputError` otherwise."""
    number = isinstance(sigma, (int, float, np.integer, np.floating)) and not isinstance(sigma, bool)
    if not (number and math.isfinite(sigma) and sigma > 0):
        raise InputError(f"sigma must be a positive number, got {sigma!r}")
    return float(sigma)


def check_stopper_name(name: str) -> str:
    """Return ``name`` if it names a stopper (one of :data:`STOPPERS`, ``auto``, or ``fixed:N`` with N >= 1)."""
    if name in STOPPERS or name == "auto":
        return name
    if name.startswith("fixed:") and name[6:].isdigit() and int(name[6:]) >= 1:
        return name
    raise InputError(f"unknown stopper {name!r}; choose auto or one of {', '.join(STOPPERS)} (or fixed:N)")


def resolve_stopper(name: str, noise: str = "gaussian", physics: Operator | None = None,
                    sigma: float | None = None) -> str:
    """What ``auto`` means for a run; any other name is returned as it is.

    ``recorruption`` for Gaussian noise when sigma is known or can be estimated (plain denoising,
    or any operator with a given sigma); ``held-out`` otherwise: for every other noise model, and
    for inpainting, super-resolution or a custom operator without a given sigma.

    Parameters
    ----------
    name : str
        A stopper name or ``auto``.
    noise : str
        The noise model's name.
    physics : Operator, optional
        The forward operator (None: identity).
    sigma : float, optional
        The given noise level.

    Returns
    -------
    str
    """
    if name != "auto":
        return name
    denoising = physics is None or isinstance(physics, Identity)
    return "recorruption" if noise == "gaussian" and (denoising or sigma is not None) else "held-out"


@dataclass(frozen=True)
class _RunInputs:
    """What the stoppers of one run may need; measurement-space tensors have the shape of ``y``."""

    y: torch.Tensor
    z: torch.Tensor
    sigma: float | None
    model: NoiseModel
    config: DenoiserConfig
    reference: torch.Tensor | None
    clipped: bool
    sigma_rel_error: float
    weights: torch.Tensor | None
    held_out: torch.Tensor | None
    declip: bool
    clip_aware: bool
    split_colour: bool
    oracle_split_colour: bool


def _needs_sigma(name: str, sigma: float | None) -> None:
    if sigma is None:
        raise InputError(f"the {name} stopper needs sigma, which is estimated only for Gaussian denoising; give "
                         f"sigma or use the held-out stopper")


def _build_stopper(name: str, run_in: _RunInputs) -> Stopper:
    st: StoppingConfig = run_in.config.stopping
    a = run_in.config.staging.ratio
    if name == "recorruption":
        if run_in.model.name != "gaussian":
            raise InputError(f"the recorruption stopper needs Gaussian noise (y + a*sigma*z and y - (sigma/a)*z are "
                             f"independent only then), not {run_in.model.name}; use the held-out stopper"
                             + (", or give photons to make it Gaussian" if run_in.model.name == "poisson" else ""))
        _needs_sigma(name, run_in.sigma)
        if a <= 0:
            raise InputError("the recorruption stopper needs a validation ratio a > 0")
        return RecorruptionStopper(run_in.y, run_in.z, run_in.sigma, a, st.patience, clipped=run_in.clipped,
                                   sigma_rel_error=run_in.sigma_rel_error, weights=run_in.weights,
                                   declipped=run_in.declip, delay=st.delay, clip_aware=run_in.clip_aware,
                                   split_colour=run_in.split_colour)
    if name == "held-out":
        return HeldOutStopper(run_in.y, run_in.held_out, run_in.model.loss, st.patience, delay=st.delay)
    if name == "es-wmv":
        return WindowedVarianceStopper(st.wmv_window, st.wmv_patience)
    if name == "es-emv":
        return ExponentialVarianceStopper(st.emv_alpha, st.emv_patience, st.emv_burn_in)
    if name == "discrepancy":
        _needs_sigma(name, run_in.sigma)
        return DiscrepancyStopper(run_in.y, run_in.sigma, st.discrepancy_tau, weights=run_in.weights)
    if name == "fixed":
        return FixedStopper(st.fixed_iterations)
    if name.startswith("fixed:"):
        return FixedStopper(int(name.split(":", 1)[1]))
    if name == "schedule-end":
        return ScheduleEndStopper()
    return OracleStopper(run_in.reference, run_in.oracle_split_colour)  # restore_tensor has checked that there is one


def _seeds(seed: int) -> tuple[int, int, int]:
    """Independent seeds for the training loop, for ``z`` and for the held-out values."""
    state = np.random.SeedSequence(seed).generate_state(3)
    return int(state[0]), int(state[1]), int(state[2])


def draw_noise(shape: Sequence[int], seed: int) -> torch.Tensor:
    """The fixed ``z ~ N(0, I)`` that :func:`restore_tensor` uses for ``seed`` (float32, CPU)."""
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(_seeds(seed)[1]))


def draw_holdout(measured: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """The held-out values (0/1, shape of ``measured``) that :func:`restore_tensor` uses for ``seed``.

    ``measured`` holds the weights of the measured values (ones for denoising, the mask for
    inpainting); see :func:`dipddpm.stopping.holdout_mask`.
    """
    return holdout_mask(measured, fraction, _seeds(seed)[2])


def noise_level(observation: torch.Tensor, sigma: float | None, estimable: bool,
                given_by: str = "given") -> tuple[float | None, str]:
    """``(sigma, source)``: a given sigma (checked), with ``given_by`` as its source (``"estimated"`` when the
    caller estimated it from this image); estimated from ``observation`` (``(1, C, H, W)``) when ``estimable``
    (Gaussian denoising); else ``(None, "none")``."""
    if sigma is not None:
        return check_sigma(sigma), given_by
    if not estimable:
        return None, "none"
    image = observation[0].permute(1, 2, 0).double().cpu().numpy()
    value = estimate_sigma(image, channel_axis=-1)
    if not value > 0:
        raise InputError("could not estimate the noise level (the image looks noise-free); give sigma")
    return value, "estimated"


def photons_estimable(noise_model: str, photons, sigma: float | None, physics: Operator | None) -> bool:
    """Whether :func:`photon_count` estimates the photon count: Poisson denoising with neither ``photons``
    nor ``sigma`` given (the fit needs the measured image itself, so not behind a mask or downsampling)."""
    return (noise_model == "poisson" and photons is None and sigma is None
            and (physics is None or isinstance(physics, Identity)))


def photon_count(observation: torch.Tensor, photons, read_noise: float,
                 estimable: bool) -> tuple[float | None, float, str, dict | None]:
    """``(photons, read_noise, source, noise_fit)``: what a Poisson run is stabilised with, and where it came from.

    A given number of photons (and ``read_noise``) is checked and returned with source ``"photons"``. When
    ``estimable`` (:func:`photons_estimable`), the noise model ``var(y | x) = a x + b`` is fitted to
    ``observation`` (:func:`dipddpm.noise_fit.fit_noise_model`) and ``photons = 1 / a`` is returned with
    source ``"photons-estimated"`` and, when the fit calls the noise Poisson-Gaussian, ``read_noise =
    sqrt(b)`` (the run then uses the generalised Anscombe transform); unless the fit calls the noise Gaussian
    (``a`` compatible with 0: not Poisson-like) or the image is too small to fit: then
    ``(None, 0, "none", ...)`` and the run fits ``y`` with the Poisson loss, as with ``photons = "off"``
    (:data:`PHOTONS_OFF`). ``noise_fit`` is the fit as a dict (:meth:`~dipddpm.noise_fit.NoiseFit.to_dict`)
    with ``used`` (whether it set the photon count) and, when not, ``reason``; None when nothing was fitted.

    Parameters
    ----------
    observation : torch.Tensor
        ``(1, C, H, W)`` in [0, 1].
    photons : float, "off" or None
        As given to :func:`restore_tensor`.
    read_noise : float
        As given to :func:`restore_tensor` (only with a number of photons).
    estimable : bool
        Estimate when ``photons`` is None.

    Returns
    -------
    photons : float or None
    read_noise : float
    source : str
    noise_fit : dict or None
    """
    if read_noise and (photons is None or isinstance(photons, str)):
        raise InputError("a read noise goes with a given number of photons")
    if isinstance(photons, str):
        if photons != PHOTONS_OFF:
            raise InputError(f"photons must be a positive number or {PHOTONS_OFF!r}, got {photons!r}")
        return None, 0.0, "none", None
    if photons is not None:
        if isinstance(photons, bool) or not isinstance(photons, (int, float, np.integer, np.floating)) or not (
                math.isfinite(photons) and photons > 0):
            raise InputError(f"photons must be a positive number, got {photons!r}")
        return float(photons), float(read_noise), "photons", None
    if not estimable:
        return None, 0.0, "none", None
    image = observation[0].permute(1, 2, 0).double().cpu().numpy()
    try:
        fit = fit_noise_model(image, channel_axis=-1)
    except InputError as err:
        return None, 0.0, "none", {"used": False, "reason": str(err)}
    record = fit.to_dict()
    if fit.kind == "gaussian":
        return None, 0.0, "none", {**record, "used": False,
                                   "reason": "the fitted noise does not grow with the signal (a is compatible with 0)"}
    return fit.photons, fit.read_noise, "photons-estimated", {**record, "used": True}


def estimate_withheld(sigma_source: str, sigma: float | None, declip: bool) -> str | None:
    """Why a run gives no PSNR estimate although the recorruption stopper can make one, or None.

    - ``sigma_source == "estimated"``: the estimate needs sigma to about 1 % (``docs/method.md`` 4c);
    - a clipped image (``declip``) at ``sigma > ESTIMATE_CLIPPED_SIGMA_MAX``: there the clipped noise's
      model dominates the small error left, and the estimate missed by more than 1 dB on half the report
      crops at sigma = 50 even for a pair (``benchmarks/results/ensemble/README.md``; within 1 dB on every
      held-out and report crop at sigma = 25; nothing measured in between).

    Parameters
    ----------
    sigma_source : str
        Where sigma came from (``Restoration.sigma_source``).
    sigma : float or None
        The noise level of the run (image units).
    declip : bool
        Whether the result is declipped (a clipped image under Gaussian noise).

    Returns
    -------
    str or None
    """
    if sigma_source == "estimated":
        return "sigma was estimated; give sigma for one"
    if declip and sigma is not None and sigma > ESTIMATE_CLIPPED_SIGMA_MAX:
        return f"not reliable on clipped images above sigma {ESTIMATE_CLIPPED_SIGMA_MAX * 255:.0f}/255"
    return None


def no_estimate_reason(stopper: str, physics: Operator, sigma_source: str, sigma: float | None,
                       declip: bool) -> str | None:
    """Why a run prints no PSNR estimate of its result, or None when it prints one.

    Only the recorruption stopper of Gaussian denoising (``A = I``) estimates the error of the image it returns:

    - another deciding stopper (the held-out stopper of Poisson without photons, impulse and speckle noise; the
      variance, fixed and oracle stoppers) makes none;
    - Poisson data with photons runs in Anscombe units: an estimate there is of the stabilised image's error;
    - another operator (inpainting, upscaling): of ``A xbar`` on the measured values, not of the restored image;
    - then :func:`estimate_withheld` (sigma estimated; clipped above :data:`ESTIMATE_CLIPPED_SIGMA_MAX`).

    Parameters
    ----------
    stopper : str
        The deciding stopper (resolved).
    physics : Operator
        The operator the run fitted through.
    sigma_source, sigma, declip
        As in :func:`estimate_withheld`.

    Returns
    -------
    str or None
    """
    if stopper != "recorruption":
        return f"only the recorruption stopper gives one, this run stopped by {stopper}"
    if isinstance(physics, AnscombeStabilised):
        return "Poisson data: the run's estimate is of the stabilised image, not of this one"
    if not isinstance(physics, Identity):
        return "the run's estimate is of the measured values, not of the restored image"
    return estimate_withheld(sigma_source, sigma, declip)


def declipped(fit: torch.Tensor, sigma: float) -> torch.Tensor:
    """``m^{-1}(fit)``: a fit of clipped noisy data mapped to the clean image.

    See :func:`dipddpm.noise.clipped_mean_inverse`.

    Near black and white a fit of clipped data estimates the clipped mean ``m(x) = E clip(x + sigma n)``,
    which is pulled towards the middle; the inverse removes that bias (Foi, Signal Processing 2009).

    Parameters
    ----------
    fit : torch.Tensor
        Values in [0, 1].
    sigma : float
        Noise standard deviation before clipping.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device.
    """
    values = clipped_mean_inverse(fit.detach().double().clamp(0.0, 1.0).cpu().numpy(), sigma)
    return torch.from_numpy(values).to(device=fit.device, dtype=fit.dtype)


def restore_tensor(observation: torch.Tensor, sigma: float | None = None, *, config: DenoiserConfig | None = None,
                   stopper: str = DEFAULT_STOPPER, watch: Sequence[str] = (), reference: torch.Tensor | None = None,
                   seed: int = 0, callbacks: Sequence[Callable[[StepInfo], None]] = (),
                   noise: torch.Tensor | None = None, physics: Operator | None = None,
                   noise_model: str = "gaussian", photons: float | str | None = None,
                   read_noise: float = 0.0, sigma_source: str = "given") -> Restoration:
    """Restore one image tensor from a noisy measurement ``y = A x + n``.

    Gaussian noise with a known or estimated sigma trains on the staged targets of the config;
    so does Poisson noise with known or estimated ``photons``, after the Anscombe transform
    (:class:`~dipddpm.physics.AnscombeStabilised`: the run fits ``t = stabilised y`` through the
    expected transform, with sigma known from ``photons``; :func:`photon_count`). Any other noise, or an
    unknown sigma, trains on ``y`` itself (one stage) with the noise model's loss. The held-out stopper, deciding
    or only watching, removes its values from training for the whole run.

    Parameters
    ----------
    observation : torch.Tensor
        ``y``, shape ``(1, C, H, W)``, values in [0, 1], on the device to run on.
    sigma : float, optional
        Noise standard deviation in image units. When None it is estimated from ``y`` for Gaussian
        denoising only; otherwise the run goes without it (stoppers that need it say so).
    config : DenoiserConfig, optional
        Settings (defaults when None).
    stopper : str
        The stopper that ends the run: ``auto`` (:func:`resolve_stopper`) or one of :data:`STOPPERS`.
    watch : sequence of str
        Further stoppers that only observe (their results are in ``Restoration.stoppers``).
    reference : torch.Tensor, optional
        Clean image (the shape of the restored image) for EVALUATION ONLY: adds the oracle stopper
        and PSNR numbers; it changes nothing else in the run.
    seed : int
        Seed of ``z``, the held-out values, the input code, the initialisation and the jitter.
    callbacks : sequence of callables
        Called with a :class:`~dipddpm.engine.StepInfo` after each iteration.
    noise : torch.Tensor, optional
        The fixed ``z`` (drawn from ``seed`` when None); e.g. ``-z`` for the antithetic twin. For an
        ensemble, the ``z`` of its first pair.
    physics : Operator, optional
        The forward operator ``A`` (None: identity, i.e. denoising); the restored image has the
        shape of ``A^T y``.
    noise_model : str
        The noise of ``y``, one of :data:`dipddpm.noise_models.NOISE_MODELS`: it sets the training
        loss and which stoppers are valid.
    photons : float, "off" or None
        Poisson noise only: the expected count of a white pixel (``y = Poisson(photons x) / photons``).
        When given, the run is Gaussian in Anscombe units (above); ``sigma`` must then be None. None
        (Poisson denoising without sigma): estimated from ``y`` (:func:`photon_count`; the fit is in
        ``Restoration.noise_fit``). ``"off"``: no stabilisation, the run fits ``y`` with the Poisson loss.
    read_noise : float
        With a number of ``photons``: the standard deviation of Gaussian noise added to the Poisson data
        (image units); the run then uses the generalised Anscombe transform. An estimated photon count
        brings its own.
    sigma_source : str
        Where a given ``sigma`` came from: ``"given"`` (by the user) or ``"estimated"`` (from this image by
        the caller, e.g. once before planning tiles: the run then treats it as its own estimate and gives no
        PSNR estimate, instead of estimating it again).

    Returns
    -------
    Restoration
        With ``image`` a ``(1, C, H, W)`` tensor. With ``config.ensemble = K > 1``, the average of K
        runs (:func:`ensemble_members`, :func:`combine_members`), each member described in ``Restoration.members``.
    """
    start = time.perf_counter()
    config = config or DenoiserConfig()
    # the precision actually used is what the result records ("auto" depends on the machine)
    config = replace(config, train=replace(config.train,
                                           precision=forward_precision(config.train.precision, observation.device)))
    model = get_noise_model(noise_model)
    physics = Identity() if physics is None else physics
    if sigma_source not in ("given", "estimated"):
        raise ValueError(f"sigma_source must be 'given' or 'estimated', got {sigma_source!r}")
    if observation.ndim != 4 or observation.shape[0] != 1:
        raise InputError(f"expected a (1, C, H, W) tensor, got shape {tuple(observation.shape)}")
    if not torch.isfinite(observation).all():
        raise InputError("the image has NaN or infinite values")
    if config.ensemble > 1:
        members = ensemble_members(observation, sigma, config=config, seed=seed, noise=noise, stopper=stopper,
                                   watch=watch, reference=reference, callbacks=callbacks, physics=physics,
                                   noise_model=noise_model, photons=photons, read_noise=read_noise,
                                   sigma_source=sigma_source)
        return replace(combine_members(members, reference, seed), seconds=time.perf_counter() - start)
    for name in [stopper, *watch]:
        check_stopper_name(name)
    if reference is None and "oracle" in (stopper, *watch):
        raise InputError("the oracle stopper needs a clean reference image (evaluation only)")
    shape = image_shape(physics, observation.shape, observation.device)
    if reference is not None and tuple(reference.shape) != shape:
        raise InputError(f"the reference has shape {tuple(reference.shape)}, the restored image will have {shape}")
    if model.name == "poisson" and bool((observation < 0).any()):
        raise InputError("Poisson data cannot be negative (counts, or counts / photons, are >= 0)")
    if photons is not None and not isinstance(photons, str) and (model.name != "poisson" or sigma is not None):
        raise InputError("photons go with Poisson noise and no sigma (sigma is then known from them)")
    measurement, noise_name = observation, model.name
    photons, read_noise, photon_source, noise_fit = photon_count(
        observation, photons, read_noise, photons_estimable(model.name, photons, sigma, physics))
    if photons is not None:
        physics = AnscombeStabilised(physics, photons, read_noise)
        observation, sigma, model = physics.stabilise(observation), physics.sigma, get_noise_model("gaussian")
    gaussian = model.name == "gaussian"
    sigma, source = noise_level(observation, sigma, gaussian and isinstance(physics, Identity), sigma_source)
    source = photon_source if photons is not None else source
    stopper = resolve_stopper(stopper, model.name, physics, sigma)
    names = list(dict.fromkeys([stopper, *(resolve_stopper(w, model.name, physics, sigma) for w in watch)]
                               + (["oracle"] if reference is not None else [])))

    train_seed = _seeds(seed)[0]
    if noise is None:
        noise = draw_noise(observation.shape, seed)
    elif noise.shape != observation.shape:
        raise InputError(f"noise has shape {tuple(noise.shape)}, the image {tuple(observation.shape)}")
    z = noise.to(device=observation.device, dtype=observation.dtype)
    stages = build_stages(sigma, config.staging) if gaussian and sigma is not None else plain_stages(
        config.staging.schedule)
    curriculum = Curriculum(observation, z, stages, sigma or 0.0, _build_rule(stages, config.staging))
    weights = observed_weights(physics, observation.shape, observation.device)
    held_out, train_weights = None, weights
    if "held-out" in names:
        measured = torch.ones_like(observation) if weights is None else weights
        held_out = draw_holdout(measured, config.stopping.holdout, seed)
        train_weights = measured * (1.0 - held_out)
    plain_denoising = gaussian and photons is None and isinstance(physics, Identity)
    bounded = plain_denoising and touches_bounds(observation.cpu().numpy())
    declip = bounded and config.declip
    split_colour = config.stopping.split_colour and plain_denoising and observation.shape[1] == 3 and weights is None
    run_in = _RunInputs(y=observation, z=z, sigma=sigma, model=model, config=config, reference=reference,
                        clipped=bool(observation.min() >= 0 and observation.max() <= 1),
                        sigma_rel_error=SIGMA_ESTIMATE_REL_ERROR if source == "estimated" else 0.0,
                        weights=weights, held_out=held_out, declip=declip,
                        clip_aware=bounded and sigma is not None and sigma > config.stopping.clip_aware_sigma_min,
                        split_colour=split_colour, oracle_split_colour=split_colour and stopper == "recorruption")
    stoppers = {name: _build_stopper(name, run_in) for name in names}
    config = replace(config, train=config.train_for(sigma)) if plain_denoising else config
    record = run(curriculum, stoppers, stopper, config.train, seed=train_seed, callbacks=tuple(callbacks),
                 physics=physics, pixel_loss=model.loss, train_weights=train_weights)
    finish = functools.partial(declipped, sigma=sigma) if declip else (lambda fit: fit)
    outputs = {name: finish(s.best_output) for name, s in stoppers.items() if s.best_output is not None}
    image = finish(record.output)

    summaries = {name: s.summary() for name, s in stoppers.items()}
    evaluation = None
    if reference is not None:
        for name in stoppers:
            summaries[name]["ref_psnr"] = tensor_psnr(outputs[name], reference) if name in outputs else None
        oracle = stoppers["oracle"]
        noisy_psnr = tensor_psnr(measurement, reference) if measurement.shape == reference.shape else None
        evaluation = {"note": "evaluation only: computed with the clean reference, never used by the run",
                      "ref_psnr": tensor_psnr(image, reference), "oracle_psnr": summaries["oracle"]["ref_psnr"],
                      "oracle_iteration": oracle.best_iteration, "noisy_psnr": noisy_psnr,
                      "stoppers": {name: summaries[name]["ref_psnr"] for name in stoppers}}
    withheld = no_estimate_reason(stopper, physics, source, sigma, declip)
    recorruption = stoppers["recorruption"] if withheld is None else None
    return Restoration(
        image=image, stop_iteration=record.stop_iteration, stopper=stopper, stopped_by=record.stopped_by,
        iterations_run=record.iterations_run,
        estimated_psnr=recorruption.estimated_psnr if recorruption is not None else None,
        estimated_psnr_range=recorruption.estimated_psnr_range if recorruption is not None else None,
        sigma_used=sigma, sigma_source=source, seed=seed, device=str(observation.device),
        seconds=time.perf_counter() - start, seconds_training=record.seconds, history=record.history,
        stage_starts=record.stage_starts, stage_scales=[s.scale for s in stages], events=record.events,
        stoppers=summaries, evaluation=evaluation, config=config.to_dict(),
        outputs=outputs, noise=noise_name, physics=describe(physics), noise_fit=noise_fit,
        estimate_withheld=withheld)


def _average(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.stack(list(tensors)).mean(dim=0)


def _member_summary(member: Member, result: Restoration) -> dict:
    out = {"index": member.index, "seed": member.seed, "pair": member.pair, "sign": member.sign,
           "stop_iteration": result.stop_iteration, "stopped_by": result.stopped_by,
           "iterations_run": result.iterations_run, "estimated_psnr": result.estimated_psnr,
           "seconds": result.seconds}
    if result.colour_stops() is not None:
        out["colour_stops"] = result.colour_stops()
    if result.evaluation is not None:
        out.update({key: result.evaluation[key] for key in ("ref_psnr", "oracle_psnr", "oracle_iteration")})
    return out


def _ensemble_estimate(plan: Sequence[Member], results: Sequence[Restoration]) -> tuple[float | None, tuple | None]:
    """The PSNR estimate of the members' average and its ~95% range (:mod:`dipddpm.ensemble`)."""
    summaries = [r.stoppers.get("recorruption") for r in results]
    if any(s is None or s.get("offset") is None for s in summaries):
        return None, None
    mse = ensemble_mse([s["estimated_mse"] for s in summaries], [r.outputs["recorruption"] for r in results])
    spread = 2 * ensemble_mse_uncertainty(plan, *([s[key] * s["error_gain"] for s in summaries] for key in (
        "noise_cross_sd", "error_cross_sd", "energy_sd", "sigma_sd")))
    return estimated_psnr(mse, 0.0), (estimated_psnr(mse + spread, 0.0), estimated_psnr(mse - spread, 0.0))


def ensemble_members(observation: torch.Tensor, sigma: float | None = None, *, config: DenoiserConfig, seed: int = 0,
                     noise: torch.Tensor | None = None, **run_args) -> list[tuple[Member, Restoration]]:
    """Run the ``config.ensemble`` members of an ensemble (:func:`dipddpm.ensemble.plan_members`).

    Each member is a whole :func:`restore_tensor` run with its own seed, ``+z`` or ``-z`` of its pair,
    and its own stop; in an ensemble of two or more a member returns the iterate
    ``StoppingConfig.ensemble_delay`` times its minimum's iteration after its validation minimum, on the plain
    validation copy (``StoppingConfig.clip_aware_sigma_min`` is for single runs: the delay was chosen with the
    plain copy, whose minima come earlier on clipped images). Sigma, when
    it is estimated, is estimated by each run (the same value); a photon count, when estimated, once for all
    members (and the members' results say so). The members run at once in
    worker processes when :func:`~dipddpm.executors.runs_at_once` allows (``config.workers``), else one
    after another.

    Parameters
    ----------
    observation, sigma, config, seed
        As for :func:`restore_tensor`.
    noise : torch.Tensor, optional
        The ``z`` of the first pair (drawn from ``seed`` when None: member 0 is the single run).
    **run_args
        The other keyword arguments of :func:`restore_tensor`, passed to every member.

    Returns
    -------
    list of (Member, Restoration)
        In the order of the plan.
    """
    physics = run_args.get("physics") or Identity()
    noise_name = get_noise_model(run_args.get("noise_model", "gaussian")).name
    counted = photons_estimable(noise_name, run_args.get("photons"), sigma, physics)
    if counted:  # once for all members; a fit that is not used leaves the members unstabilised
        photons, read_noise, photon_source, noise_fit = photon_count(observation, None, 0.0, True)
        run_args = {**run_args, "photons": PHOTONS_OFF if photons is None else photons, "read_noise": read_noise}
    plan = plan_members(config.ensemble, seed)
    first_z = draw_noise(observation.shape, seed) if noise is None else noise
    callbacks = tuple(run_args.pop("callbacks", ()))
    workers = runs_at_once(len(plan), config.workers, str(observation.device), callbacks)
    member_config = replace(config, ensemble=1, stopping=config.stopping if len(plan) == 1 else replace(
        config.stopping, delay=config.stopping.ensemble_delay, clip_aware_sigma_min=math.inf))
    runs = [{**run_args, "observation": observation, "sigma": sigma, "config": member_config,
             "seed": member.seed, "callbacks": callbacks if workers == 1 else (),
             "noise": member.sign * (first_z if member.pair == 0 else draw_noise(observation.shape,
                                                                                  plan[2 * member.pair].seed))}
            for member in plan]
    results = run_in_order(restore_tensor, runs, workers,
                           on_done=None if workers == 1 else report_finished_runs(callbacks))
    if counted:
        results = [replace(r, sigma_source=photon_source if photons is not None else "none", noise_fit=noise_fit)
                   for r in results]
    return list(zip(plan, results, strict=True))


def combine_members(members: Sequence[tuple[Member, Restoration]], reference: torch.Tensor | None = None,
                    seed: int | None = None) -> Restoration:
    """The ensemble's result from its members' (:func:`ensemble_members`): their average.

    The image and every stopper's output are the members' averages; the PSNR estimate is
    :func:`dipddpm.ensemble.ensemble_mse` of the members' recorruption estimates, with
    :func:`dipddpm.ensemble.ensemble_mse_uncertainty`; ``stop_iteration`` is the latest member's,
    ``iterations_run`` and the training seconds add up; ``history``, ``stage_starts`` and ``events``
    are member 0's. With ``reference`` (EVALUATION ONLY), the oracle is the average of every member's
    own oracle iterate.

    Parameters
    ----------
    members : sequence of (Member, Restoration)
        Any prefix of an ensemble's members (e.g. the first 2 of 4 are the ensemble of 2).
    reference : torch.Tensor, optional
        The clean image the members were scored against.
    seed : int, optional
        The ensemble's seed (default: member 0's).

    Returns
    -------
    Restoration
    """
    plan = [m for m, _ in members]
    results = [r for _, r in members]
    first = results[0]
    image = _average([r.image for r in results])
    names = [name for name in first.outputs if all(name in r.outputs for r in results)]
    outputs = {name: _average([r.outputs[name] for r in results]) for name in names}
    stoppers = {}
    for name in first.stoppers:
        summaries = [r.stoppers[name] for r in results]
        fired = [m["fired_at"] for m in summaries]
        stoppers[name] = {"fired_at": None if None in fired else max(fired),
                          "best_iteration": max(m["best_iteration"] or 0 for m in summaries), "members": summaries}
    evaluation = None
    if reference is not None:
        for name in stoppers:
            stoppers[name]["ref_psnr"] = tensor_psnr(outputs[name], reference) if name in outputs else None
        evaluation = {**first.evaluation, "ref_psnr": tensor_psnr(image, reference),
                      "oracle_psnr": tensor_psnr(outputs["oracle"], reference),
                      "oracle_iteration": max(r.evaluation["oracle_iteration"] for r in results),
                      "oracle_note": "the average of every member's own oracle iterate",
                      "stoppers": {name: stoppers[name]["ref_psnr"] for name in stoppers}}
    estimate, estimate_range = _ensemble_estimate(plan, results) if first.estimated_psnr is not None else (None,
                                                                                                          None)
    stopped_by = "max-iter" if any(r.stopped_by == "max-iter" for r in results) else first.stopped_by
    return replace(first, image=image, stop_iteration=max(r.stop_iteration for r in results), stopped_by=stopped_by,
                   iterations_run=sum(r.iterations_run for r in results), estimated_psnr=estimate,
                   estimated_psnr_range=estimate_range, seed=first.seed if seed is None else seed,
                   seconds=sum(r.seconds for r in results), seconds_training=sum(r.seconds_training for r in results),
                   stoppers=stoppers, evaluation=evaluation, config={**first.config, "ensemble": len(results)},
                   outputs=outputs, members=[_member_summary(m, r) for m, r in members])


class DIPDenoiser(nn.Module):
    """Deep Image Prior denoiser with staged targets and an automatic stop, for ``(B, C, H, W)`` tensors.

    It has no trainable state of its own: every call fits a fresh generator to each image.

    Parameters
    ----------
    config : DenoiserConfig, optional
        Settings.
    stopper : str
        The deciding stopper.
    seed : int
        Seed (image ``b`` of a batch uses ``seed + b``).

    Examples
    --------
    >>> denoiser = DIPDenoiser()                        # doctest: +SKIP
    >>> x_hat = denoiser(y, sigma=25 / 255)             # doctest: +SKIP
    >>> denoiser.last_results[0].stop_iteration         # doctest: +SKIP
    """

    def __init__(self, config: DenoiserConfig | None = None, stopper: str = DEFAULT_STOPPER, seed: int = 0):
        super().__init__()
        self.config = config or DenoiserConfig()
        self.stopper = stopper
        self.seed = seed
        self.last_results: list[Restoration] = []

    def forward(self, y: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        """Restore each image of the batch ``y`` (values in [0, 1]); sigma estimated per image if None."""
        if y.ndim != 4:
            raise InputError(f"expected a (B, C, H, W) tensor, got shape {tuple(y.shape)}")
        self.last_results = [restore_tensor(y[b:b + 1], sigma, config=self.config, stopper=self.stopper,
                                            seed=self.seed + b) for b in range(y.shape[0])]
        return torch.cat([r.image for r in self.last_results], dim=0)
