import numpy as np
import pytest

from dipddpm.schedule import (
    SCHEDULES,
    alphas_cumprod,
    beta_schedule,
    geometric_scales,
    timestep_for_scale,
    x0_noise_scale,
)


@pytest.mark.parametrize("name", SCHEDULES)
def test_betas_are_valid_and_scales_increase(name):
    betas = beta_schedule(name, 1000)
    assert betas.shape == (1000,)
    assert np.all((betas > 0) & (betas < 1))
    abar = alphas_cumprod(betas)
    assert np.all(np.diff(abar) < 0)
    assert np.all(np.diff(x0_noise_scale(abar)) > 0)


def test_schedule_endpoints():
    lin = beta_schedule("linear", 1000, 1e-4, 0.02)
    assert lin[0] == pytest.approx(1e-4) and lin[-1] == pytest.approx(0.02)
    sq = beta_schedule("scaled_linear", 1000, 1e-4, 0.02)
    assert sq[0] == pytest.approx(1e-4) and sq[-1] == pytest.approx(0.02)
    assert np.all(np.diff(np.sqrt(sq)) == pytest.approx(np.diff(np.sqrt(sq))[0]))
    sig = beta_schedule("sigmoid", 1000, 1e-4, 0.02)
    s6 = 1 / (1 + np.exp(6.0))
    assert sig[0] == pytest.approx(1e-4 + s6 * (0.02 - 1e-4))
    assert sig[-1] == pytest.approx(1e-4 + (1 - s6) * (0.02 - 1e-4))
    cos = beta_schedule("cosine", 1000)
    assert cos.max() <= 0.999 and cos[-1] == pytest.approx(0.999)
    abar = alphas_cumprod(cos)
    # abar_t = f(t)/f(0) with f(t) = cos^2((t/T + s)/(1 + s) * pi/2)
    def f(t):
        return np.cos((t / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2
    assert abar[499] == pytest.approx(f(500) / f(0), rel=1e-9)


def test_alphas_cumprod_is_the_product():
    betas = np.array([0.1, 0.2, 0.5])
    assert alphas_cumprod(betas) == pytest.approx([0.9, 0.72, 0.36])


@pytest.mark.parametrize("name", SCHEDULES)
def test_x0_target_times_sqrt_abar_is_the_ddpm_marginal(name, rng):
    abar = alphas_cumprod(beta_schedule(name, 1000))
    s = x0_noise_scale(abar)
    y = rng.random((8, 8))
    z = rng.standard_normal((8, 8))
    for t in (0, 10, 250, 999):
        marginal = np.sqrt(abar[t]) * y + np.sqrt(1 - abar[t]) * z
        assert np.allclose((y + s[t] * z) * np.sqrt(abar[t]), marginal, rtol=1e-12, atol=1e-12)


def test_timestep_for_scale_inverts_the_scale():
    s = x0_noise_scale(alphas_cumprod(beta_schedule("linear")))
    for t in (3, 40, 200, 700):
        assert timestep_for_scale(s, s[t]) == t


def test_geometric_scales():
    g = geometric_scales(0.4, 0.05, 4)
    assert g[0] == pytest.approx(0.4) and g[-1] == pytest.approx(0.05)
    ratios = g[1:] / g[:-1]
    assert np.allclose(ratios, ratios[0])
    assert geometric_scales(0.4, 0.05, 1) == pytest.approx([0.05])


@pytest.mark.parametrize("call", [
    lambda: beta_schedule("quadratic"),
    lambda: beta_schedule("linear", 0),
    lambda: beta_schedule("linear", 10, 0.5, 0.1),
    lambda: geometric_scales(0.1, 0.2, 3),
    lambda: geometric_scales(0.1, 0.0, 3),
    lambda: geometric_scales(0.1, 0.05, 0),
])
def test_bad_schedule_arguments_raise(call):
    with pytest.raises(ValueError):
        call()
