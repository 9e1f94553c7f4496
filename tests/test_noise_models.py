import numpy as np
import pytest
import torch
from conftest import smooth_image
from scipy.optimize import minimize_scalar
from scipy.stats import poisson

from dipddpm.errors import InputError
from dipddpm.noise_models import (
    ESWMV_LEVELS,
    NOISE_MODELS,
    anscombe,
    expected_anscombe,
    get_noise_model,
    inverse_anscombe,
    poisson_divergence,
    sample_gaussian,
    sample_impulse,
    sample_poisson,
    sample_speckle,
    squared_error,
    weighted_mean,
)

FLAT = (3, 128, 128)  # 49 152 values


def _flat(value):
    return np.full(FLAT, value)


def test_levels_table_covers_every_model():
    assert set(ESWMV_LEVELS) == set(NOISE_MODELS)
    for name, levels in ESWMV_LEVELS.items():
        assert sorted(levels) == [2, 3, 4]
        assert NOISE_MODELS[name].name == name
    assert ESWMV_LEVELS["gaussian"][4] == 0.26 and ESWMV_LEVELS["poisson"][4] == 5


@pytest.mark.parametrize("name", sorted(NOISE_MODELS))
def test_samplers_are_reproducible_in_range_and_quantised(name):
    model, level, image = NOISE_MODELS[name], ESWMV_LEVELS[name][3], smooth_image()
    a = model.sample(image, level, np.random.default_rng(7))
    b = model.sample(image, level, np.random.default_rng(7))
    c = model.sample(image, level, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == image.shape and a.min() >= 0 and a.max() <= 1
    assert np.array_equal(a * 255, np.round(a * 255))
    floats = model.sample(image, level, np.random.default_rng(7), bits=None)
    assert not np.array_equal(floats * 255, np.round(floats * 255))
    assert np.max(np.abs(floats - a)) <= 0.5 / 255 + 1e-12  # rounding, not truncation


def test_gaussian_std_is_sigma(rng):
    noisy = sample_gaussian(_flat(0.5), 0.1, rng, bits=None)
    assert abs(noisy.mean() - 0.5) < 0.002
    assert noisy.std() == pytest.approx(0.1, rel=0.02)


def test_shot_noise_is_poisson_in_photon_units(rng):
    photons, x = 40.0, 0.25  # 10 photons on average; clipping needs more than 40
    noisy = sample_poisson(_flat(x), photons, rng, bits=None)
    counts = noisy * photons
    assert np.array_equal(counts, np.round(counts))
    assert noisy.mean() == pytest.approx(x, rel=0.01)
    assert noisy.var() == pytest.approx(x / photons, rel=0.03)


def test_impulse_replaces_each_channel_independently_half_salt(rng):
    amount, x = 0.3, 0.5
    noisy = sample_impulse(_flat(x), amount, rng, bits=None)
    replaced = noisy != x
    assert replaced.mean() == pytest.approx(amount, abs=0.006)
    assert np.mean(noisy[replaced] == 1.0) == pytest.approx(0.5, abs=0.015)
    assert np.all((noisy[replaced] == 0) | (noisy[replaced] == 1))
    assert np.all(replaced, axis=0).mean() == pytest.approx(amount**3, abs=0.003)


def test_speckle_std_is_proportional_to_the_clean_value(rng):
    c = 0.2
    for x in (0.2, 0.4):
        noisy = sample_speckle(_flat(x), c, rng, bits=None)
        assert noisy.mean() == pytest.approx(x, rel=0.01)
        assert noisy.std() == pytest.approx(c * x, rel=0.02)


@pytest.mark.parametrize(
    ("sampler", "level", "match"),
    [
        (sample_gaussian, -0.1, "sigma must be >= 0"),
        (sample_poisson, 0.0, "photon count at white must be > 0"),
        (sample_poisson, -5.0, "photon count at white must be > 0"),
        (sample_impulse, 1.5, r"amount must be in \[0, 1\]"),
        (sample_impulse, -0.1, r"amount must be in \[0, 1\]"),
        (sample_speckle, -0.2, "speckle c must be >= 0"),
    ],
)
def test_bad_levels_raise_input_error(sampler, level, match, rng):
    with pytest.raises(InputError, match=match):
        sampler(smooth_image(), level, rng)


@pytest.mark.parametrize("name", sorted(NOISE_MODELS))
@pytest.mark.parametrize("image", [np.full((4, 4), 1.2), np.full((4, 4), -0.1), np.full((4, 4), np.nan)])
def test_images_outside_unit_range_raise_input_error(name, image, rng):
    with pytest.raises(InputError, match=r"clean image must hold finite values in \[0, 1\]"):
        NOISE_MODELS[name].sample(image, ESWMV_LEVELS[name][2], rng)


def test_bad_bits_raise_input_error(rng):
    with pytest.raises(InputError, match="bits must be a positive integer"):
        sample_speckle(smooth_image(), 0.2, rng, bits=0)


def test_get_noise_model():
    assert get_noise_model("poisson").loss is poisson_divergence
    with pytest.raises(InputError, match="unknown noise model 'shot'; choose one of gaussian, poisson, impulse, "
                                         "speckle$"):
        get_noise_model("shot")


def _constant_minimiser(loss, observation):
    y = torch.from_numpy(observation)
    result = minimize_scalar(lambda c: float(weighted_mean(loss(torch.full_like(y, c), y))), bounds=(0, 1),
                             method="bounded", options={"xatol": 1e-7})
    return result.x


@pytest.mark.parametrize("name", sorted(NOISE_MODELS))
def test_each_loss_fitted_by_a_constant_recovers_the_clean_value(name, rng):
    x = 0.3  # far enough from 0 and 1 that clipping is negligible at level 2
    model = NOISE_MODELS[name]
    noisy = model.sample(_flat(x), ESWMV_LEVELS[name][2], rng, bits=None)
    assert _constant_minimiser(model.loss, noisy) == pytest.approx(x, abs=0.004)


def test_l1_is_needed_for_impulse_noise(rng):
    noisy = sample_impulse(_flat(0.3), 0.3, rng, bits=None)  # mean 0.7 * 0.3 + 0.3 * 0.5 = 0.36
    assert _constant_minimiser(squared_error, noisy) == pytest.approx(0.36, abs=0.005)


def test_poisson_divergence_minimiser_is_the_mean_even_at_few_photons(rng):
    noisy = sample_poisson(_flat(0.1), 5.0, rng, bits=None)  # 0.5 photons on average, mostly zeros
    assert _constant_minimiser(poisson_divergence, noisy) == pytest.approx(noisy.mean(), abs=1e-5)


def test_poisson_divergence_is_zero_at_the_observation_and_finite_at_zero_prediction():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64)
    y[0, 0, 0, 0] = 0.0
    assert torch.allclose(poisson_divergence(y, y), torch.zeros_like(y), atol=1e-12)
    assert torch.all(poisson_divergence(y * 0.9, y)[y > 0] > 0)
    prediction = torch.zeros_like(y, requires_grad=True)
    loss = weighted_mean(poisson_divergence(prediction, y))
    loss.backward()
    assert torch.isfinite(loss) and torch.all(torch.isfinite(prediction.grad))
    assert torch.all(prediction.grad[y > 0] < 0)  # pushes the prediction up towards the data


