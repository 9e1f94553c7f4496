"""The opponent colour basis and the per-component stop (dipddpm.colour, ComponentMinima, split_colour)."""

import numpy as np
import pytest
import torch
from conftest import smooth_image

from dipddpm.colour import OPPONENT, component_mse, from_opponent, to_opponent
from dipddpm.config import DenoiserConfig, StoppingConfig, TrainConfig
from dipddpm.metrics import tensor_psnr
from dipddpm.nets import NetConfig
from dipddpm.restore import restore_tensor
from dipddpm.stopping import ComponentMinima, Observation, OracleStopper, RecorruptionStopper, recorruption_offset


def _obs(i, output):
    return Observation(iteration=i, output=output, raw=output, stage=0, final_stage=True, schedule_finished=False)


def test_the_opponent_basis_is_orthonormal_and_inverted_exactly():
    assert torch.allclose(OPPONENT @ OPPONENT.T, torch.eye(3, dtype=torch.float64), atol=1e-15)
    image = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(from_opponent(to_opponent(image)), image, atol=1e-14)
    grey = torch.full((1, 3, 2, 2), 0.4, dtype=torch.float64)  # R = G = B: no chrominance
    assert torch.allclose(to_opponent(grey)[:, 1:], torch.zeros(1, 2, 2, 2, dtype=torch.float64), atol=1e-15)


def test_component_errors_split_the_mse_exactly():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(1, 3, 9, 9, generator=g), torch.rand(1, 3, 9, 9, generator=g)
    errors = component_mse(a, b)
    assert np.mean(errors) == pytest.approx(float(((a.double() - b.double()) ** 2).mean()), rel=1e-12)


def test_independent_channel_noise_stays_independent_with_the_same_variance():
    n = 0.1 * torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    c = to_opponent(n)[0].reshape(3, -1)
    covariance = c @ c.T / c.shape[1]
    assert torch.allclose(covariance, 0.01 * torch.eye(3, dtype=torch.float64), atol=0.0006)


def test_each_component_validation_error_is_its_true_error_plus_the_same_constant():
    """E e_c(xbar, y - (sigma/a) z) = e_c(xbar, x) + sigma^2 (1 + 1/a^2) for a fit of y + a sigma z alone."""
    g = torch.Generator().manual_seed(3)
    sigma, a = 0.1, 0.5
    x = torch.from_numpy(smooth_image(32, 32).transpose(2, 0, 1).copy())[None]
    kernel = torch.ones(3, 1, 3, 3, dtype=torch.float64) / 9
    gaps = []
    for _ in range(200):
        y = x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)
        z = torch.randn(x.shape, generator=g, dtype=torch.float64)
        fit = torch.nn.functional.conv2d(torch.nn.functional.pad(y + a * sigma * z, (1, 1, 1, 1), mode="reflect"),
                                         kernel, groups=3)
        validation, truth = component_mse(fit, y - sigma / a * z), component_mse(fit, x)
        gaps.append(np.subtract(validation, truth))
    gaps = np.array(gaps)
    expected = sigma**2 * (1 + 1 / a**2)
    stderr = gaps.std(axis=0, ddof=1) / np.sqrt(len(gaps))
    assert np.all(np.abs(gaps.mean(axis=0) - expected) < 3 * stderr)
    assert recorruption_offset(sigma, a, torch.ones(1)) == pytest.approx(expected)


def _component_run(minima, length=300, shape=(1, 3, 8, 8)):
    """Iterates whose opponent component ``c`` is ``(t - minima[c]) / 100`` everywhere: its error against 0 is
    least at ``t = minima[c]``, where the component is exactly 0."""
    outputs = []
    for t in range(1, length + 1):
        components = torch.stack([torch.full(shape[2:], (t - m) / 100, dtype=torch.float64) for m in minima])[None]
        outputs.append(from_opponent(components).float())
    return outputs


def test_component_minima_compose_each_component_at_its_own_minimum():
    tracker = ComponentMinima(torch.zeros(1, 3, 8, 8))
    for t, out in enumerate(_component_run((200, 80, 120)), start=1):
        tracker.observe(t, out)
    assert tracker.iterations == {"Y": 200, "C1": 80, "C2": 120}
    assert tracker.latest == 200
    assert torch.allclose(tracker.image(), torch.zeros(1, 3, 8, 8), atol=1e-6)


def test_component_minima_with_a_delay_keep_each_component_later():
    tracker = ComponentMinima(torch.zeros(1, 3, 8, 8), delay=0.1)
    for t, out in enumerate(_component_run((200, 80, 120)), start=1):
        tracker.observe(t, out)
    assert tracker.iterations == {"Y": 220, "C1": 88, "C2": 132}


def test_a_colour_split_stopper_ends_the_run_where_the_whole_image_would_and_composes_its_minima():
    target = torch.zeros(1, 3, 8, 8)
    outputs = _component_run((200, 80, 120))
    runs = {}
    for split in (True, False):
        s = RecorruptionStopper(target, torch.zeros_like(target), 0.1, 0.5, patience=120, clipped=False,
                                correct_cross=False, split_colour=split)
        for t, out in enumerate(outputs, start=1):
            if s.observe(_obs(t, out)):
                break
        runs[split] = s
    split, whole = runs[True], runs[False]
    assert split.fired_at == whole.fired_at == whole.best_iteration + 120
    assert 80 < whole.best_iteration < 200
    assert split.best_iteration == 200 and split.summary()["components"]["C1"]["kept_iteration"] == 80
    assert split.kept_value < whole.kept_value  # the composed image fits the validation copy better
    assert torch.allclose(split.best_output, target, atol=1e-6)


