"""The low-noise optimiser: which runs get it, and that the run really uses it."""

from dataclasses import replace

import pytest
import torch
from conftest import smooth_image

from dipddpm.config import DenoiserConfig, LowNoiseOptimiser, StagingConfig
from dipddpm.engine import TrainConfig
from dipddpm.nets import NetConfig
from dipddpm.restore import restore_tensor

TINY = DenoiserConfig(train=TrainConfig(max_iter=6, net=NetConfig(channels=8, depth=3, input_channels=8)),
                      staging=StagingConfig(num_stages=1))


@pytest.mark.parametrize("sigma,low", [(None, False), (5 / 255, True), (18 / 255, True), (18.5 / 255, False),
                                       (50 / 255, False)])
def test_the_threshold(sigma, low):
    train = TrainConfig()
    chosen = LowNoiseOptimiser().train_for(train, sigma)
    assert (chosen.lr, chosen.lr_warmup, chosen.betas) == ((0.03, 100, (0.9, 0.99)) if low else (0.01, 0, (0.9, 0.999)))
    assert replace(chosen, lr=train.lr, lr_warmup=train.lr_warmup, betas=train.betas) == train  # nothing else moves


@pytest.mark.parametrize("sigma,low", [(18 / 255, True), (25 / 255, True), (28 / 255, True), (28.5 / 255, False)])
def test_tiles_get_it_up_to_their_own_threshold(sigma, low):
    train, rule = TrainConfig(), LowNoiseOptimiser()
    assert rule.in_tiles().train_for(train, sigma).lr == (0.03 if low else 0.01)
    assert rule.train_for(train, 25 / 255).lr == 0.01  # a whole image keeps the lower threshold
    assert LowNoiseOptimiser(sigma_max=0.2, tile_sigma_max=0.1).in_tiles().sigma_max == 0.2  # never lowered
    assert replace(DenoiserConfig(), low_noise=None).for_tiles().low_noise is None


def test_a_tiled_run_uses_the_tile_threshold():
    from dipddpm.api import denoise

    sigma = 25 / 255
    image = _noisy(sigma)[0].permute(1, 2, 0).numpy()
    tiled = denoise(image, sigma, channel_axis=-1, config=TINY, tile=16, overlap=4, stopper="fixed:6", return_info=True)
    whole = denoise(image, sigma, channel_axis=-1, config=TINY, tile=None, stopper="fixed:6", return_info=True)
    assert len(tiled.tiles) > 1 and tiled.config["train"]["lr"] == 0.03
    assert whole.config["train"]["lr"] == 0.01


def test_config_without_the_rule_keeps_its_optimiser():
    config = replace(DenoiserConfig(), low_noise=None)
    assert config.train_for(5 / 255) == config.train
    assert DenoiserConfig().train_for(5 / 255).lr == 0.03


def _noisy(sigma, seed=0):
    clean = torch.from_numpy(smooth_image(24, 24)).permute(2, 0, 1)[None].float()
    generator = torch.Generator().manual_seed(seed)
    return (clean + sigma * torch.randn(clean.shape, generator=generator)).clamp(0, 1)


@pytest.mark.parametrize("sigma,rate", [(10 / 255, 0.03 / 100), (40 / 255, 0.01)])
def test_gaussian_runs_use_it_below_the_threshold(sigma, rate):
    result = restore_tensor(_noisy(sigma), sigma, config=TINY, stopper="fixed:6")
    assert result.history["lr"][0] == pytest.approx(rate)  # the first warm-up step, or the plain rate
    assert result.config["train"]["lr"] == (0.03 if sigma < 18 / 255 else 0.01)


def test_other_runs_keep_the_configured_optimiser():
    noisy = _noisy(10 / 255)
    poisson = restore_tensor(noisy, None, config=TINY, stopper="fixed:6", noise_model="poisson")
    photons = restore_tensor(noisy, None, config=TINY, stopper="fixed:6", noise_model="poisson", photons=2000.0)
    for result in (poisson, photons):
        assert result.history["lr"][0] == pytest.approx(0.01) and result.config["train"]["lr"] == 0.01


def test_a_clipped_image_is_declipped_and_nothing_else_changes():
    from dipddpm.restore import declipped

    clean = torch.from_numpy(smooth_image(24, 24)).permute(2, 0, 1)[None].float() * 0.3  # dark: much clipping
    noisy = (clean + 0.2 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    raw = restore_tensor(noisy, 0.2, config=replace(TINY, declip=False), seed=2)
    fixed = restore_tensor(noisy, 0.2, config=TINY, seed=2)
    assert raw.stop_iteration == fixed.stop_iteration
    assert torch.allclose(fixed.image, declipped(raw.image, 0.2))
    assert float(fixed.image.mean()) < float(raw.image.mean())  # the fit is pulled up by clipping at black
    unclipped = noisy.clamp(1e-3, 1 - 1e-3)  # nothing sits on a bound: not clipped, nothing to undo
    assert torch.equal(restore_tensor(unclipped, 0.2, config=TINY, seed=2).image,
                       restore_tensor(unclipped, 0.2, config=replace(TINY, declip=False), seed=2).image)


def test_an_estimated_sigma_gives_no_psnr_estimate():
    noisy = _noisy(25 / 255)
    assert restore_tensor(noisy, None, config=TINY).estimated_psnr is None
    given = restore_tensor(noisy, 25 / 255, config=TINY)
    assert given.estimated_psnr is not None and given.stoppers["recorruption"]["estimated_mse"] > 0


@pytest.mark.parametrize("source,sigma,declip,withheld", [
    ("estimated", 0.1, True, "sigma was estimated"), ("given", 50 / 255, True, "not reliable on clipped images"),
    ("given", 35 / 255, True, None), ("given", 50 / 255, False, None), ("photons", 1.0, False, None)])
def test_when_the_psnr_estimate_is_withheld(source, sigma, declip, withheld):
    from dipddpm.restore import estimate_withheld

    reason = estimate_withheld(source, sigma, declip)
    assert reason is None if withheld is None else withheld in reason


def test_a_clipped_image_at_high_noise_gives_no_psnr_estimate_and_says_why():
    sigma = 50 / 255
    clipped = _noisy(sigma)
    assert float((clipped == 0).float().mean()) > 0  # it touches a bound: declipped
    result = restore_tensor(clipped, sigma, config=TINY)
    assert result.estimated_psnr is None and result.estimated_psnr_range is None
    assert result.describe_estimate() == "n/a (not reliable on clipped images above sigma 35/255)"
    assert result.stoppers["recorruption"]["estimated_mse"] is not None  # the stopper's numbers stay
    assert result.to_dict()["estimate_withheld"].startswith("not reliable")
    unclipped = restore_tensor(clipped.clamp(1e-3, 1 - 1e-3), sigma, config=TINY)  # not clipped: an estimate
    assert unclipped.estimate_withheld is None and unclipped.stoppers["recorruption"]["estimated_mse"] is not None
    lower = restore_tensor(_noisy(25 / 255), 25 / 255, config=TINY)
    assert lower.estimate_withheld is None

