import json

import numpy as np
import pytest
import torch
from conftest import smooth_image

import dipddpm
from dipddpm import DenoiserConfig, DIPDenoiser, InputError, NetConfig, StagingConfig, TrainConfig, denoise

FAST = DenoiserConfig(train=TrainConfig(max_iter=30, net=NetConfig(channels=8, depth=3, input_channels=8)),
                      staging=StagingConfig(num_stages=2, min_iter=5, max_iter=10))


def _noisy(clean, rng, sigma=0.1):
    return dipddpm.add_gaussian_noise(clean, sigma, rng)


def test_ground_truth_cannot_leak(clean_rgb, rng):
    noisy = _noisy(clean_rgb, rng)
    blind = denoise(noisy, 0.1, channel_axis=-1, config=FAST, seed=5, return_info=True)
    seen = denoise(noisy, 0.1, channel_axis=-1, config=FAST, seed=5, reference=clean_rgb, return_info=True)
    assert np.array_equal(blind.image, seen.image)
    assert blind.stop_iteration == seen.stop_iteration and blind.iterations_run == seen.iterations_run
    assert blind.history["loss"] == seen.history["loss"]
    assert blind.evaluation is None and "oracle" not in blind.history
    assert seen.evaluation["oracle_psnr"] >= seen.evaluation["ref_psnr"]
    assert seen.stoppers["oracle"]["evaluation_only"] is True


