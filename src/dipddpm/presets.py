"""Named settings: the package default, a faster optimiser for low to moderate noise, and the original DIP
denoising recipe, for comparison.

``fast`` uses Adam at 0.03 after a 100-step linear warm-up and betas (0.9, 0.99) at every noise level;
the default uses it only at sigma <= 18/255, 28/255 in the tiles of a large image
(:class:`~dipddpm.config.LowNoiseOptimiser`). Issue 12,
``benchmarks/results/speed/README.md``: on 256² crops at sigma = 25 it reached the result 1.7-2.7x
sooner and no lower, on 128² crops at sigma = 25 a third sooner but 0.08-0.16 dB lower; at sigma = 50
it is up to 1.6 dB worse (the peak itself is lower) for little time saved.

``quality`` averages four runs in antithetic pairs (:mod:`dipddpm.ensemble`), each returning its colour components a
little after their own minima (``StoppingConfig.ensemble_delay``, ``split_colour``); on the 128² report crops (seed 1,
issue 13, fourteenth session, ``benchmarks/results/ensemble/README.md``) four runs gained +0.62 / +0.61 / +0.60 dB
over one at sigma = 15 / 25 / 50 and two runs +0.45 / +0.42 / +0.41 dB, for 4x and 2x the time; four runs were
0.51 / 0.36 dB below CBM3D at sigma 15 / 25 and 0.41 dB above it at 50. The default stays one run: time to a result
comes first (a pair doubles it for +0.4 dB; the colour split gave one run +0.22 to +0.38 dB at no cost).

A preset is a :class:`~dipddpm.config.DenoiserConfig` plus the stopper it is meant to run with.
``paper`` reproduces the denoising recipe of Ulyanov, Vedaldi & Lempitsky (*Deep Image Prior*,
CVPR 2018, supplementary material and the authors' denoising notebook): the skip network with 128
channels at 5 scales and 4-channel skips, reflection padding, bilinear upsampling, a 32-channel
uniform input scaled by 0.1, Adam with learning rate 0.01 (no warm-up, betas 0.9 / 0.999), input
jitter 1/30, an exponential average of the outputs (0.99) and a fixed 3000 iterations fitted to ``y``
itself, in float32.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .config import DenoiserConfig, StagingConfig
from .engine import TrainConfig
from .errors import InputError
from .nets import NetConfig

__all__ = ["PRESETS", "Preset", "get_preset"]


@dataclass(frozen=True)
class Preset:
    """A named configuration and the stopper it runs with.

    Attributes
    ----------
    name, description : str
    config : DenoiserConfig
    stopper : str
        The deciding stopper (``auto`` or one of :data:`dipddpm.restore.STOPPERS`).
    """

    name: str
    description: str
    config: DenoiserConfig
    stopper: str


_PAPER = DenoiserConfig(
    train=TrainConfig(lr=0.01, lr_warmup=0, betas=(0.9, 0.999), input_jitter=1.0 / 30.0, jitter="fresh",
                      ema_decay=0.99, output="ema", max_iter=3000, precision="float32",
                      net=NetConfig(input_channels=32, channels=128, depth=5, skip_channels=4,
                                    padding_mode="reflect", upsample="bilinear")),
    staging=StagingConfig(num_stages=1, ratio=0.0), low_noise=None, high_noise=None, declip=False, tiles=None)

_FAST = DenoiserConfig(train=TrainConfig(lr=0.03, lr_warmup=100, betas=(0.9, 0.99)))

PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("default", "the package defaults: automatic stop (recorruption with a = 0.25 for Gaussian noise, "
                      "held-out values otherwise), one stage, EMA output, Adam 0.01 (0.03 after a warm-up at "
                      "sigma <= 18/255, 28/255 in tiles), a total-variation term in the loss above sigma 35/255, "
                      "networks 4 scales deep in tiles, the forward pass in bfloat16 on a CPU with native "
                      "bfloat16, the input jitter drawn as a window of one fixed normal field, each colour "
                      "component of an RGB image at its own validation minimum", DenoiserConfig(),
           "auto"),
    Preset("fast", "the defaults with Adam 0.03 after a 100-step warm-up, betas 0.9 / 0.99 at every sigma (the "
                   "defaults use it at sigma <= 18/255, 28/255 in tiles): up to 2x sooner at sigma 25, up to 1.6 dB "
                   "worse at sigma 50",
           _FAST, "auto"),
    Preset("quality", "the defaults averaged over 4 runs in antithetic pairs (z, -z), each with its own "
                      "initialisation and stop: about +0.6 dB over one run on the 128² report crops, for 4x the time",
           DenoiserConfig(ensemble=4), "auto"),
    Preset("paper", "the original DIP denoising recipe: 128 channels, reflection padding, fit y for 3000 "
                    "iterations (slow on CPU; for comparison)", _PAPER, "fixed:3000"),
]}


def get_preset(name: str, max_iter: int | None = None) -> Preset:
    """The preset called ``name``, optionally with another iteration budget.

    Parameters
    ----------
    name : str
        One of :data:`PRESETS`.
    max_iter : int, optional
        Replaces the preset's budget (and, for ``paper``, its fixed stop).

    Returns
    -------
    Preset

    Raises
    ------
    InputError
        Unknown name or a budget below 1.
    """
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[name]
    if max_iter is None:
        return preset
    if max_iter < 1:
        raise InputError("max_iter must be at least 1")
    config = replace(preset.config, train=replace(preset.config.train, max_iter=int(max_iter)))
    stopper = f"fixed:{int(max_iter)}" if preset.stopper.startswith("fixed:") else preset.stopper
    return replace(preset, config=config, stopper=stopper)
