"""The input jitter: a fresh draw is what it always was; a window of the fixed field has the same distribution."""

import math

import pytest
import torch

from dipddpm.engine import TrainConfig
from dipddpm.jitter import InputJitter

SHAPE = (1, 8, 24, 20)


def _jitter(kind: str, seed: int = 0, scale: float = 0.5, margin: int = 16) -> InputJitter:
    return InputJitter(SHAPE, scale, kind, torch.Generator().manual_seed(seed), torch.device("cpu"), margin=margin)


def test_fresh_is_a_scaled_normal_draw_from_the_generator():
    drawn = _jitter("fresh", seed=3).draw()
    expected = 0.5 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    assert torch.equal(drawn, expected)


def test_a_window_is_a_signed_window_of_the_field():
    jitter = _jitter("window", margin=16)
    field = jitter.field[0]
    for _ in range(5):
        drawn = jitter.draw()[0]
        assert drawn.shape == SHAPE[1:]
        matches = [(top, left) for top in range(17) for left in range(17)
                   if torch.equal(drawn.abs(), field[:, top:top + SHAPE[2], left:left + SHAPE[3]].abs())]
        assert len(matches) == 1
        top, left = matches[0]
        signs = drawn / field[:, top:top + SHAPE[2], left:left + SHAPE[3]]
        per_channel = signs.flatten(1)
        assert torch.equal(per_channel, per_channel[:, :1].expand_as(per_channel))
        assert set(per_channel[:, 0].tolist()) <= {-1.0, 1.0}


def test_windows_move_and_flip():
    jitter = _jitter("window", margin=16)
    draws = [jitter.draw() for _ in range(20)]
    assert len({tuple(d.flatten()[:4].tolist()) for d in draws}) > 10


@pytest.mark.parametrize("kind", ["fresh", "window"])
def test_each_draw_has_the_scale_as_its_standard_deviation(kind):
    scale = 0.5
    jitter = _jitter(kind, scale=scale)
    values = torch.cat([jitter.draw().flatten() for _ in range(50)])
    one_draw = SHAPE[1] * SHAPE[2] * SHAPE[3]
    # per draw: mean 0 and variance scale^2; the windows of one field share values, so the tolerance is that
    # of a single draw's n values, not of all 50 draws' values
    assert abs(float(values.mean())) < 4 * scale / math.sqrt(one_draw)
    assert abs(float(values.std()) / scale - 1) < 4 * math.sqrt(2 / one_draw)


@pytest.mark.parametrize("kind", ["fresh", "window"])
def test_the_same_seed_gives_the_same_jitter(kind):
    first, second = _jitter(kind, seed=7), _jitter(kind, seed=7)
    for _ in range(3):
        assert torch.equal(first.draw(), second.draw())
    assert not torch.equal(_jitter(kind, seed=7).draw(), _jitter(kind, seed=8).draw())


def test_the_window_keeps_the_codes_memory_layout():
    jitter = InputJitter(SHAPE, 0.1, "window", torch.Generator().manual_seed(0), torch.device("cpu"),
                         torch.channels_last)
    assert jitter.draw().is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("kwargs", [{"kind": "gaussian"}, {"kind": "window", "margin": 0}])
def test_bad_settings_are_refused(kwargs):
    settings = {"shape": SHAPE, "scale": 0.1, "generator": torch.Generator(), "device": torch.device("cpu"),
                "kind": "fresh", **kwargs}
    with pytest.raises(ValueError):
        InputJitter(**settings)


def test_train_config_refuses_an_unknown_jitter():
    with pytest.raises(ValueError, match="jitter"):
        TrainConfig(jitter="uniform")
