"""The recorruption estimate along a whole run: validation error minus offset tracks the true error.

For an iterate ``xbar`` that depends on ``y + a sigma z`` only (and on the run's own randomness),

    v - offset - MSE = (|n|^2/N - s_e^2) - 2 (sigma/a) <n, z>/N - 2 <xbar - x, n2>/N,

with ``n2 = n - (sigma/a) z`` independent of the training target's noise. The first two terms are the
same at every iteration (their standard deviation is the stopper's ``offset_uncertainty``); the last
has mean zero and standard deviation ``2 sqrt(MSE * sigma^2 (1 + 1/a^2) / N)``. Every setting that
changes what the network sees or fits (the optimiser's settings, staged targets, a prior term in the
loss) must keep the difference inside that band at every iteration of the final stage; a run that fits
``y`` itself (which carries ``n2``) must leave it.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch

from dipddpm.config import DenoiserConfig, StagingConfig
from dipddpm.curriculum import Curriculum, NoiseFloorRule, plain_stages
from dipddpm.engine import TrainConfig, run
from dipddpm.nets import NetConfig
from dipddpm.restore import restore_tensor
from dipddpm.stopping import OracleStopper, RecorruptionStopper

SIGMA, SIZE, STEPS = 0.1, 64, 600
NET = NetConfig(channels=16, depth=4, input_channels=8)
BASE = DenoiserConfig(train=TrainConfig(net=NET, max_iter=STEPS))


def _scene():
    g = torch.Generator().manual_seed(5)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
    planes = [0.5 + 0.25 * torch.sin(7 * xx + 3 * yy), 0.3 + 0.4 * (xx > 0.5).float(), 0.4 + 0.3 * yy]
    x = torch.stack(planes)[None].float()
    y = x + SIGMA * torch.randn(x.shape, generator=g)
    z = torch.randn(x.shape, generator=g)
    return x, y, z


def _band(mse: np.ndarray, offset_sd: float, ratio: float, count: int) -> np.ndarray:
    return np.sqrt(offset_sd**2 + 4 * mse * SIGMA**2 * (1 + 1 / ratio**2) / count)


@pytest.mark.parametrize("config", [
    BASE,
    replace(BASE, train=replace(BASE.train, lr=0.03, lr_warmup=100, betas=(0.9, 0.99))),
    replace(BASE, staging=StagingConfig(num_stages=3, min_iter=20, max_iter=60)),
    replace(BASE, train=replace(BASE.train, tv_weight=0.01)),
], ids=["default", "the fast preset's optimiser", "three stages", "a total-variation term"])
def test_validation_error_minus_offset_tracks_the_true_error_along_the_run(config):
    x, y, z = _scene()
    result = restore_tensor(y, SIGMA, config=config, stopper=f"fixed:{STEPS}", watch=("recorruption",),
                            reference=x, noise=z, seed=0)
    ratio = config.staging.ratio
    summary = result.stoppers["recorruption"]
    final = np.array(result.history["stage"]) == max(result.history["stage"])
    mse = 10 ** (-np.array(result.history["oracle"]) / 10)
    error = np.array(result.history["recorruption"]) - summary["offset"] - mse
    band = _band(mse, summary["offset_uncertainty"], ratio, y.numel())
    assert final.sum() > STEPS // 2
    assert np.all(np.abs(error[final]) <= 3 * band[final])
    peak = int(np.argmin(mse))
    assert mse[peak] < 0.1 * mse[0] and peak < len(mse) - 50  # the check covers the rise, the peak and beyond


def test_a_run_that_sees_y_itself_breaks_the_identity():
    """Negative control: fitting y (which carries the validation noise) drives the estimate below the truth."""
    x, y, z = _scene()
    ratio = 0.25
    watcher = RecorruptionStopper(y, z, SIGMA, ratio, patience=10**6, clipped=False)
    curriculum = Curriculum(y, z, plain_stages(), SIGMA, NoiseFloorRule())
    record = run(curriculum, {"recorruption": watcher, "oracle": OracleStopper(x)}, "oracle",
                 replace(BASE.train, max_iter=int(1.5 * STEPS)), seed=0)
    mse = 10 ** (-np.array(record.history["oracle"]) / 10)
    error = np.array(record.history["recorruption"]) - watcher.offset - mse
    band = _band(mse, watcher.offset_uncertainty, ratio, y.numel())
    assert np.all(np.abs(error[:50]) <= 3 * band[:50])  # before the net has fitted noise it still holds
    assert error[-1] < -4 * band[-1]