def _poisson_moments_of_anscombe(mu):
    k = np.arange(int(mu + 40 * np.sqrt(mu) + 50), dtype=np.float64)
    weights = poisson.pmf(k, mu)
    a = anscombe(k)
    mean = np.sum(weights * a)
    return mean, np.sum(weights * a * a) - mean**2


@pytest.mark.parametrize("mu", [1.0, 2.0, 5.0, 20.0, 100.0])
def test_inverse_anscombe_is_unbiased(mu):
    mean, _ = _poisson_moments_of_anscombe(mu)
    assert inverse_anscombe(mean) == pytest.approx(mu, abs=0.03)
    assert abs(mean**2 / 4 - 3 / 8 - mu) > 0.15  # the algebraic inverse is biased


def test_anscombe_round_trip_and_stabilised_variance(rng):
    z = np.array([100.0, 400.0, 2500.0])
    assert np.allclose(inverse_anscombe(anscombe(z)), z, rtol=3e-3)
    for mu in (20.0, 100.0):
        assert _poisson_moments_of_anscombe(mu)[1] == pytest.approx(1.0, abs=0.001)
    photons = 80.0  # mid-grey: 20 photons on average
    counts = sample_poisson(_flat(0.25), photons, rng, bits=None) * photons
    assert np.var(anscombe(counts)) == pytest.approx(1.0, abs=0.03)


