"""Restoration through forward operators (inpainting, upscaling) and under non-Gaussian noise."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import smooth_image

from dipddpm import (
    DenoiserConfig,
    InputError,
    NetConfig,
    StagingConfig,
    StoppingConfig,
    TrainConfig,
    denoise,
    restore_tensor,
)
from dipddpm.api import mask_operator
from dipddpm.metrics import psnr
from dipddpm.noise_models import sample_poisson
from dipddpm.physics import AnscombeStabilised, Downsample, Identity, PixelMask, from_deepinv
from dipddpm.restore import draw_holdout, no_estimate_reason, resolve_stopper

FAST = DenoiserConfig(train=TrainConfig(max_iter=30, net=NetConfig(channels=8, depth=3, input_channels=8)),
                      staging=StagingConfig(num_stages=2, min_iter=5, max_iter=10))


def _random_mask(shape, seed=0, keep=0.5):
    return np.random.default_rng(seed).random(shape) < keep


def test_inpainting_fills_the_missing_pixels():
    clean = smooth_image(24, 24)
    mask = _random_mask(clean.shape[:2])
    masked = clean * mask[..., None]
    info = denoise(masked, channel_axis=-1, config=FAST, max_iter=60, physics=mask_operator(mask, masked, -1),
                   return_info=True)
    missing = ~mask
    assert info.image.shape == clean.shape and np.all(np.isfinite(info.image))
    restored_error = np.mean((info.image[missing] - clean[missing]) ** 2)
    assert restored_error < 0.25 * np.mean((masked[missing] - clean[missing]) ** 2)
    assert info.stopper == "held-out" and info.sigma_used is None and info.sigma_source == "none"
    assert info.physics.startswith("pixel mask")


def test_missing_pixels_do_not_matter():
    clean = smooth_image(16, 16)
    mask = _random_mask(clean.shape)  # one mask per channel
    garbage = np.where(mask, clean, np.random.default_rng(1).random(clean.shape))
    runs = [denoise(y, channel_axis=-1, config=FAST, max_iter=8, stopper="fixed:8", seed=2,
                    physics=mask_operator(mask, y, -1), return_info=True) for y in (clean * mask, garbage)]
    assert np.array_equal(runs[0].image, runs[1].image)
    assert runs[0].history["loss"] == runs[1].history["loss"]


@pytest.mark.parametrize("shape,channel_axis", [((8, 6), None), ((8, 6, 3), -1), ((8, 6, 4), -1)])
def test_upscaling_returns_the_larger_image(shape, channel_axis):
    small = np.random.default_rng(0).random(shape)
    out = denoise(small, channel_axis=channel_axis, config=FAST, max_iter=5, physics=Downsample(4))
    assert out.shape == (32, 24, *shape[2:]) and np.all(np.isfinite(out))
    if shape[-1] == 4:  # alpha is not restored: nearest-neighbour enlarged
        assert np.array_equal(out[::4, ::4, 3], small[..., 3])


def test_upscaling_evaluates_against_a_full_size_reference():
    clean = smooth_image(16, 16)
    small = clean.reshape(8, 2, 8, 2, 3).mean(axis=(1, 3))
    info = denoise(small, channel_axis=-1, config=FAST, max_iter=5, physics=Downsample(2), reference=clean,
                   return_info=True)
    assert info.evaluation["noisy_psnr"] is None and np.isfinite(info.evaluation["ref_psnr"])
    with pytest.raises(InputError, match="reference"):
        denoise(small, channel_axis=-1, config=FAST, physics=Downsample(2), reference=small)


def test_custom_operators_run_through_the_same_loop():
    class Halve:  # duck-typed deepinv physics
        def A(self, x):
            return 0.5 * x

        def A_adjoint(self, y):
            return 0.5 * y

    y = torch.from_numpy(smooth_image(16, 16).transpose(2, 0, 1)).float()[None] * 0.5
    result = restore_tensor(y, config=FAST, physics=from_deepinv(Halve()))
    assert result.stopper == "held-out" and result.physics == "custom (Halve)" and result.image.shape == y.shape


@pytest.mark.parametrize("noise,physics,sigma,expected", [
    ("gaussian", None, None, "recorruption"),
    ("gaussian", Identity(), 0.1, "recorruption"),
    ("gaussian", PixelMask(torch.ones(4, 4)), 0.1, "recorruption"),
    ("gaussian", PixelMask(torch.ones(4, 4)), None, "held-out"),
    ("gaussian", Downsample(2), None, "held-out"),
    ("poisson", None, None, "held-out"),
    ("impulse", None, 0.1, "held-out"),
    ("speckle", Downsample(2), 0.1, "held-out"),
])
def test_auto_resolves_by_noise_and_operator(noise, physics, sigma, expected):
    assert resolve_stopper("auto", noise, physics, sigma) == expected
    assert resolve_stopper("es-wmv", noise, physics, sigma) == "es-wmv"


@pytest.mark.parametrize("noise,stopper", [("gaussian", "recorruption"), ("poisson", "held-out"),
                                           ("impulse", "held-out"), ("speckle", "held-out")])
def test_auto_is_the_default_and_the_result_names_what_it_chose(noise, stopper):
    clean = smooth_image(16, 16)
    noisy = sample_poisson(clean, 12.0, np.random.default_rng(0))
    info = denoise(noisy, channel_axis=-1, config=FAST, max_iter=6, noise=noise, return_info=True)
    data = json.loads(info.to_json())
    assert data["stopper"] == stopper and data["noise"] == noise and data["physics"] == "identity"
    assert data["sigma_source"] == ("estimated" if noise == "gaussian" else "none")


def test_held_out_values_never_enter_the_training_loss():
    clean = smooth_image(16, 16)
    y = torch.from_numpy(clean.transpose(2, 0, 1)).float()[None]
    y = (y + 0.1 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    held = draw_holdout(torch.ones_like(y), FAST.stopping.holdout, seed=4)
    changed = y + 0.3 * held

    def trained(observation, watch):  # the fits (`changed` is no longer clipped, so it would not be declipped)
        return restore_tensor(observation, 0.1, config=replace(FAST, declip=False), stopper="fixed:6", watch=watch,
                              seed=4)

    a, b = trained(y, ("held-out",)), trained(changed, ("held-out",))
    assert torch.equal(a.image, b.image) and a.history["loss"] == b.history["loss"]
    assert a.history["held-out"] != b.history["held-out"]  # the stopper does see them
    assert not torch.equal(trained(y, ()).image, trained(changed, ()).image)  # without holding out, they train


@pytest.mark.parametrize("kwargs,message", [
    (dict(noise="poisson", stopper="recorruption"), "Gaussian noise.*held-out"),
    (dict(noise="poisson", stopper="discrepancy"), "needs sigma"),
    (dict(noise="shot"), "unknown noise model"),
    (dict(photons=5.0), "photons go with Poisson noise"),
    (dict(noise="poisson", photons=5.0, sigma=0.1), "photons go with Poisson noise and no sigma"),
    (dict(noise="poisson", photons=-5.0), "photons must be a positive number"),
    (dict(noise="poisson", image=smooth_image(16, 16) - 1.0), "Poisson data cannot be negative"),
    (dict(physics=Downsample(2), stopper="recorruption"), "needs sigma"),
    (dict(physics=Downsample(2), tile=16), "tiling"),
    (dict(stopper="held-out", config=DenoiserConfig(stopping=StoppingConfig(holdout=1.5))), "fraction"),
])
def test_bad_combinations_raise_input_error(kwargs, message):
    kwargs = dict(kwargs)
    image = kwargs.pop("image", smooth_image(16, 16))
    with pytest.raises(InputError, match=message):
        denoise(image, channel_axis=-1, **{"config": FAST, "max_iter": 3, **kwargs})


def test_tensor_restoration_refuses_negative_poisson_data():
    y = torch.from_numpy(smooth_image(16, 16).transpose(2, 0, 1)).float()[None] - 0.2
    with pytest.raises(InputError, match="Poisson data cannot be negative"):
        restore_tensor(y, config=FAST, noise_model="poisson")


def test_mask_operator_checks_the_mask():
    image = smooth_image(8, 6)
    assert mask_operator(np.ones((8, 6), np.uint8) * 255, image, -1).mask.shape == (8, 6)
    per_channel = mask_operator(_random_mask((8, 6, 3)), image, -1)
    assert per_channel.mask.shape == (3, 8, 6)
    with pytest.raises(InputError, match="mask is 8x7 pixels but the image is 8x6"):
        mask_operator(np.ones((8, 7)), image, -1)
    with pytest.raises(InputError, match="keeps no pixels"):
        mask_operator(np.zeros((8, 6)), image, -1)
    with pytest.raises(InputError, match="channels"):
        mask_operator(np.ones((8, 6, 2)), image, -1)
    with pytest.raises(InputError, match="grey mask"):
        mask_operator(np.ones((8, 6, 3)), image[..., 0])


def test_poisson_with_photons_runs_gaussian_in_anscombe_units():
    clean = smooth_image(24, 24)
    noisy = sample_poisson(clean, 12.0, np.random.default_rng(0))
    info = denoise(noisy, channel_axis=-1, config=FAST, max_iter=200, noise="poisson", photons=12.0, reference=clean,
                   return_info=True)
    assert info.stopper == "recorruption" and info.noise == "poisson" and info.sigma_source == "photons"
    assert info.sigma_used == pytest.approx(1 / (2 * (12.375**0.5 - 0.375**0.5)))
    assert info.physics == "Anscombe-stabilised (12 photons)" and len(info.stage_scales) > 1
    assert info.estimated_psnr is None  # the recorruption estimate is in stabilised units, not the image's
    assert info.describe_estimate().startswith("n/a (Poisson data: the run's estimate is of the stabilised image")
    assert info.evaluation["noisy_psnr"] == pytest.approx(psnr(noisy, clean), abs=1e-3)
    assert info.evaluation["ref_psnr"] > info.evaluation["noisy_psnr"] + 3


def test_photons_reach_every_tile():
    clean = smooth_image(32, 32)
    noisy = sample_poisson(clean, 12.0, np.random.default_rng(0))
    info = denoise(noisy, channel_axis=-1, config=FAST, max_iter=4, noise="poisson", photons=12.0, tile=20,
                   overlap=4, return_info=True)
    assert len(info.tiles) == 4 and {t["stopped_by"] for t in info.tiles} <= {"recorruption", "max-iter"}
    assert info.sigma_source == "photons" and info.sigma_used == pytest.approx(1 / (2 * (12.375**0.5 - 0.375**0.5)))


@pytest.mark.parametrize("stopper,physics,source,sigma,declip,reason", [
    ("recorruption", Identity(), "given", 0.1, True, None),
    ("recorruption", Identity(), "given", 0.2, False, None),
    ("recorruption", Identity(), "given", 0.2, True, "not reliable on clipped images above sigma 35/255"),
    ("recorruption", Identity(), "estimated", 0.1, False, "sigma was estimated; give sigma for one"),
    ("held-out", Identity(), "none", None, False,
     "only the recorruption stopper gives one, this run stopped by held-out"),
    ("fixed:30", Identity(), "given", 0.1, False,
     "only the recorruption stopper gives one, this run stopped by fixed:30"),
    ("recorruption", AnscombeStabilised(Identity(), 12.0), "photons", 0.1, False,
     "Poisson data: the run's estimate is of the stabilised image, not of this one"),
    ("recorruption", Downsample(2), "given", 0.1, False,
     "the run's estimate is of the measured values, not of the restored image"),
])
def test_every_run_without_a_psnr_estimate_says_why(stopper, physics, source, sigma, declip, reason):
    assert no_estimate_reason(stopper, physics, source, sigma, declip) == reason


def test_a_watched_recorruption_stopper_gives_no_estimate_of_another_stoppers_result():
    clean = smooth_image(24, 24)
    noisy = np.clip(clean + 0.1 * np.random.default_rng(0).standard_normal(clean.shape), 0, 1)
    info = denoise(noisy, 0.1, channel_axis=-1, config=FAST, stopper="fixed:20", watch=("recorruption",),
                   return_info=True)
    assert info.stoppers["recorruption"]["estimated_psnr"] is not None  # its own iterate's, kept in the record
    assert info.estimated_psnr is None and "stopped by fixed:20" in info.describe_estimate()
