"""Ensembles of antithetic runs: who the members are, the error identity of their average, and the runs."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import smooth_image

from dipddpm.config import DenoiserConfig, StagingConfig
from dipddpm.engine import TrainConfig
from dipddpm.ensemble import ensemble_mse, ensemble_mse_uncertainty, plan_members
from dipddpm.executors import threads_per_worker
from dipddpm.nets import NetConfig
from dipddpm.noise import touches_bounds
from dipddpm.pilot import pilot_estimate
from dipddpm.restore import combine_members, draw_noise, ensemble_members, restore_tensor
from dipddpm.stopping import recorruption_offset, validation_scale, validation_target

TINY = DenoiserConfig(train=TrainConfig(max_iter=8, net=NetConfig(channels=8, depth=3, input_channels=8)),
                      staging=StagingConfig(num_stages=1))


def test_members_come_in_antithetic_pairs_with_their_own_seeds():
    plan = plan_members(5, seed=7)
    assert [(m.pair, m.sign) for m in plan] == [(0, 1), (0, -1), (1, 1), (1, -1), (2, 1)]
    assert plan[0].seed == 7 and len({m.seed for m in plan}) == 5
    assert plan_members(5, seed=7) == plan and plan_members(3, seed=7) == plan[:3]  # a prefix is a smaller ensemble
    assert plan_members(5, seed=8)[1].seed != plan[1].seed
    with pytest.raises(ValueError):
        plan_members(0, seed=7)


def test_the_error_of_the_average_is_the_mean_error_less_the_spread(rng):
    clean = torch.from_numpy(rng.random((1, 3, 16, 16)))
    images = [clean + 0.1 * torch.from_numpy(rng.standard_normal(clean.shape)) + 0.05 * k for k in range(4)]
    member_mse = [float(((image - clean) ** 2).mean()) for image in images]
    truth = float(((torch.stack(images).mean(dim=0) - clean) ** 2).mean())
    assert ensemble_mse(member_mse, images) == pytest.approx(truth, rel=1e-12)
    assert truth < np.mean(member_mse)  # averaging helps whenever the members differ


def test_in_a_pair_the_unknown_cross_term_cancels(rng):
    # z strongly correlated with the noise by bad luck: each member's offset is then far off, the pair's is not
    sigma, a = 0.1, 0.25
    clean = torch.from_numpy(rng.random((1, 3, 32, 32)))
    noise = torch.from_numpy(sigma * rng.standard_normal(clean.shape))
    z = 0.5 * noise / sigma + torch.from_numpy(rng.standard_normal(clean.shape))
    y = clean + noise
    offsets = [recorruption_offset(sigma, a, sign * z) for sign in (1, -1)]
    errors = [float(((clean - validation_target(y, sign * z, sigma, a)) ** 2).mean()) - offset  # true error is 0
              for sign, offset in zip((1, -1), offsets, strict=True)]
    energy_error = float((noise ** 2).mean()) - sigma ** 2
    assert abs(errors[0] - energy_error) > 0.1 * sigma ** 2  # a single member: off by the cross term
    assert np.mean(errors) == pytest.approx(energy_error, rel=1e-9, abs=1e-12)  # the pair: only the noise energy


def test_uncertainty_keeps_only_the_unpaired_cross_terms():
    plan = plan_members(3, seed=0)
    zeros = [0.0] * 3
    assert ensemble_mse_uncertainty(plan[:2], [1.0, 1.0], *[zeros[:2]] * 3) == 0.0
    assert ensemble_mse_uncertainty(plan, [1.0, 1.0, 3.0], zeros, zeros, zeros) == pytest.approx(1.0)
    assert ensemble_mse_uncertainty(plan[:1], [0.0], [0.0], [0.0], [0.5]) == pytest.approx(0.5)
    # the shared terms are one error each: they average, they do not shrink by sqrt(K)
    assert ensemble_mse_uncertainty(plan, zeros, [0.3, 0.3, 0.6], zeros, zeros) == pytest.approx(0.4)
    assert ensemble_mse_uncertainty(plan, zeros, [0.3] * 3, [0.4] * 3, zeros) == pytest.approx(0.5)


def _noisy(sigma=0.1, seed=0):
    clean = torch.from_numpy(smooth_image(24, 24)).permute(2, 0, 1)[None].float()
    generator = torch.Generator().manual_seed(seed)
    return clean, (clean + sigma * torch.randn(clean.shape, generator=generator)).clamp(0, 1)


def test_an_ensemble_run_averages_its_members_and_member_0_is_the_single_run():
    clean, y = _noisy()
    config = replace(TINY, ensemble=3, stopping=replace(TINY.stopping, ensemble_delay=0.0))  # members at their minimum
    members = list(ensemble_members(y, None, config=config, seed=4, reference=clean))
    single = restore_tensor(y, None, config=TINY, seed=4, reference=clean)
    assert torch.equal(members[0][1].image, single.image)
    assert {r.sigma_used for _, r in members} == {single.sigma_used}
    assert all(r.sigma_source == "estimated" for _, r in members)
    assert torch.equal(members[1][1].outputs["recorruption"], members[1][1].image)

    result = restore_tensor(y, None, config=config, seed=4, reference=clean)
    assert torch.allclose(result.image, torch.stack([r.image for _, r in members]).mean(dim=0))
    assert [m["seed"] for m in result.members] == [m.seed for m, _ in members]
    assert result.iterations_run == sum(r.iterations_run for _, r in members)
    assert result.sigma_source == "estimated" and result.config["ensemble"] == 3
    assert result.estimated_psnr is None  # sigma was estimated: no PSNR estimate (it needs sigma to ~1 %)
    assert result.to_dict(history=False)["members"][2]["pair"] == 1
    pair = combine_members(members[:2], clean)
    assert pair.config["ensemble"] == 2 and len(pair.members) == 2
    assert pair.evaluation["ref_psnr"] == pytest.approx(
        -10 * np.log10(float(((pair.image - clean) ** 2).mean())), abs=1e-4)


@pytest.mark.parametrize("sigma", [0.1, 0.2])  # below and above StoppingConfig.clip_aware_sigma_min
def test_each_member_trains_on_its_own_sign_of_z(sigma):
    _, y = _noisy()
    members = list(ensemble_members(y, sigma, config=replace(TINY, ensemble=2, declip=False), seed=1))
    z = draw_noise(y.shape, 1)
    assert touches_bounds(y.numpy())  # clipped, yet members validate on the plain copy y -/+ (sigma/a) z
    validation = [r.stoppers["recorruption"] for _, r in members]
    expected = [float(((r.outputs["recorruption"] - validation_target(y, m.sign * z, sigma, 0.25)) ** 2).mean())
                for m, r in members]
    assert [v["validation_mse"] for v in validation] == pytest.approx(expected, rel=1e-5)
    pair = combine_members(members)
    low, high = pair.estimated_psnr_range
    assert pair.estimated_psnr is not None and low <= pair.estimated_psnr
    assert high is None or pair.estimated_psnr <= high


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_bad_ensemble_sizes(value):
    with pytest.raises(ValueError, match="ensemble"):
        DenoiserConfig(ensemble=value)


def test_members_in_worker_processes_match_members_run_here():
    clean = torch.from_numpy(smooth_image(24, 24)).permute(2, 0, 1)[None].float()
    y = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    config = replace(TINY, ensemble=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_worker(2))  # what each worker gets: the thread count changes the last bits
    try:
        here = restore_tensor(y, 0.1, config=config, seed=2)
    finally:
        torch.set_num_threads(threads)
    elsewhere = restore_tensor(y, 0.1, config=replace(config, workers=2), seed=2)
    assert [m["seed"] for m in elsewhere.members] == [m["seed"] for m in here.members]
    assert [m["sign"] for m in elsewhere.members] == [1, -1]
    assert torch.allclose(elsewhere.image, here.image, atol=1e-6)


def test_workers_must_be_none_or_a_positive_whole_number():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="workers"):
            DenoiserConfig(workers=bad)
    assert DenoiserConfig(workers=None).workers is None and DenoiserConfig().workers == 1


def test_members_of_an_ensemble_return_a_later_iterate_and_a_single_run_its_minimum():
    _, y = _noisy()
    config = replace(TINY, ensemble=2, stopping=replace(TINY.stopping, ensemble_delay=0.25))
    members = ensemble_members(y, 0.1, config=config, seed=0)
    single = restore_tensor(y, 0.1, config=replace(config, ensemble=1), seed=0)
    assert [r.stoppers["recorruption"]["delay"] for _, r in members] == [0.25, 0.25]
    assert single.stoppers["recorruption"]["delay"] == 0.0


def test_a_single_run_on_a_clipped_image_validates_on_the_clip_aware_copy_above_its_sigma():
    _, y = _noisy()
    config = replace(TINY, declip=False)
    assert 0.1 < config.stopping.clip_aware_sigma_min < 0.2
    runs = {sigma: restore_tensor(y, sigma, config=config, seed=1) for sigma in (0.1, 0.2)}
    z = draw_noise(y.shape, 1)
    copies = {0.1: validation_target(y, z, 0.1, 0.25),
              0.2: validation_target(y, z, 0.2, 0.25, validation_scale(0.2, 0.25, pilot_estimate(y, 0.2)).to(y.dtype))}
    for sigma, result in runs.items():
        expected = float(((result.outputs["recorruption"] - copies[sigma]) ** 2).mean())
        assert result.stoppers["recorruption"]["validation_mse"] == pytest.approx(expected, rel=1e-5)
