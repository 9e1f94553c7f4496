import math

import numpy as np
import pytest
import torch
from conftest import smooth_image

from dipddpm.errors import InputError
from dipddpm.metrics import tensor_psnr
from dipddpm.noise import clipped_mean_inverse, clipped_mean_slope, clipped_noise_moments
from dipddpm.noise_models import NOISE_MODELS
from dipddpm.restore import declipped
from dipddpm.stopping import (
    DiscrepancyStopper,
    ExponentialVarianceStopper,
    FixedStopper,
    HeldOutStopper,
    Observation,
    OracleStopper,
    RecorruptionStopper,
    ScheduleEndStopper,
    WindowedVarianceStopper,
    estimated_psnr,
    holdout_mask,
    noise_cross_estimate,
    patience_exhausted,
    recorruption_offset,
    validation_scale,
    validation_target,
)

SHAPE = (1, 3, 24, 24)


def _obs(i, output, raw=None, final=True, finished=False, stage=0):
    return Observation(iteration=i, output=output, raw=output if raw is None else raw, stage=stage,
                       final_stage=final, schedule_finished=finished)


def _drive(stopper, outputs, **kw):
    for i, out in enumerate(outputs, start=1):
        if stopper.observe(_obs(i, out, **kw)):
            break
    return stopper


def test_recorruption_stopper_returns_the_minimum_and_fires_after_patience():
    target = torch.zeros(SHAPE)
    outputs = [target + (abs(t - 300) / 300 + 0.1) for t in range(1, 1001)]  # MSE minimal at t = 300
    s = _drive(RecorruptionStopper(target, torch.zeros(SHAPE), 0.1, 0.5, patience=50), outputs)
    assert s.best_iteration == 300
    assert s.fired_at == 350
    assert torch.equal(s.best_output, outputs[299])


def test_recorruption_patience_counts_only_in_the_final_stage():
    target = torch.zeros(SHAPE)
    s = RecorruptionStopper(target, torch.zeros(SHAPE), 0.1, 0.5, patience=10)
    for i in range(1, 101):  # criterion flat (no new minimum) in an early stage: must not fire
        assert not s.observe(_obs(i, target + 1.0, final=False))
    fired = [s.observe(_obs(i, target + 1.0, final=True)) for i in range(101, 121)]
    assert fired.index(True) == 10  # iteration 111: 10 iterations after the final stage began
    assert s.best_iteration == 1  # the early iterate was never beaten, so it is returned


def test_recorruption_estimate_is_unbiased():
    """E||xbar - ytilde||^2/N - offset = MSE(xbar, x) when xbar depends on y + a sigma z only."""
    g = torch.Generator().manual_seed(0)
    sigma, a = 0.1, 0.5
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 48), indexing="ij")
    x = (0.5 + 0.3 * torch.sin(6 * xx) * torch.cos(4 * yy)).expand(1, 3, 48, 48).double()
    kernel = torch.ones(3, 1, 5, 5, dtype=torch.float64) / 25

    def smooth(img):  # a denoiser that sees only its training target
        return torch.nn.functional.conv2d(torch.nn.functional.pad(img, (2, 2, 2, 2), mode="reflect"), kernel,
                                          groups=3)

    diffs, wrong = [], []
    for _ in range(200):
        y = x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)
        z = torch.randn(x.shape, generator=g, dtype=torch.float64)
        xbar = smooth(y + a * sigma * z)
        true_mse = float(torch.mean((xbar - x) ** 2))
        est = float(torch.mean((xbar - (y - sigma / a * z)) ** 2)) - recorruption_offset(sigma, a, z)
        diffs.append(est - true_mse)
        naive = float(torch.mean((xbar - y) ** 2)) - sigma**2  # validating on y itself is biased
        wrong.append(naive - true_mse)
    diffs, wrong = np.array(diffs), np.array(wrong)
    stderr = diffs.std(ddof=1) / np.sqrt(diffs.size)
    assert abs(diffs.mean()) < 3 * stderr
    assert abs(wrong.mean()) > 10 * wrong.std(ddof=1) / np.sqrt(wrong.size)


