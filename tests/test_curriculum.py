import numpy as np
import pytest
import torch

from dipddpm.curriculum import (
    Curriculum,
    FixedBudgetRule,
    NoiseFloorRule,
    geometric_stages,
    seed_budgets,
    staged_target,
    timestep_stages,
)
from dipddpm.schedule import alphas_cumprod, beta_schedule, x0_noise_scale
from dipddpm.stopping import validation_target


def _tensors(shape=(1, 3, 16, 16), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), torch.randn(shape, generator=g)


def test_targets_are_built_from_the_observation_and_one_noise():
    y, z = _tensors()
    assert torch.allclose(staged_target(y, z, 0.3), y + 0.3 * z)
    assert torch.allclose(validation_target(y, z, 0.1, 0.5), y - 0.2 * z)


def test_training_and_validation_noises_are_uncorrelated():
    # n + a*sigma*z and n - (sigma/a)*z: covariance sigma^2 - sigma^2 = 0
    g = torch.Generator().manual_seed(3)
    sigma, a = 0.1, 0.5
    n = sigma * torch.randn(400_000, generator=g, dtype=torch.float64)
    z = torch.randn(400_000, generator=g, dtype=torch.float64)
    train, val = n + a * sigma * z, n - sigma / a * z
    corr = float(torch.corrcoef(torch.stack([train, val]))[0, 1])
    assert abs(corr) < 0.01
    wrong = n - 0.5 * sigma / a * z  # a mismatched pair is correlated: the test can tell
    assert abs(float(torch.corrcoef(torch.stack([train, wrong]))[0, 1])) > 0.1


def test_geometric_stages_decrease_to_the_final_scale():
    stages = geometric_stages(0.1, 4, 4.0, 0.5)
    scales = [s.scale for s in stages]
    assert scales[0] == pytest.approx(0.4) and scales[-1] == pytest.approx(0.05)
    assert all(b < a for a, b in zip(scales, scales[1:], strict=False))
    assert all(b <= a for a, b in zip([s.timestep for s in stages], [s.timestep for s in stages][1:], strict=False))


def test_timestep_stages_use_the_schedule_scales():
    stages = timestep_stages([300, 100], sigma=0.1, ratio=0.5)
    s = x0_noise_scale(alphas_cumprod(beta_schedule("linear")))
    assert [st.scale for st in stages[:2]] == pytest.approx([s[300], s[100]])
    assert stages[-1].scale == pytest.approx(0.05)
    with pytest.raises(ValueError):
        timestep_stages([100, 300], sigma=0.1, ratio=0.5)  # not decreasing
    with pytest.raises(ValueError):
        timestep_stages([2], sigma=0.1, ratio=0.5)  # s_2 is below a*sigma


def test_seed_budget_formula_as_written_and_corrected():
    betas = np.array([0.02, 0.01, 0.005, 0.001])  # noisiest stage first
    written = seed_budgets(betas, 1000, 0.5, 100.0, corrected=False)
    corrected = seed_budgets(betas, 1000, 0.5, 3.0, corrected=True)
    assert all(b < a for a, b in zip(written, written[1:], strict=False))  # as written: noisier stages get MORE steps
    assert all(b > a for a, b in zip(corrected, corrected[1:], strict=False))  # corrected: noisier stages get fewer
    assert written[0] == round(1000 * (1 - 0.5 * np.exp(-100 * 0.02)))
    assert corrected[0] == round(1000 * (1 - 0.5 * (1 - np.exp(-3.0))))


def _floor_curriculum(rule, num=3):
    y, z = _tensors()
    stages = geometric_stages(0.1, num, 4.0, 0.5)
    return Curriculum(y, z, stages, 0.1, rule)


def test_stages_advance_in_noise_order_when_the_floor_is_reached():
    cur = _floor_curriculum(NoiseFloorRule(delta=0.02, min_iter=5, max_iter=1000))
    seen = [cur.stage]
    floors = []
    for _ in range(200):
        floors.append(cur.noise_floor)
        cur.update(cur.noise_floor * 0.9)  # a fit that is below the floor of the current stage
        seen.append(cur.stage)
    assert seen[0] == 0 and seen[-1] == 2
    assert all(b >= a for a, b in zip(seen, seen[1:], strict=False))
    assert all(b <= a for a, b in zip(floors, floors[1:], strict=False))  # floors go down as stages go on
    assert torch.allclose(cur.target, cur.observation + 0.05 * cur.noise)


def test_noise_floor_rule_waits_above_the_floor_and_respects_max_iter():
    cur = _floor_curriculum(NoiseFloorRule(delta=0.02, min_iter=5, max_iter=40))
    for _i in range(39):
        assert not cur.update(cur.noise_floor * 2.0)
    assert cur.update(cur.noise_floor * 2.0)  # the 40th step forces the change
    assert cur.stage == 1


def test_noise_floor_rule_respects_min_iter():
    cur = _floor_curriculum(NoiseFloorRule(delta=0.02, min_iter=10, max_iter=100))
    changes = [cur.update(0.0) for _ in range(10)]
    assert changes == [False] * 9 + [True]


def test_fixed_budgets_and_schedule_end():
    cur = _floor_curriculum(FixedBudgetRule((3, 2, 4)))
    stages = []
    for _ in range(12):
        cur.update(1.0)
        stages.append((cur.stage, cur.finished))
    assert [s for s, _ in stages] == [0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2]
    assert [f for _, f in stages].index(True) == 8  # 3 + 2 + 4 iterations


def test_curriculum_rejects_bad_stages():
    y, z = _tensors()
    stages = geometric_stages(0.1, 3, 4.0, 0.5)
    with pytest.raises(ValueError):
        Curriculum(y, z, stages[::-1], 0.1, NoiseFloorRule())
    with pytest.raises(ValueError):
        Curriculum(y, z, stages, 0.1, FixedBudgetRule((1, 2)))
    with pytest.raises(ValueError):
        geometric_stages(0.1, 3, 0.2, 0.5)
