"""The total-variation term at high noise: which runs get it, and that the run records it."""

from dataclasses import replace

import pytest
import torch
from conftest import smooth_image

from dipddpm.config import DenoiserConfig, HighNoisePrior, StagingConfig
from dipddpm.engine import TrainConfig
from dipddpm.nets import NetConfig
from dipddpm.restore import restore_tensor

TINY = DenoiserConfig(train=TrainConfig(max_iter=4, net=NetConfig(channels=8, depth=3, input_channels=8)),
                      staging=StagingConfig(num_stages=1))


@pytest.mark.parametrize("sigma,weight", [(None, 0.0), (15 / 255, 0.0), (35 / 255, 0.0), (36 / 255, 0.01),
                                          (50 / 255, 0.01)])
def test_the_threshold(sigma, weight):
    train = TrainConfig()
    chosen = HighNoisePrior().train_for(train, sigma)
    assert chosen.tv_weight == weight
    assert replace(chosen, tv_weight=0.0) == train  # nothing else moves


def test_the_config_composes_both_rules_and_each_can_be_switched_off():
    config = DenoiserConfig()
    assert config.train_for(50 / 255).tv_weight == 0.01 and config.train_for(50 / 255).lr == 0.01
    assert config.train_for(10 / 255).tv_weight == 0.0 and config.train_for(10 / 255).lr == 0.03
    assert replace(config, high_noise=None).train_for(50 / 255) == config.train


@pytest.mark.parametrize("sigma,weight", [(20 / 255, 0.0), (50 / 255, 0.01)])
def test_gaussian_runs_record_the_weight_they_used(sigma, weight):
    clean = torch.from_numpy(smooth_image(24, 24)).permute(2, 0, 1)[None].float()
    y = (clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    result = restore_tensor(y, sigma, config=TINY, stopper="fixed:4")
    assert result.config["train"]["tv_weight"] == weight


def test_the_benchmark_variants_and_the_paper_preset_pin_no_term():
    from dipddpm.bench.methods import METHODS
    from dipddpm.presets import get_preset

    assert get_preset("paper").config.high_noise is None
    pinned = [m for m in METHODS.values() if getattr(m, "config", None) is not None and m.name.startswith("K1")]
    assert pinned and all(m.config.high_noise is None for m in pinned)