def _estimate_errors(correct_cross, trials=120, size=48, sigma=0.1, a=0.25):
    """The recorruption estimate's error against the truth over draws of (n, z), for a fit that sees
    only its training target (a 3x3 mean of ``y + a sigma z``)."""
    g = torch.Generator().manual_seed(3)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    x = (0.5 + 0.3 * torch.sin(6 * xx) * torch.cos(4 * yy)).expand(1, 3, size, size).double()
    errors = []
    for _ in range(trials):
        y = x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)
        z = torch.randn(x.shape, generator=g, dtype=torch.float64)
        fit = _blur(y + a * sigma * z)
        s = RecorruptionStopper(y, z, sigma, a, clipped=False, correct_cross=correct_cross)
        s.observe(_obs(1, fit))
        errors.append(s.estimated_mse - float(torch.mean((fit - x) ** 2)))
    return np.array(errors)


def test_the_cross_term_estimated_from_a_pilot_keeps_the_estimate_unbiased_and_halves_its_spread():
    """``-2 (sigma/a) mean(n z)`` is the largest error of one run's estimate; ``mean((y - g(y)) z)`` with a pilot
    ``g`` that never saw ``z`` estimates it without bias."""
    plain, corrected = _estimate_errors(False), _estimate_errors(True)
    assert abs(corrected.mean()) < 3 * corrected.std(ddof=1) / np.sqrt(corrected.size)
    assert corrected.std() < 0.6 * plain.std()


def test_noise_cross_estimate_is_exact_with_a_perfect_pilot_and_weighs_like_the_loss():
    rng = np.random.default_rng(0)
    shape = (1, 3, 8, 8)
    mean, noise = torch.from_numpy(rng.random(shape)), torch.from_numpy(0.1 * rng.standard_normal(shape))
    z = torch.from_numpy(rng.standard_normal(shape))
    assert noise_cross_estimate(mean + noise, mean, z) == pytest.approx(float((noise * z).mean()), rel=1e-12)
    mask = torch.from_numpy((rng.random((1, 1, 8, 8)) < 0.5).astype(np.float64))
    inside = mask.expand(1, 3, 8, 8).bool()
    assert noise_cross_estimate(mean + noise, mean, z, mask) == pytest.approx(float((noise * z)[inside].mean()),
                                                                              rel=1e-12)