def test_anscombe_accepts_tensors_and_rejects_negative_counts():
    counts = torch.tensor([0.0, 3.0, 50.0], dtype=torch.float64)
    assert torch.allclose(anscombe(counts), torch.from_numpy(anscombe(counts.numpy())))
    assert float(inverse_anscombe(anscombe(counts))[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(inverse_anscombe(torch.tensor(0.0))) == pytest.approx(0.0, abs=1e-6)  # float32
    with pytest.raises(InputError, match="counts must be >= 0"):
        anscombe(np.array([1.0, -1.0]))


@pytest.mark.parametrize("name", sorted(NOISE_MODELS))
def test_losses_are_elementwise(name):
    g = torch.Generator().manual_seed(0)
    p, y = torch.rand(2, 3, 5, 4, generator=g), torch.rand(2, 3, 5, 4, generator=g)
    values = NOISE_MODELS[name].loss(p, y)
    assert values.shape == p.shape
    single = NOISE_MODELS[name].loss(p[1, 2, 3, 1], y[1, 2, 3, 1])
    assert torch.equal(values[1, 2, 3, 1], single)


def test_weighted_mean_counts_only_weighted_values():
    values = torch.tensor([1.0, 2.0, 3.0, 100.0])
    assert float(weighted_mean(values, torch.tensor([1.0, 1.0, 1.0, 0.0]))) == pytest.approx(2.0)
    assert torch.equal(weighted_mean(values), torch.mean(values))
    assert float(weighted_mean(values, torch.ones(4))) == pytest.approx(float(torch.mean(values)))


@pytest.mark.parametrize("mean,rel", [(0.0, 1e-12), (0.05, 1e-12), (0.7, 1e-12), (3.0, 1e-12), (20.0, 1e-12),
                                      (400.0, 1e-12), (1000.0, 1e-12), (1000.5, 1e-10), (20000.0, 1e-12)])
def test_expected_anscombe_is_the_mean_of_the_transform(mean, rel):
    """The series up to 1000 counts, the expansion above: both agree with the direct sum."""
    k = np.arange(max(0, int(mean - 40 * mean**0.5 - 60)), int(mean + 40 * (mean**0.5) + 60))
    pmf = poisson.pmf(k, mean)
    direct = np.sum(pmf * 2 * np.sqrt(k + 0.375)) / np.sum(pmf)  # scipy's pmf sums to 1 - 1e-11 at 20000
    assert expected_anscombe(np.array([mean]))[0] == pytest.approx(direct, rel=rel)


def test_expected_anscombe_lies_below_the_transform_and_meets_its_asymptote():
    means = np.array([0.5, 2.0, 10.0, 100.0, 1000.0])
    g = expected_anscombe(means)
    assert np.all(g < 2 * np.sqrt(means + 0.375))  # Jensen: E sqrt < sqrt E
    assert np.all(np.diff(g) > 0)
    assert abs(g[-1] - 2 * np.sqrt(1000.125)) < 1e-4  # g(mu) - 2 sqrt(mu + 1/8) = O(mu^-3/2)
    assert inverse_anscombe(g[2:]) == pytest.approx(means[2:], rel=2e-3)  # Makitalo-Foi inverts it


def test_expected_anscombe_refuses_negative_means():
    with pytest.raises(InputError, match="Poisson means"):
        expected_anscombe(np.array([1.0, -0.5]))
