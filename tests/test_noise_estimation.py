"""Noise-level estimators of dipddpm.noise on synthetic images (no benchmark data read)."""

import numpy as np
import pytest

from dipddpm.errors import InputError
from dipddpm.noise import (
    SIGMA_METHODS,
    add_gaussian_noise,
    estimate_sigma,
    estimate_sigma_pca,
    estimate_sigma_wavelet,
    estimate_sigma_weak_texture,
    pca_noise_variance,
)


def textured_image(size: int = 160, grating: bool = True) -> np.ndarray:
    """Smooth gradients, a bright disc, a dark square and (``grating``) a patch of fine diagonal grating, in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 0.25 + 0.35 * xx + 0.2 * yy
    image = np.where((yy - 0.3) ** 2 + (xx - 0.7) ** 2 < 0.03, 0.85, image)
    image = np.where((yy > 0.65) & (xx < 0.3), 0.08, image)
    where = (yy > 0.55) & (xx > 0.55) & grating
    image = np.where(where, image + 0.12 * np.sin(2 * np.pi * (xx + yy) * size / 3.0), image)
    return np.clip(image, 0.0, 1.0)


def noisy(clean: np.ndarray, sigma255: float, seed: int, clip: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return add_gaussian_noise(clean, sigma255 / 255, rng, clip=clip, bits=8 if clip else None)


@pytest.mark.parametrize("method", SIGMA_METHODS)
@pytest.mark.parametrize("sigma255", [10, 25, 50])
@pytest.mark.parametrize("clip", [False, True])
def test_each_method_recovers_sigma(method, sigma255, clip):
    clean = textured_image(grating=method != "wavelet")  # the grating fools the wavelet: see below
    estimate = estimate_sigma(noisy(clean, sigma255, 7, clip), method=method) * 255
    assert estimate == pytest.approx(sigma255, rel=0.08)


@pytest.mark.parametrize("method", SIGMA_METHODS)
def test_colour_channels_are_averaged(method):
    plane = textured_image(grating=method != "wavelet")
    clean = np.stack([plane, plane[::-1], plane.T], axis=-1)
    image = noisy(clean, 20, 3, clip=True)
    estimate = estimate_sigma(image, channel_axis=-1, method=method) * 255
    assert estimate == pytest.approx(20, rel=0.08)
    first = estimate_sigma(np.moveaxis(image, -1, 0), channel_axis=0, method=method) * 255
    assert first == pytest.approx(estimate, rel=1e-9)


@pytest.mark.parametrize("fn", [estimate_sigma_pca, estimate_sigma_weak_texture])
def test_noise_free_low_rank_image_reads_about_zero(fn):
    # A linear ramp plus a sinusoid: every patch lies in a 4-dimensional affine space, so the
    # patch covariance has (numerically) zero eigenvalues past the fourth.
    yy, xx = np.mgrid[0:96, 0:96] / 96
    clean = 0.3 + 0.3 * xx + 0.1 * yy + 0.1 * np.sin(2 * np.pi * 12 * xx)
    assert fn(clean) * 255 < 0.05


def test_noise_free_smooth_image_reads_about_zero_with_the_wavelet():
    yy, xx = np.mgrid[0:96, 0:96] / 96
    assert estimate_sigma_wavelet(0.3 + 0.3 * xx + 0.1 * yy) * 255 < 0.05


@pytest.mark.parametrize("sigma255", [10, 25])
def test_fine_diagonal_texture_fools_the_wavelet_but_not_the_patch_estimators(sigma255):
    image = noisy(textured_image(), sigma255, 7, clip=True)
    assert estimate_sigma(image, method="wavelet") * 255 > 1.1 * sigma255
    assert estimate_sigma(image) * 255 == pytest.approx(sigma255, rel=0.05)  # the default
    for method in ("pca", "weak-texture"):
        assert estimate_sigma(image, method=method) * 255 == pytest.approx(sigma255, rel=0.05)


@pytest.mark.parametrize("method", ["pca", "weak-texture"])
def test_small_pure_noise_image_is_not_read_low(method):
    # 64x64x3 of pure noise: few patches for a 49- or 64-dimensional covariance, whose smallest
    # eigenvalue alone would read about 11% low.
    rng = np.random.default_rng(1234)
    image = np.clip(0.5 + 0.1 * rng.standard_normal((64, 64, 3)), 0, 1)
    assert estimate_sigma(image, channel_axis=-1, method=method) == pytest.approx(0.1, rel=0.05)


def test_pca_rule_returns_the_noise_level_of_a_synthetic_spectrum():
    # Signal eigenvalues well above the noise floor, then 40 noise eigenvalues spread symmetrically
    # about 2.0: the largest tail whose mean is its median is exactly the noise part.
    rng = np.random.default_rng(0)
    half = 2.0 + np.sort(rng.uniform(0.05, 0.5, 20))
    noise = np.concatenate([half, 4.0 - half])
    signal = np.array([400.0, 90.0, 30.0, 12.0, 6.0, 4.0])
    spectrum = rng.permutation(np.concatenate([signal, noise]))
    assert pca_noise_variance(spectrum) == pytest.approx(2.0, rel=1e-12)


def test_pca_rule_takes_the_whole_spectrum_when_it_is_symmetric():
    spectrum = np.array([3.0, 2.5, 2.0, 1.5, 1.0])  # odd: the mean is the middle value itself
    assert pca_noise_variance(spectrum) == pytest.approx(2.0)


def test_pca_rule_stops_at_the_largest_qualifying_tail():
    # [10, 3, 2, 1]: mean 4 has 1 above, 3 below; [3, 2, 1]: mean 2 has 1 above, 1 below -> 2.
    # The shorter tail [2, 1] would qualify too (1.5), but the first, largest one wins.
    assert pca_noise_variance(np.array([1.0, 10.0, 2.0, 3.0])) == pytest.approx(2.0)


def test_clipping_correction_helps_at_sigma_50():
    # Half of the image near black: clipping removes much of the noise there.
    yy, xx = np.mgrid[0:160, 0:160] / 160
    clean = np.where(xx < 0.5, 0.03 + 0.05 * yy, 0.5 + 0.2 * yy)
    image = noisy(clean, 50, 11, clip=True)
    for fn in (estimate_sigma_pca, estimate_sigma_weak_texture):
        plain = fn(image, clip_correction=False) * 255
        corrected = fn(image) * 255
        assert plain < 0.9 * 50  # clipping makes the plain estimate read low
        assert abs(corrected - 50) < 0.5 * abs(plain - 50)


def test_clipping_correction_is_skipped_for_values_outside_the_unit_range():
    clean = textured_image()
    image = noisy(clean, 50, 5, clip=False)
    assert image.min() < 0  # the noise went past 0: it was not clipped
    for fn in (estimate_sigma_pca, estimate_sigma_weak_texture, estimate_sigma_wavelet):
        assert fn(image, clip_correction=None) == fn(image, clip_correction=False)


def test_weak_texture_is_the_default_and_wavelet_still_the_former_estimator():
    image = noisy(textured_image(), 25, 2, clip=True)
    assert estimate_sigma(image) == estimate_sigma(image, method="weak-texture") == estimate_sigma_weak_texture(image)
    assert estimate_sigma(image, method="wavelet") == estimate_sigma_wavelet(image, clip_correction=True)


def test_unknown_method_raises_input_error():
    with pytest.raises(InputError, match="unknown noise-estimation method") as info:
        estimate_sigma(np.zeros((32, 32)), method="mad")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("method", ["pca", "weak-texture"])
@pytest.mark.parametrize("shape", [(6, 200), (9, 9), (1, 64)])
def test_too_small_for_the_patch_says_give_sigma(method, shape):
    with pytest.raises(InputError, match="give sigma") as info:
        estimate_sigma(np.full(shape, 0.5), method=method)
    assert "\n" not in str(info.value)


def test_wavelet_too_small_says_give_sigma():
    with pytest.raises(InputError, match="give sigma"):
        estimate_sigma(np.full((1, 2), 0.5), method="wavelet")


@pytest.mark.parametrize("method", ["pca", "weak-texture"])
def test_colour_without_channel_axis_is_an_input_error(method):
    with pytest.raises(InputError, match="channel_axis"):
        estimate_sigma(np.full((32, 32, 3), 0.5), method=method)


def test_bad_weak_texture_options_raise_input_error():
    image = noisy(textured_image(64), 20, 0, clip=False)
    with pytest.raises(InputError):
        estimate_sigma_weak_texture(image, confidence=1.0)
    with pytest.raises(InputError):
        estimate_sigma_weak_texture(image, spectrum="largest")


def test_clipped_moments_and_their_inverse_match_simulated_clipping(rng):
    from dipddpm.noise import clipped_mean_inverse, clipped_noise_moments

    sigma = 0.2
    x = np.array([0.0, 0.03, 0.1, 0.5, 0.9, 1.0])
    draws = np.clip(x[:, None] + sigma * rng.standard_normal((x.size, 200_000)), 0, 1) - x[:, None]
    mean, second = clipped_noise_moments(x, sigma)
    tolerance = 4 * sigma / np.sqrt(200_000)  # four standard errors of a mean of 200 000 draws
    np.testing.assert_allclose(mean, draws.mean(axis=1), atol=tolerance)
    np.testing.assert_allclose(second, (draws ** 2).mean(axis=1), atol=4 * sigma ** 2 * np.sqrt(2 / 200_000))
    assert mean[3] == pytest.approx(0.0, abs=1e-6) and mean[0] > 0 > mean[-1]  # clipping pulls towards the middle
    np.testing.assert_allclose(clipped_mean_inverse(x + mean, sigma), x, atol=1e-4)
    assert clipped_mean_inverse(np.array([0.0, 1.0]), sigma).tolist() == [0.0, 1.0]  # beyond m(0) and m(1)