def test_declipped_estimate_holds_on_an_image_with_a_black_region():
    """A declipped result's error is about d / m'(x): weighting each value's validation error by 1 / m'(x)^2
    estimates it; the product of the means (the old estimate) over-estimates it where the image is black
    (m' = 1/2, little error), the 2 dB pessimism of issue 15."""
    g = torch.Generator().manual_seed(0)
    sigma, a, size = 0.1, 0.5, 48
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    x = (0.5 + 0.35 * torch.sin(40 * xx) * torch.cos(30 * yy)).double()
    x[:, : size // 3] = 0.0  # a black third: a sky at night
    x = x.expand(1, 3, size, size).contiguous()
    kernel = torch.ones(3, 1, 3, 3, dtype=torch.float64) / 9
    weighted, product = [], []
    for _ in range(30):
        y = (x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
        z = torch.randn(x.shape, generator=g, dtype=torch.float64)
        fit = torch.nn.functional.conv2d(torch.nn.functional.pad(y + a * sigma * z, (1, 1, 1, 1), mode="reflect"),
                                         kernel, groups=3).clamp(0, 1)
        truth = float(torch.mean((declipped(fit, sigma) - x) ** 2))
        s = RecorruptionStopper(y, z, sigma, a, clipped=True, declipped=True)
        s.observe(_obs(1, fit))
        weighted.append(s.estimated_mse / truth)
        v = float(torch.mean((fit - (y - sigma / a * z)) ** 2))
        product.append((v - recorruption_offset(sigma, a, z, fit, central=True)) * s.error_gain / truth)
    assert 0.85 < np.mean(weighted) < 1.2
    assert np.mean(product) > 1.4
    assert s.error_gain == pytest.approx(float(np.mean(1 / np.maximum(
        clipped_mean_slope(clipped_mean_inverse(fit.numpy(), sigma), sigma), 0.5) ** 2)))


def test_estimated_psnr():
    assert estimated_psnr(0.011, 0.01) == pytest.approx(30.0)
    assert estimated_psnr(0.009, 0.01) is None


def _variance_curve_outputs(t0=400, n=1500, seed=0):
    """Raw outputs whose fluctuation is smallest at iteration t0."""
    g = torch.Generator().manual_seed(seed)
    base = torch.full(SHAPE, 0.5)
    return [base + (0.01 + 0.05 * abs(t - t0) / t0) * torch.randn(SHAPE, generator=g) for t in range(1, n + 1)]


@pytest.mark.parametrize("make", [lambda: WindowedVarianceStopper(window=20, patience=200),
                                  lambda: ExponentialVarianceStopper(alpha=0.1, patience=200, burn_in=20)])
def test_variance_stoppers_fire_near_the_variance_minimum(make):
    outputs = _variance_curve_outputs()
    s = make()
    for i, out in enumerate(outputs, start=1):
        if s.observe(_obs(i, out)):
            break
    assert abs(s.best_iteration - 400) <= 25
    assert s.fired_at == s.best_iteration + 200
    assert torch.equal(s.best_output, outputs[s.best_iteration - 1])


def test_windowed_variance_matches_the_definition():
    outputs = _variance_curve_outputs(n=30)
    s = WindowedVarianceStopper(window=10, patience=100)
    for i, out in enumerate(outputs, start=1):
        s.observe(_obs(i, out))
    stack = torch.stack(outputs[-10:]).double()
    expected = float(torch.mean(torch.mean((stack - stack.mean(0)) ** 2, dim=0)))
    assert s.value == pytest.approx(expected, rel=1e-9)


def test_exponential_variance_matches_the_weighted_variance_about_its_mean():
    """The recursion equals, in closed form, the population variance of x_1..x_t about m_t with the EMA's
    weights (1 - a)^(t-1) for x_1 and a (1 - a)^(t-k) for x_k: computed here without any recursion."""
    g = torch.Generator().manual_seed(2)
    outputs = [torch.rand(1, 3, 6, 6, generator=g) for _ in range(40)]
    alpha = 0.3
    s = ExponentialVarianceStopper(alpha=alpha, patience=100, burn_in=0)
    t = len(outputs)
    weights = torch.tensor([(1 - alpha) ** (t - 1)] + [alpha * (1 - alpha) ** (t - k) for k in range(2, t + 1)],
                           dtype=torch.float64)
    stack = torch.stack(outputs).double()
    mean = torch.einsum("k,k...->...", weights, stack)
    variance = torch.einsum("k,k...->...", weights, (stack - mean) ** 2)
    for i, out in enumerate(outputs, start=1):
        s.observe(_obs(i, out))
    assert float(weights.sum()) == pytest.approx(1.0)
    assert torch.allclose(s.mean, mean, rtol=0, atol=1e-12)
    assert s.value == pytest.approx(float(variance.mean()), rel=1e-9)


def _growing_jitter_outputs(n, seed=0):
    """Raw outputs whose step-to-step fluctuation only grows: the moving variance has no valley."""
    g = torch.Generator().manual_seed(seed)
    base = torch.full(SHAPE, 0.5)
    return [base + 0.01 * (1 + t / 50) * torch.randn(SHAPE, generator=g) for t in range(1, n + 1)]


@pytest.mark.parametrize("burn_in", [101, 30])
def test_exponential_variance_counts_from_the_authors_burn_in(burn_in):
    """ES_EMV.ipynb checks ``if iterator > 100`` with a 0-based iterator: the 102nd output is the first that
    counts. On a curve without a valley the minimum is that first counted output (the old stopper: 101)."""
    patience = 50
    s = _drive(ExponentialVarianceStopper(alpha=0.1, patience=patience, burn_in=burn_in),
               _growing_jitter_outputs(burn_in + 2 * patience))
    assert s.best_iteration == burn_in + 1
    assert s.fired_at == burn_in + 1 + patience
    assert ExponentialVarianceStopper().burn_in == 101


def _transient_then_valley_outputs(t0=500, n=1200, seed=0):
    """Raw outputs that barely move at first (the moving variance starts at zero and stays small), then
    run through a fast transient (a large drift), then fluctuate least at t0."""
    g = torch.Generator().manual_seed(seed)
    base, direction = torch.full(SHAPE, 0.5), torch.randn(SHAPE, generator=g).clamp(-2, 2) * 0.1
    outputs = []
    for t in range(1, n + 1):
        drift = direction * (1 - math.exp(-max(t - 40, 0) / 15))  # still for 40 steps, then settles by ~100
        jitter = (0.001 if t <= 40 else 0.01 + 0.05 * abs(t - t0) / t0) * torch.randn(SHAPE, generator=g)
        outputs.append(base + drift + jitter)
    return outputs


def test_exponential_variance_skips_the_early_transient_and_stops_at_the_valley():
    outputs = _transient_then_valley_outputs()
    patience = 300
    s = _drive(ExponentialVarianceStopper(alpha=0.1, patience=patience), outputs)
    assert abs(s.best_iteration - 500) <= 0.05 * 500
    assert s.fired_at == s.best_iteration + patience
    assert torch.equal(s.best_output, outputs[s.best_iteration - 1])
    early = _drive(ExponentialVarianceStopper(alpha=0.1, patience=patience, burn_in=0), outputs)
    assert early.best_iteration <= 40  # without a burn-in the still start is taken: the test can fail


def test_discrepancy_fires_at_the_first_iterate_below_the_threshold():
    y = torch.zeros(SHAPE)
    outputs = [y + 0.3 * (1 - t / 100) for t in range(1, 101)]  # MSE = (0.3 (1 - t/100))^2
    s = _drive(DiscrepancyStopper(y, sigma=0.1, tau=1.0), outputs)
    first = next(t for t in range(1, 101) if (0.3 * (1 - t / 100)) ** 2 <= 0.01 + 1e-12)
    assert s.fired_at == first and s.best_iteration == first


def test_fixed_and_schedule_end():
    out = torch.zeros(SHAPE)
    s = _drive(FixedStopper(7), [out] * 20)
    assert s.fired_at == 7 and s.best_iteration == 7
    e = ScheduleEndStopper()
    for i in range(1, 20):
        if e.observe(_obs(i, out, finished=i >= 12)):
            break
    assert e.fired_at == 12


def test_oracle_never_fires_and_keeps_the_best_psnr():
    ref = torch.zeros(SHAPE)
    errors = [0.5, 0.2, 0.05, 0.1, 0.3]
    s = OracleStopper(ref)
    assert not any(s.observe(_obs(i, ref + e)) for i, e in enumerate(errors, start=1))
    assert s.best_iteration == 3
    assert s.best_value == pytest.approx(-10 * math.log10(0.05**2))
    assert s.evaluation_only


def test_a_fired_stopper_stays_frozen():
    s = _drive(FixedStopper(3), [torch.zeros(SHAPE)] * 3)
    assert s.observe(_obs(10, torch.ones(SHAPE)))
    assert s.best_iteration == 3 and s.fired_at == 3


@pytest.mark.parametrize("call", [lambda: WindowedVarianceStopper(window=1), lambda: FixedStopper(0),
                                  lambda: ExponentialVarianceStopper(alpha=1.5),
                                  lambda: ExponentialVarianceStopper(burn_in=-1),
                                  lambda: RecorruptionStopper(torch.zeros(SHAPE), torch.zeros(SHAPE), 0.1, 0.5,
                                                              patience=0)])
def test_bad_stopper_parameters_raise(call):
    with pytest.raises(ValueError):
        call()


def _range_trials(ratio, trials=60, size=64):
    g = torch.Generator().manual_seed(1)
    sigma = 0.1
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    x = (0.5 + 0.3 * torch.sin(5 * xx) * torch.cos(3 * yy)).expand(1, 3, size, size).contiguous()
    kernel = torch.ones(3, 1, 3, 3) / 9
    inside, widths = 0, []
    for _ in range(trials):
        y = x + sigma * torch.randn(x.shape, generator=g)
        z = torch.randn(x.shape, generator=g)
        xbar = torch.nn.functional.conv2d(torch.nn.functional.pad(y + ratio * sigma * z, (1, 1, 1, 1),
                                                                  mode="reflect"), kernel, groups=3)
        s = RecorruptionStopper(y, z, sigma, ratio, clipped=False)
        s.observe(_obs(1, xbar))
        low, high = s.estimated_psnr_range
        truth = -10 * math.log10(float(torch.mean((xbar - x) ** 2)))
        inside += (low is None or low <= truth) and (high is None or truth <= high)
        widths.append(math.inf if high is None or low is None else high - low)
    return inside / trials, float(np.median(widths))


def test_estimated_psnr_range_covers_the_truth_and_narrows_with_larger_ratio():
    coverage_small, width_small = _range_trials(0.25)
    coverage_large, width_large = _range_trials(0.5)
    assert coverage_small >= 0.9 and coverage_large >= 0.9  # about 95% nominal
    assert width_large < width_small and width_large < 6


@pytest.mark.parametrize("iteration,best,start,patience,fires", [
    (110, 10, 0, 100, True), (109, 10, 0, 100, False),      # counts from the minimum
    (150, 10, 100, 50, True), (149, 10, 100, 50, False),    # or from the start, whichever is later
])
def test_patience_rule(iteration, best, start, patience, fires):
    assert patience_exhausted(iteration, best, start, patience) is fires


def _blur(img):
    kernel = torch.ones(img.shape[1], 1, 3, 3, dtype=img.dtype) / 9
    return torch.nn.functional.conv2d(torch.nn.functional.pad(img, (1, 1, 1, 1), mode="reflect"), kernel,
                                      groups=img.shape[1])


@pytest.mark.parametrize("name,level", [("gaussian", 0.1), ("poisson", 12.0), ("impulse", 0.2), ("speckle", 0.35)])
def test_held_out_stopper_stops_near_the_oracle_peak(name, level):
    """A DIP-like trajectory: structure first, then the noise of the training values, which the net's
    smoothness spreads to their neighbours (held-out ones included)."""
    model, clean = NOISE_MODELS[name], smooth_image(32, 32)
    x = torch.from_numpy(clean.transpose(2, 0, 1))[None]
    y = torch.from_numpy(model.sample(clean, level, np.random.default_rng(0), bits=None).transpose(2, 0, 1))[None]
    held_out = holdout_mask(torch.ones_like(y), 0.1, seed=0)
    leak = 3 * _blur(_blur((y - x) * (1 - held_out)))  # never contains a held-out value's own noise
    held, oracle = HeldOutStopper(y, held_out, model.loss, patience=40), OracleStopper(x)
    steps = 300
    for t in range(1, steps + 1):
        out = x + math.exp(-t / 30) * (0.5 - x) + (t / steps) * leak
        oracle.observe(_obs(t, out))
        if held.observe(_obs(t, out)):
            break
    assert held.fired_at == held.best_iteration + 40
    assert abs(held.best_iteration - oracle.best_iteration) <= 0.1 * steps
    assert oracle.best_value - tensor_psnr(held.best_output, x) < 0.5
    assert held.summary()["held_out_values"] == int(held_out.sum())


def test_holdout_mask_draws_a_fixed_fraction_of_the_measured_values():
    measured = torch.ones(1, 3, 20, 20)
    measured[..., :10] = 0  # half not measured: never held out
    h = holdout_mask(measured, 0.1, seed=3)
    assert h.shape == measured.shape and set(h.unique().tolist()) == {0.0, 1.0}
    assert int(h.sum()) == round(0.1 * 600) and float((h * (1 - measured)).sum()) == 0
    assert torch.equal(h, holdout_mask(measured, 0.1, seed=3))
    assert not torch.equal(h, holdout_mask(measured, 0.1, seed=4))
    assert not torch.equal(h[0, 0], h[0, 1])  # per value, not per pixel
    with pytest.raises(InputError, match="fraction"):
        holdout_mask(measured, 1.0, seed=0)
    with pytest.raises(InputError, match="too few"):
        holdout_mask(torch.ones(1, 1, 1, 1), 0.1, seed=0)


def test_stoppers_that_compare_with_y_ignore_unweighted_values():
    y = torch.zeros(SHAPE)
    weights = torch.ones(SHAPE)
    weights[..., :12] = 0
    out = torch.full(SHAPE, 0.05)
    out[..., :12] = 5.0  # far off, but only where nothing was measured
    d = DiscrepancyStopper(y, sigma=0.1, weights=weights)
    assert d.observe(_obs(1, out)) and d.value == pytest.approx(0.0025)
    r = RecorruptionStopper(y, torch.zeros(SHAPE), 0.1, 0.5, clipped=False, weights=weights)
    r.observe(_obs(1, out))
    assert r.value == pytest.approx(0.0025)


def test_stoppers_compare_the_measured_output_with_y():
    y = torch.zeros(1, 3, 4, 4)
    image = torch.full((1, 3, 8, 8), 9.0)  # the output lives in image space; only A(output) meets y
    obs = Observation(iteration=1, output=image, raw=image, stage=0, final_stage=True, schedule_finished=False,
                      measured=torch.full((1, 3, 4, 4), 0.1))
    d = DiscrepancyStopper(y, sigma=0.2)
    assert d.observe(obs) and d.value == pytest.approx(0.01)
    h = HeldOutStopper(y, torch.ones_like(y), NOISE_MODELS["impulse"].loss)
    h.observe(obs)
    assert h.value == pytest.approx(0.1) and h.best_output.shape == image.shape
    assert _obs(1, y).measured is _obs(1, y).output  # without an operator, measured = output


def _v_shaped_run(stopper, minima, steps):
    """Drive ``stopper`` on outputs whose validation error (against y = 0, z = 0) is a sum of V shapes with
    the given (iteration, depth) minima; return the outputs by iteration."""
    outputs = {}
    for t in range(1, steps + 1):
        level = min(abs(t - at) / 100 + depth for at, depth in minima)
        outputs[t] = torch.full(SHAPE, level)
        if stopper.observe(_obs(t, outputs[t])):
            break
    return outputs


@pytest.mark.parametrize("delay,patience,returned,fired", [(0.0, 10, 100, 110), (0.2, 10, 120, 120),
                                                           (0.2, 50, 120, 150), (0.05, 10, 105, 110)])
def test_a_delayed_stopper_returns_the_iterate_a_fraction_of_its_minimum_later(delay, patience, returned, fired):
    s = RecorruptionStopper(torch.zeros(SHAPE), torch.zeros(SHAPE), 0.1, 0.5, patience=patience, clipped=False,
                            correct_cross=False, delay=delay)
    outputs = _v_shaped_run(s, [(100, 0.01)], 400)
    assert (s.minimum_iteration, s.best_iteration, s.fired_at) == (100, returned, fired)
    assert torch.equal(s.best_output, outputs[returned])
    assert s.kept_value == pytest.approx(float(outputs[returned][0, 0, 0, 0]) ** 2)  # the criterion returned
    assert s.summary()["validation_mse"] == s.kept_value and s.summary()["minimum_iteration"] == 100


def test_a_new_minimum_after_the_delayed_iterate_starts_over():
    s = RecorruptionStopper(torch.zeros(SHAPE), torch.zeros(SHAPE), 0.1, 0.5, patience=120, clipped=False,
                            correct_cross=False, delay=0.2)
    _v_shaped_run(s, [(50, 0.05), (150, 0.01)], 600)
    assert (s.minimum_iteration, s.best_iteration, s.fired_at) == (150, 180, 270)


def test_until_the_delayed_iterate_is_reached_the_minimum_is_returned():
    s = RecorruptionStopper(torch.zeros(SHAPE), torch.zeros(SHAPE), 0.1, 0.5, patience=10, clipped=False,
                            correct_cross=False, delay=0.5)
    _v_shaped_run(s, [(100, 0.01)], 130)  # the run ends (max_iter) before iteration 150
    assert (s.minimum_iteration, s.best_iteration, s.fired_at) == (100, 100, None)
    with pytest.raises(ValueError):
        RecorruptionStopper(torch.zeros(SHAPE), torch.zeros(SHAPE), 0.1, 0.5, delay=-0.1)


def _clipped_ramp(size=64, sigma=0.2, seed=0):
    """A clean ramp through black and white, its clipped noisy copy, the clipped mean and a fixed z (float64)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(-0.1, 1.1, size, dtype=torch.float64).clamp(0, 1).expand(1, 3, size, size).contiguous()
    y = (x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    z = torch.randn(x.shape, generator=g, dtype=torch.float64)
    bias, _ = clipped_noise_moments(x.numpy(), sigma)
    return x, y, z, x + torch.from_numpy(bias)


def test_validation_scale_decorrelates_clipped_training_and_validation_noise():
    """E[(e + a s z)(e - c z)] = v - a s c: negative for c = s/a where the noise was clipped, zero for
    c = v / (a s) (here from a perfect pilot, the clipped mean itself). With z and -z the terms linear in z,
    whose sampling error is large at a = 1/4, cancel."""
    sigma, a = 0.2, 0.25
    plain, aware = [], []
    for seed in range(8):
        _, y, noise, mean = _clipped_ramp(sigma=sigma, seed=seed)
        e = y - mean
        scale = validation_scale(sigma, a, mean)
        for z in (noise, -noise):
            train = e + a * sigma * z
            plain.append(float((train * (e - sigma / a * z)).mean()) / sigma**2)
            aware.append(float((train * (e - scale * z)).mean()) / sigma**2)
    assert np.mean(plain) < -0.1  # a ramp a fifth of it black or white
    assert abs(np.mean(aware)) < 0.03  # 4 standard errors of the mean over the 16 draws
    assert torch.all(scale <= sigma / a + 1e-12) and torch.all(scale > 0)


def test_validation_scale_is_sigma_over_a_far_from_the_bounds():
    scale = validation_scale(0.05, 0.25, torch.full((1, 1, 4, 4), 0.5))
    assert torch.allclose(scale, torch.full_like(scale, 0.05 / 0.25), rtol=1e-9)


def test_offset_with_the_clip_aware_scale_is_unbiased_for_a_perfect_fit():
    """A fit equal to the clipped mean has error 0: v - offset (central) must average 0 with the scaled copy."""
    sigma, a = 0.2, 0.25
    excess = []
    for seed in range(8):
        _, y, noise, mean = _clipped_ramp(sigma=sigma, seed=seed)
        scale = validation_scale(sigma, a, mean)
        for z in (noise, -noise):  # the cross term -2 mean(c e z) cancels over the pair
            v = float(((mean - validation_target(y, z, sigma, a, scale)) ** 2).mean())
            excess.append(v - recorruption_offset(sigma, a, z, mean, central=True, scale=scale))
    assert abs(np.mean(excess)) < 0.05 * sigma**2  # 4 standard errors; the copy's own energy is ~16 sigma^2
    assert np.std(excess) > 0  # not trivially zero


def test_recorruption_stopper_is_clip_aware_only_on_clipped_data():
    _, y, z, _ = _clipped_ramp(size=24)
    plain = RecorruptionStopper(y, z, 0.2, 0.25, clipped=False, clip_aware=True)
    assert plain.scale is None
    assert torch.equal(plain.validation, validation_target(y, z, 0.2, 0.25))
    aware = RecorruptionStopper(y, z, 0.2, 0.25, clipped=True, clip_aware=True)
    assert aware.scale is not None and not torch.equal(aware.validation, plain.validation)
    aware.observe(_obs(1, y))
    plain.observe(_obs(1, y))
    assert aware.offset < plain.offset  # the scaled copy carries less noise near black and white
