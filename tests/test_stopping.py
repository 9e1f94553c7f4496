import math

import numpy as np
import pytest
import torch

from dipddpm.stopping import (
    DiscrepancyStopper,
    ExponentialVarianceStopper,
    FixedStopper,
    Observation,
    OracleStopper,
    RecorruptionStopper,
    ScheduleEndStopper,
    WindowedVarianceStopper,
    estimated_psnr,
    patience_exhausted,
    recorruption_offset,
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


def test_estimated_psnr():
    assert estimated_psnr(0.011, 0.01) == pytest.approx(30.0)
    assert estimated_psnr(0.009, 0.01) is None


def _variance_curve_outputs(t0=400, n=1500, seed=0):
    """Raw outputs whose fluctuation is smallest at iteration t0."""
    g = torch.Generator().manual_seed(seed)
    base = torch.full(SHAPE, 0.5)
    return [base + (0.01 + 0.05 * abs(t - t0) / t0) * torch.randn(SHAPE, generator=g) for t in range(1, n + 1)]


@pytest.mark.parametrize("make", [lambda: WindowedVarianceStopper(window=20, patience=200),
                                  lambda: ExponentialVarianceStopper(alpha=0.1, patience=200, warmup=20)])
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
