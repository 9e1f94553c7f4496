"""The benchmark's methods: DIP trajectories watched by many stoppers, and one-shot baselines.

A DIP method runs ONE trajectory per row with every stopper attached as an observer; each stopper
records where it would have stopped and the iterate it would have returned. The oracle (the
best iterate against the clean image) is read off the same trajectory: evaluation only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..config import DenoiserConfig, StagingConfig
from ..engine import StepInfo
from ..metrics import psnr
from ..noise import estimate_sigma
from ..restore import draw_noise, restore_tensor
from .baselines import bayes_shrink, bm3d_available, bm3d_denoise, nl_means, tv_chambolle
from .zsn2n import zsn2n_denoise

__all__ = ["Outcome", "DipMethod", "OneShotMethod", "METHODS", "DEFAULT_METHODS", "BEYOND_PEAK", "end_when_all_fired",
           "to_tensor"]

BEYOND_PEAK = 300
"""A trajectory ends early once every stopper has fired and the oracle has not improved for this long."""


@dataclass
class Outcome:
    """What one method produced on one noisy image.

    ``images`` maps a stopper name (``"-"`` for one-shot methods) to ``(image, stop_iteration,
    fired_at)``; ``oracle`` is ``(psnr, iteration)`` of the best iterate of the same trajectory,
    or None for one-shot methods. ``curve`` holds ``(iteration, psnr)`` pairs every 10 iterations;
    ``histories`` the full per-iteration ``oracle`` (PSNR) and ``recorruption`` (validation MSE)
    columns and the ``stage``, so stopping rules can be replayed offline.
    """

    images: dict[str, tuple[np.ndarray, int | None, int | None]]
    oracle: tuple[float, int] | None
    iterations_run: int | None
    sigma_used: float | None
    sigma_source: str
    seconds: float
    curve: list[tuple[int, float]] = field(default_factory=list)
    histories: dict[str, list] = field(default_factory=dict)
    estimate: tuple[float | None, float | None, float | None] | None = None


def to_tensor(image: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """A grey ``(H, W)`` or ``(H, W, C)`` image as a ``(1, C, H, W)`` float32 tensor on ``device``."""
    hwc = image[..., None] if image.ndim == 2 else image
    return torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1))).float()[None].to(device)


def _to_numpy(tensor: torch.Tensor, grey: bool) -> np.ndarray:
    out = tensor[0].permute(1, 2, 0).double().cpu().numpy()
    return out[..., 0] if grey else out


def end_when_all_fired(info: StepInfo) -> bool:
    """Callback ending a watched trajectory once every non-oracle stopper has fired and the oracle has not
    improved for :data:`BEYOND_PEAK` iterations (the oracle is evaluation only: it ends the recording, never
    chooses a result)."""
    others = [s for name, s in info.stoppers.items() if name != "oracle"]
    oracle = info.stoppers["oracle"]
    return (all(s.fired_at is not None for s in others)
            and info.iteration - (oracle.best_iteration or 0) >= BEYOND_PEAK)


@dataclass(frozen=True)
class DipMethod:
    """A DIP trajectory (or an antithetic pair, or a run plus a refit) watched by stoppers.

    Attributes
    ----------
    name, description : str
    config : DenoiserConfig
    stoppers : tuple of str
        Stoppers attached as observers (the oracle is always added).
    variant : {"single", "antithetic", "refit"}
        ``antithetic``: a second run on ``-z`` (validated on ``y + sigma/a z``) and the two
        returned images averaged; ``refit``: after the recorruption stop at ``t*``, a fresh run on
        ``y`` itself for ``t*`` iterations.
    sigma_given : bool
        Use the true sigma instead of estimating it.
    """

    name: str
    description: str
    config: DenoiserConfig
    stoppers: tuple[str, ...]
    variant: str = "single"
    sigma_given: bool = False
    family: str = "dip"

    def _trajectory(self, y: torch.Tensor, sigma: float, ref: torch.Tensor, seed: int, config: DenoiserConfig,
                    stoppers: tuple[str, ...], noise: torch.Tensor | None = None):
        return restore_tensor(y, sigma, config=config, stopper="oracle", watch=stoppers, reference=ref, seed=seed,
                              callbacks=(end_when_all_fired,), noise=noise)

    def run(self, noisy: np.ndarray, clean: np.ndarray, sigma_true: float, seed: int, device: str,
            max_iter: int) -> Outcome:
        """Run on one noisy image; ``clean`` feeds only the oracle and the scores."""
        start = time.perf_counter()
        grey = noisy.ndim == 2
        y, ref = to_tensor(noisy, device), to_tensor(clean, device)
        sigma = sigma_true if self.sigma_given else estimate_sigma(noisy, channel_axis=None if grey else -1)
        config = replace(self.config, train=replace(self.config.train, max_iter=max_iter))
        first = self._trajectory(y, sigma, ref, seed, config, self.stoppers)
        curve = list(zip(first.history["iteration"][9::10], first.history["oracle"][9::10], strict=True))
        images = {name: (_to_numpy(first.outputs[name], grey) if name in first.outputs else None,
                         s["best_iteration"], s["fired_at"])
                  for name, s in first.stoppers.items() if name != "oracle"}
        oracle = (first.evaluation["oracle_psnr"], first.evaluation["oracle_iteration"])
        iterations = first.iterations_run
        if self.variant == "antithetic":
            twin = self._trajectory(y, sigma, ref, seed + 10_000, config, self.stoppers,
                                    noise=-draw_noise(y.shape, seed))
            iterations += twin.iterations_run
            for name in [n for n in images if images[n][0] is not None and n in twin.outputs]:
                a, b = images[name], _to_numpy(twin.outputs[name], grey)
                images[name] = ((a[0] + b) / 2, max(a[1] or 0, twin.stoppers[name]["best_iteration"] or 0),
                                a[2] if a[2] is None or twin.stoppers[name]["fired_at"] is None
                                else max(a[2], twin.stoppers[name]["fired_at"]))
            pair = (_to_numpy(first.outputs["oracle"], grey) + _to_numpy(twin.outputs["oracle"], grey))
            oracle = (psnr(pair / 2, clean), max(oracle[1], twin.evaluation["oracle_iteration"]))
        elif self.variant == "refit":
            stop = images["recorruption"][1]
            plain = replace(config, staging=StagingConfig(num_stages=1, ratio=0.0))
            refit = restore_tensor(y, sigma, config=plain, stopper=f"fixed:{stop}", reference=ref, seed=seed)
            iterations += refit.iterations_run
            images = {"recorruption": (_to_numpy(refit.image, grey), stop, images["recorruption"][2])}
        histories = {k: first.history[k] for k in ("oracle", "recorruption", "stage") if k in first.history}
        estimate = None
        if self.variant == "single" and first.estimated_psnr is not None:
            estimate = (first.estimated_psnr, *first.estimated_psnr_range)
        return Outcome(images=images, oracle=oracle, iterations_run=iterations, sigma_used=sigma,
                       sigma_source="given" if self.sigma_given else "estimated",
                       seconds=time.perf_counter() - start, curve=curve, histories=histories, estimate=estimate)


@dataclass(frozen=True)
class OneShotMethod:
    """A method without iterations to stop: ``function(noisy, sigma, channel_axis, seed, device)``.

    ``sigma_given``: the function receives the true sigma; otherwise it receives None and either
    estimates sigma itself or does not need it.
    """

    name: str
    description: str
    function: Callable[..., np.ndarray]
    sigma_given: bool = True
    family: str = "classical"
    available: Callable[[], bool] = lambda: True

    def run(self, noisy: np.ndarray, clean: np.ndarray, sigma_true: float, seed: int, device: str,
            max_iter: int) -> Outcome:
        """Run on one noisy image (``clean`` is not used)."""
        start = time.perf_counter()
        axis = None if noisy.ndim == 2 else -1
        sigma = sigma_true if self.sigma_given else None
        image = np.clip(self.function(noisy, sigma, axis, seed, device), 0, 1)
        return Outcome(images={"-": (image, None, None)}, oracle=None, iterations_run=None, sigma_used=sigma,
                       sigma_source="given" if self.sigma_given else "method's own",
                       seconds=time.perf_counter() - start)


_OURS = DenoiserConfig()
# The tuning variants, plain DIP and the seed's schedule pin the optimiser they were measured with
# (Adam 0.01, no warm-up, betas 0.9 / 0.999, at every sigma; the jitter drawn fresh each step) and return the fit
# itself (no declipping), so that their names reproduce them whatever the defaults (no total-variation term either).
_ADAM_0 = replace(_OURS.train, lr=0.01, lr_warmup=0, betas=(0.9, 0.999), jitter="fresh")
_PINNED = replace(_OURS, low_noise=None, high_noise=None, declip=False)
_WATCH_ALL = ("recorruption", "es-wmv", "es-emv", "discrepancy", "fixed:1800", "schedule-end")
_PLAIN = replace(_PINNED, train=_ADAM_0, staging=StagingConfig(num_stages=1, ratio=0.0))
_SEED = replace(_PINNED, train=_ADAM_0, staging=StagingConfig(timesteps=(100, 50, 25, 10), ratio=0.0, rule="seed"))


def _variant(stages: int, ratio: float = 0.5, output: str = "ema", variant: str = "single",
             s_max: float = 4.0, channels: int = 32, lr: float = 0.01) -> DipMethod:
    """A tuning variant, named by how it differs from ``K{stages}`` (a = 0.5, EMA output, s_max = 4 sigma,
    32 channels, learning rate 0.01)."""
    name = f"K{stages}" + (f"-a{ratio:g}" if ratio != 0.5 else "") + ("-raw" if output == "raw" else "") \
        + (f"-{variant}" if variant != "single" else "") + (f"-smax{s_max:g}" if s_max != 4.0 else "") \
        + (f"-c{channels}" if channels != 32 else "") + (f"-lr{lr:g}" if lr != 0.01 else "")
    staging = replace(_OURS.staging, num_stages=stages, ratio=ratio, s_max_factor=s_max)
    net = replace(_ADAM_0.net, channels=channels)
    config = replace(_PINNED, staging=staging, train=replace(_ADAM_0, output=output, net=net, lr=lr))
    what = {"antithetic": "antithetic pair (z and -z) averaged, 2x compute",
            "refit": "refit on y for the chosen number of iterations, 2x compute"}.get(variant, "single run")
    return DipMethod(name, f"{stages} stage(s), a = {ratio:g}, {output} output, s_max = {s_max:g} sigma, "
                           f"{channels} channels, lr {lr:g}, {what}", config, ("recorruption",), variant)


_TUNING = [_variant(1), _variant(3), _variant(5), _variant(1, ratio=0.25), _variant(1, ratio=1.0),
           _variant(3, ratio=0.25), _variant(3, ratio=1.0), _variant(1, output="raw"), _variant(3, output="raw"),
           _variant(1, variant="antithetic"), _variant(3, variant="antithetic"), _variant(1, variant="refit"),
           _variant(3, variant="refit"), _variant(3, s_max=2.0), _variant(3, s_max=8.0),
           _variant(1, channels=64), _variant(1, channels=128), _variant(1, ratio=0.25, channels=64),
           _variant(1, ratio=0.125), _variant(1, ratio=0.0625), _variant(1, ratio=0.25, variant="antithetic"),
           _variant(1, ratio=0.25, variant="refit"),
           _variant(3, ratio=0.25, s_max=2.0), _variant(1, ratio=0.25, output="raw"),
           _variant(1, ratio=0.25, channels=16), _variant(1, ratio=0.25, channels=16, lr=0.02),
           _variant(1, ratio=0.25, lr=0.02)]

METHODS: dict[str, DipMethod | OneShotMethod] = {m.name: m for m in [
    DipMethod("ours", "the default settings, sigma estimated; every stopper watches", _OURS, _WATCH_ALL),
    *_TUNING,
    DipMethod("dip", "plain DIP on y (no stages), baseline stoppers", _PLAIN,
              ("es-wmv", "es-emv", "discrepancy", "fixed:1800", "fixed:3000")),
    DipMethod("seed", "the seed's schedule: DDPM timesteps 100/50/25/10, E(i) as written, schedule-end stop",
              _SEED, ("schedule-end",)),
    OneShotMethod("bayes", "wavelet BayesShrink (scikit-image), sigma given",
                  lambda y, s, ax, seed, dev: bayes_shrink(y, s, ax)),
    OneShotMethod("bayes-est", "wavelet BayesShrink (scikit-image), sigma estimated by scikit-image",
                  lambda y, s, ax, seed, dev: bayes_shrink(y, None, ax), sigma_given=False),
    OneShotMethod("tv", "total variation (Chambolle), weight = sigma",
                  lambda y, s, ax, seed, dev: tv_chambolle(y, s, ax)),
    OneShotMethod("nlm", "non-local means, fast mode, h = 0.6 sigma",
                  lambda y, s, ax, seed, dev: nl_means(y, s, ax)),
    OneShotMethod("bm3d", "BM3D / CBM3D (optional bm3d package, non-commercial licence)",
                  lambda y, s, ax, seed, dev: bm3d_denoise(y, s, ax), available=bm3d_available),
    OneShotMethod("zsn2n", "Zero-Shot Noise2Noise (re-derived), 2000 steps", lambda y, s, ax, seed, dev:
                  zsn2n_denoise(y, ax, seed=seed, device=dev), sigma_given=False, family="zero-shot"),
]}

DEFAULT_METHODS = ("ours", "dip", "seed", "bayes", "bayes-est", "tv", "nlm", "bm3d", "zsn2n")
