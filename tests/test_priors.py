"""The total-variation prior: its value on images whose variation is known, and its place in the loss."""

import math

import pytest
import torch

from dipddpm.curriculum import Curriculum, NoiseFloorRule, plain_stages
from dipddpm.engine import TrainConfig, run
from dipddpm.nets import NetConfig
from dipddpm.priors import total_variation
from dipddpm.stopping import FixedStopper


def test_a_flat_image_has_no_variation():
    assert float(total_variation(torch.full((1, 3, 9, 7), 0.4), eps=0.0)) == 0.0


def test_a_ramp_varies_by_its_slope_and_a_diagonal_ramp_isotropically():
    rows = torch.arange(6.0)[:, None].expand(6, 8)
    cols = torch.arange(8.0)[None, :].expand(6, 8)
    assert float(total_variation(0.1 * cols, eps=0.0)) == pytest.approx(0.1)
    assert float(total_variation(0.1 * rows, eps=0.0)) == pytest.approx(0.1)
    assert float(total_variation(0.1 * (rows + cols), eps=0.0)) == pytest.approx(0.1 * math.sqrt(2))


def test_a_single_edge_counts_once_per_pixel_along_it():
    image = torch.zeros(10, 10)
    image[:, 5:] = 1.0
    # one column of the 9 x 9 evaluated pixels jumps by 1
    assert float(total_variation(image, eps=0.0)) == pytest.approx(9 / 81)


def test_too_small_an_image_is_refused():
    with pytest.raises(ValueError, match="2 x 2"):
        total_variation(torch.zeros(1, 3, 1, 5))


def test_the_weight_must_not_be_negative():
    with pytest.raises(ValueError, match="tv_weight"):
        TrainConfig(tv_weight=-0.1)


def test_the_term_reaches_the_network_but_the_recorded_loss_stays_the_data_term():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 3, 16, 16, generator=g)
    z = torch.randn(1, 3, 16, 16, generator=g)

    def fit(weight):
        curriculum = Curriculum(y, z, plain_stages(), 0.1, NoiseFloorRule())
        config = TrainConfig(max_iter=5, tv_weight=weight, net=NetConfig(channels=8, depth=2, input_channels=4))
        return run(curriculum, {"fixed": FixedStopper(5)}, "fixed", config, seed=1)

    plain, smoothed = fit(0.0), fit(0.5)
    assert plain.history["loss"][0] == smoothed.history["loss"][0]  # the same first forward pass, data term only
    assert plain.history["loss"][-1] != smoothed.history["loss"][-1]
    assert float(total_variation(smoothed.output)) < float(total_variation(plain.output))