def test_seeded_denoise_is_reproducible(clean_rgb, rng):
    noisy = _noisy(clean_rgb, rng)
    a = denoise(noisy, 0.1, channel_axis=-1, config=FAST, seed=1)
    b = denoise(noisy, 0.1, channel_axis=-1, config=FAST, seed=1)
    c = denoise(noisy, 0.1, channel_axis=-1, config=FAST, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("shape,channel_axis", [((32, 32), None), ((32, 32, 3), -1), ((3, 32, 32), 0),
                                                ((3, 5), None), ((1, 50), None), ((3, 5, 3), -1),
                                                ((17, 31, 4), -1), ((9, 13, 2), -1)])
def test_shapes_survive(shape, channel_axis, rng):
    image = rng.random(shape)
    out = denoise(image, 0.1, channel_axis=channel_axis, config=FAST)
    assert out.shape == image.shape and out.dtype == np.float64
    assert np.all(np.isfinite(out))


def test_alpha_is_kept_and_dtype_preserved(rng):
    rgba = (rng.random((20, 24, 4)) * 255).astype(np.uint8)
    out = denoise(rgba, 0.1, channel_axis=-1, config=FAST, preserve_dtype=True)
    assert out.dtype == np.uint8 and out.shape == rgba.shape
    assert np.array_equal(out[..., 3], rgba[..., 3])
    u16 = (rng.random((20, 24)) * 65535).astype(np.uint16)
    assert denoise(u16, 0.1, config=FAST, preserve_dtype=True).dtype == np.uint16
    f32 = rng.random((20, 24)).astype(np.float32)
    assert denoise(f32, 0.1, config=FAST, preserve_dtype=True).dtype == np.float32


def test_float_images_outside_unit_range_keep_their_range(rng):
    image = 100.0 + 50.0 * rng.random((24, 24))
    out = denoise(image, 5.0, config=FAST, return_info=True)
    assert out.image.min() >= 0 and out.image.max() <= 150.0 + 1e-9
    assert out.sigma_used == pytest.approx(5.0 / image.max())  # [0, max] is mapped onto [0, 1]


def test_sigma_source_is_reported(clean_rgb, rng):
    noisy = _noisy(clean_rgb, rng)
    given = denoise(noisy, 0.1, channel_axis=-1, config=FAST, return_info=True)
    assert given.sigma_used == 0.1 and given.sigma_source == "given"
    estimated = denoise(noisy, channel_axis=-1, config=FAST, return_info=True)
    assert estimated.sigma_source == "estimated" and 0.05 < estimated.sigma_used < 0.2


def test_a_sigma_the_caller_estimated_is_treated_as_an_estimate(clean_rgb, rng):
    from dipddpm.restore import restore_tensor

    y = torch.from_numpy(_noisy(clean_rgb, rng).transpose(2, 0, 1)).float()[None]
    given = restore_tensor(y, 0.1, config=FAST, seed=3)
    estimated = restore_tensor(y, 0.1, config=FAST, seed=3, sigma_source="estimated")
    assert given.sigma_source == "given" and given.estimated_psnr is not None
    assert estimated.sigma_source == "estimated" and estimated.estimated_psnr is None  # too rough for one
    assert torch.equal(given.image, estimated.image)  # the same run: only what it reports differs
    with pytest.raises(ValueError, match="sigma_source"):
        restore_tensor(y, 0.1, config=FAST, sigma_source="guessed")


def test_result_serialises_with_the_documented_keys(clean_rgb, rng):
    info = denoise(_noisy(clean_rgb, rng), 0.1, channel_axis=-1, config=FAST, reference=clean_rgb,
                   watch=("es-wmv", "fixed"), return_info=True)
    data = json.loads(info.to_json())
    for key in ("stop_iteration", "sigma_used", "sigma_source", "estimated_psnr", "iterations_run", "seconds",
                "ref_psnr", "oracle_psnr", "oracle_iteration", "history", "versions", "config", "seed"):
        assert key in data
    assert set(data["stoppers"]) == {"recorruption", "es-wmv", "fixed", "oracle"}
    assert len(data["history"]["loss"]) == data["iterations_run"]


@pytest.mark.parametrize("kwargs,message", [
    (dict(sigma=-0.1), "positive"), (dict(sigma=float("nan")), "positive"), (dict(sigma="0.1"), "positive"),
    (dict(stopper="early"), "unknown stopper"), (dict(stopper="oracle"), "reference"),
    (dict(max_iter=0), "max_iter"), (dict(device="tpu"), "device"),
])
def test_bad_arguments(clean_rgb, kwargs, message):
    with pytest.raises(InputError, match=message):
        denoise(clean_rgb, **{"channel_axis": -1, "config": FAST, **kwargs})


def test_bad_images():
    with pytest.raises(InputError, match="NaN"):
        denoise(np.full((8, 8), np.nan), 0.1, config=FAST)
    with pytest.raises(InputError, match="channel_axis"):
        denoise(np.zeros((8, 8, 3)), 0.1, config=FAST)
    with pytest.raises(InputError, match="channels"):
        denoise(np.zeros((8, 8, 5)), 0.1, channel_axis=-1, config=FAST)
    with pytest.raises(InputError, match="reference"):
        denoise(np.zeros((8, 8)), 0.1, config=FAST, reference=np.zeros((8, 9)))
    with pytest.raises(InputError, match="pixel type"):
        denoise(np.zeros((8, 8), np.int64), 0.1, config=FAST)


def test_oracle_stopper_is_allowed_with_a_reference_and_returns_the_peak(clean_rgb, rng):
    info = denoise(_noisy(clean_rgb, rng), 0.1, channel_axis=-1, config=FAST, reference=clean_rgb,
                   stopper="oracle", return_info=True)
    assert info.stop_iteration == info.evaluation["oracle_iteration"]
    assert info.evaluation["ref_psnr"] == pytest.approx(info.evaluation["oracle_psnr"])


def test_torch_denoiser_handles_a_batch(rng):
    batch = torch.from_numpy(np.stack([smooth_image(16, 24).transpose(2, 0, 1)] * 2)).float()
    batch = (batch + 0.1 * torch.randn(batch.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    model = DIPDenoiser(FAST, seed=0)
    out = model(batch, sigma=0.1)
    assert out.shape == batch.shape
    assert len(model.last_results) == 2 and model.last_results[1].seed == 1
    with pytest.raises(InputError):
        model(batch[0])