def test_a_component_whose_minimum_lies_past_the_run_is_taken_at_its_best_within_it():
    target = torch.zeros(1, 3, 8, 8)
    s = RecorruptionStopper(target, torch.zeros_like(target), 0.1, 0.5, patience=30, clipped=False,
                            correct_cross=False, split_colour=True)
    for t, out in enumerate(_component_run((400, 80, 120)), start=1):
        if s.observe(_obs(t, out)):
            break
    assert s.fired_at < 400 and s.best_iteration == s.fired_at
    assert s.components.iterations == {"Y": s.fired_at, "C1": 80, "C2": 120}


def test_the_split_stop_is_near_each_components_best_on_a_synthetic_run():
    """Luminance sharpens slowly, chrominance picks up noise fast: each component's validation minimum lies near its
    true best, and the composed image beats the best single iterate by far."""
    g = torch.Generator().manual_seed(4)
    sigma, a = 0.1, 0.25
    x = torch.from_numpy(smooth_image(48, 48).transpose(2, 0, 1).copy())[None].float()
    n, z = sigma * torch.randn(x.shape, generator=g), torch.randn(x.shape, generator=g)
    y = x + n
    w = to_opponent((n + a * sigma * z).double())
    xo = to_opponent(x.double())
    rates = torch.tensor([1 / 600, 1 / 150, 1 / 150], dtype=torch.float64)[None, :, None, None]
    stopper = RecorruptionStopper(y, z, sigma, a, patience=300, clipped=False, split_colour=True)
    oracle, whole_oracle = OracleStopper(x, split_colour=True), OracleStopper(x)
    for t in range(1, 3001):
        fitted = 1 - torch.exp(-rates * t)  # the share of the training noise each component has taken up
        out = from_opponent(xo * (1 - torch.exp(-rates * 3 * t)) + w * fitted ** 2).float()
        for s in (oracle, whole_oracle):
            s.observe(_obs(t, out))
        if stopper.observe(_obs(t, out)):
            break
    true, chosen = oracle.components.iterations, stopper.components.iterations
    assert true["C1"] < true["Y"] and true["C2"] < true["Y"] and true["Y"] < stopper.fired_at
    assert all(abs(chosen[c] - true[c]) <= 0.25 * true[c] for c in true)
    assert oracle.best_value > whole_oracle.best_value + 0.1
    assert oracle.best_value - tensor_psnr(stopper.best_output, x) < 0.1


def test_a_colour_split_needs_every_value_measured_and_a_colour_image():
    with pytest.raises(ValueError, match="every value measured"):
        RecorruptionStopper(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), 0.1, 0.5,
                            weights=torch.ones(1, 3, 4, 4), split_colour=True)
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        ComponentMinima(torch.zeros(1, 1, 4, 4))


FAST = DenoiserConfig(train=TrainConfig(max_iter=60, net=NetConfig(channels=8, depth=3, input_channels=8)),
                      stopping=StoppingConfig(patience=10),
                      low_noise=None, high_noise=None)


def _noisy(channels):
    clean = smooth_image(24, 24, channels)
    clean = clean[..., None] if channels == 1 else clean
    rng = np.random.default_rng(5)
    noisy = np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1)
    return (torch.from_numpy(noisy.transpose(2, 0, 1).copy()).float()[None],
            torch.from_numpy(clean.transpose(2, 0, 1).copy()).float()[None])


def test_restore_splits_a_colour_image_and_its_oracle_but_not_a_grey_one():
    y, x = _noisy(3)
    result = restore_tensor(y, 0.1, config=FAST, reference=x)
    components = result.stoppers["recorruption"]["components"]
    assert result.stop_iteration == max(c["kept_iteration"] for c in components.values())
    assert "components" in result.stoppers["oracle"]
    grey, grey_clean = _noisy(1)
    assert "components" not in restore_tensor(grey, 0.1, config=FAST, reference=grey_clean).stoppers["recorruption"]


def test_without_the_split_the_run_returns_one_iterate():
    y, x = _noisy(3)
    config = DenoiserConfig(train=FAST.train, stopping=StoppingConfig(patience=10, split_colour=False),
                            low_noise=None, high_noise=None)
    result = restore_tensor(y, 0.1, config=config, reference=x)
    assert "components" not in result.stoppers["recorruption"] and "components" not in result.stoppers["oracle"]
    history = result.history["recorruption"]
    assert result.stop_iteration == 1 + int(np.nanargmin(np.array(history, dtype=float)))


def test_other_stoppers_keep_a_whole_iterate_oracle():
    y, x = _noisy(3)
    result = restore_tensor(y, 0.1, config=FAST, reference=x, stopper="fixed:30", watch=["recorruption"])
    assert "components" not in result.stoppers["oracle"]


def test_ensemble_members_record_where_their_chrominance_came_from():
    y, x = _noisy(3)
    result = restore_tensor(y, 0.1, config=DenoiserConfig(train=FAST.train, stopping=FAST.stopping, ensemble=2,
                                                          low_noise=None, high_noise=None), reference=x)
    assert len(result.members) == 2
    assert all(set(m["colour_stops"]) == {"Y", "C1", "C2"} for m in result.members)
    assert all(m["stop_iteration"] == max(m["colour_stops"].values()) for m in result.members)
