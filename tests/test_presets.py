from dataclasses import replace

import pytest

from dipddpm import DenoiserConfig, InputError
from dipddpm.presets import PRESETS, get_preset
from dipddpm.restore import check_stopper_name


def test_default_preset_is_the_package_default():
    assert PRESETS["default"].config == DenoiserConfig()
    assert PRESETS["default"].stopper == "auto"


def test_paper_preset_is_the_original_recipe():
    paper = PRESETS["paper"]
    net, train = paper.config.train.net, paper.config.train
    assert (net.channels, net.depth, net.skip_channels, net.input_channels) == (128, 5, 4, 32)
    assert (net.padding_mode, net.upsample) == ("reflect", "bilinear")
    assert (train.lr, train.input_jitter, train.ema_decay, train.max_iter) == (0.01, pytest.approx(1 / 30), 0.99, 3000)
    assert paper.config.staging.ratio == 0 and paper.config.staging.num_stages == 1  # fits y itself
    assert paper.stopper == "fixed:3000"


def test_budget_override_moves_a_fixed_stop_with_it():
    assert get_preset("paper", 500).stopper == "fixed:500"
    assert get_preset("paper", 500).config.train.max_iter == 500
    assert get_preset("default", 500).stopper == "auto"
    for preset in PRESETS.values():
        check_stopper_name(preset.stopper)


@pytest.mark.parametrize("name,budget,message", [("quick", None, "unknown preset"), ("paper", 0, "max_iter")])
def test_bad_presets(name, budget, message):
    with pytest.raises(InputError, match=message):
        get_preset(name, budget)


def test_fast_preset_changes_only_the_optimiser():
    fast, default = PRESETS["fast"].config, DenoiserConfig()
    assert (fast.train.lr, fast.train.lr_warmup, fast.train.betas) == (0.03, 100, (0.9, 0.99))
    assert fast.staging == default.staging and fast.stopping == default.stopping
    assert fast.train.net == default.train.net and fast.train.input_jitter == default.train.input_jitter
    assert PRESETS["fast"].stopper == "auto"


def test_paper_preset_keeps_its_optimiser_at_low_noise():
    assert PRESETS["paper"].config.low_noise is None


def test_quality_preset_is_the_default_run_four_times():
    quality = PRESETS["quality"]
    assert quality.config.ensemble == 4 and quality.stopper == "auto"
    assert replace(quality.config, ensemble=1) == DenoiserConfig()
    assert PRESETS["paper"].config.declip is False  # the original recipe returns its fit as it is
