import functools
import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import smooth_image

import dipddpm
from dipddpm import DenoiserConfig, InputError, NetConfig, StagingConfig, TileSettings, TrainConfig, denoise
from dipddpm.api import plan_tiling
from dipddpm.memory import activation_floats_per_pixel, estimate_memory
from dipddpm.nets import padded_size
from dipddpm.presets import PRESETS
from dipddpm.result import TiledRestoration
from dipddpm.tiling import blend_window, choose_tile, restore_tiled, tile_boxes, tile_starts, time_tile

FAST = DenoiserConfig(train=TrainConfig(max_iter=6, net=NetConfig(channels=8, depth=3, input_channels=8)),
                      staging=StagingConfig(num_stages=1))


@pytest.mark.parametrize("length,tile,overlap", [(100, 32, 8), (64, 32, 0), (33, 32, 4), (32, 32, 8),
                                                 (10, 32, 8), (500, 128, 32), (129, 64, 63)])
def test_tile_starts_cover_the_axis_with_at_least_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + size] = True
    assert covered.all()
    assert starts[0] == 0 and starts[-1] + size == length
    assert all(0 < b - a <= tile - overlap for a, b in zip(starts[:-1], starts[1:], strict=True))  # share >= overlap


def test_tile_starts_reject_an_overlap_as_large_as_the_tile():
    with pytest.raises(ValueError):
        tile_starts(100, 16, 16)


def test_blend_window_is_positive_flat_inside_and_symmetric():
    w = blend_window(20, 30, 6)
    assert w.shape == (20, 30) and (w > 0).all()
    assert torch.all(w[6:14, 6:24] == 1)
    assert torch.allclose(w, w.flip(0)) and torch.allclose(w, w.flip(1))
    assert w[0, 10] < w[3, 10] < w[6, 10]


def _fake_restore(transform):
    """A stand-in for restore_tensor: returns transform(tile) and made-up stop numbers."""
    def restore(observation, sigma, reference=None):
        evaluation = None if reference is None else {"ref_psnr": 1.0, "oracle_psnr": 2.0, "oracle_iteration": 3}
        image = transform(observation)
        return SimpleNamespace(image=image, stop_iteration=observation.shape[-1], stopped_by="recorruption",
                               iterations_run=10, estimated_psnr=30.0, seconds=0.0, seed=0, device="cpu",
                               config={}, evaluation=evaluation, outputs={"oracle": image}, estimate_withheld=None)
    return restore


def test_blending_tiles_that_return_their_input_gives_back_the_image():
    image = torch.rand(1, 3, 37, 53, dtype=torch.float32)
    result = restore_tiled(image, 0.1, 16, 5, _fake_restore(lambda y: y.clone()))
    assert torch.allclose(result.image, image, atol=1e-6)
    assert len(result.tiles) == len(tile_boxes(37, 53, 16, 5))
    assert result.estimated_psnr == pytest.approx(30.0)  # equal tile estimates pool to the same value
    estimated = restore_tiled(image, 0.1, 16, 5, _fake_restore(lambda y: y.clone()), sigma_source="estimated")
    assert estimated.estimated_psnr is None and all(t["estimated_psnr"] is None for t in estimated.tiles)
    assert estimated.describe_estimate() == "n/a (sigma was estimated; give sigma for one)"


def test_blend_is_a_convex_combination_of_the_tiles():
    image = torch.zeros(1, 1, 40, 40)
    values = iter(range(1, 100))
    result = restore_tiled(image, 0.1, 16, 6, _fake_restore(lambda y: torch.full_like(y, float(next(values)))))
    assert result.image.min() >= 1 and result.image.max() <= len(result.tiles)
    assert result.image[0, 0, 0, 0] == 1  # covered by the first tile only


def test_choose_tile_fits_the_budget():
    net = NetConfig()
    assert choose_tile(64, 64, 3, net, 2**40, 32) is None
    budget = estimate_memory(300, 300, 3, net)
    tile = choose_tile(1000, 1000, 3, net, budget, 32)
    assert tile is not None and estimate_memory(tile, tile, 3, net) <= budget < estimate_memory(2 * tile, 2 * tile,
                                                                                               3, net)
    with pytest.raises(InputError, match="budget"):
        choose_tile(1000, 1000, 3, net, 1000, 32)


def test_memory_estimate_is_linear_in_padded_pixels_and_grows_with_width():
    net = NetConfig()
    small, large = estimate_memory(64, 64, 3, net), estimate_memory(256, 128, 3, net)
    p_small, p_large = np.prod(padded_size(64, 64, net.depth)), np.prod(padded_size(256, 128, net.depth))
    per_pixel = (large - small) / (p_large - p_small)
    assert per_pixel == pytest.approx(1.35 * 4 * (activation_floats_per_pixel(3, net) + 3 * net.input_channels
                                                  + 36), rel=1e-6)
    weights = sum(p.numel() for p in dipddpm.nets.SkipUNet(3, net).parameters())
    assert small - per_pixel * p_small == pytest.approx(16 * weights, abs=2)  # weights, grads, Adam moments
    assert activation_floats_per_pixel(3, NetConfig(channels=64)) > activation_floats_per_pixel(3, net)


def test_denoise_in_tiles_end_to_end(rng):
    clean = smooth_image(40, 36)
    noisy = dipddpm.add_gaussian_noise(clean, 0.1, rng)
    info = denoise(noisy, channel_axis=-1, config=FAST, tile=20, overlap=4, reference=clean, return_info=True)
    assert isinstance(info, TiledRestoration)
    assert info.image.shape == noisy.shape and np.isfinite(info.image).all()
    assert len(info.tiles) == len(tile_boxes(40, 36, 20, 4)) and info.sigma_source == "estimated"
    assert all(t["iterations_run"] <= 6 for t in info.tiles)
    data = json.loads(info.to_json())
    assert data["tiled"] and {"ref_psnr", "oracle_psnr"} <= set(data)
    plain = denoise(noisy, channel_axis=-1, config=FAST, tile=None)
    assert plain.shape == noisy.shape


def test_auto_tiling_follows_the_memory_budget(rng):
    noisy = dipddpm.add_gaussian_noise(smooth_image(40, 40), 0.1, rng)
    budget = estimate_memory(40, 40, 3, FAST.train.net) - 1
    info = denoise(noisy, 0.1, channel_axis=-1, config=FAST, memory_budget=budget, overlap=4, return_info=True)
    assert isinstance(info, TiledRestoration) and info.tile < 40
    whole = denoise(noisy, 0.1, channel_axis=-1, config=FAST, memory_budget=budget + 1, return_info=True)
    assert not isinstance(whole, TiledRestoration)


@pytest.mark.parametrize("kwargs,message", [
    (dict(tile=4), "tile must be"), (dict(tile=True), "tile must be"), (dict(tile="big"), "tile must be"),
    (dict(tile=20, overlap=10), "tile must be"), (dict(overlap=-1), "overlap"), (dict(overlap=2.5), "overlap"),
    (dict(memory_budget=0), "memory_budget"), (dict(memory_budget=100), "budget"),
])
def test_bad_tiling_arguments(kwargs, message):
    with pytest.raises(InputError, match=message):
        plan_tiling(500, 500, 3, **{"config": FAST, **kwargs})


def test_tiles_in_worker_processes_match_tiles_run_here():
    image = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(0))
    reference = image.flip(-1)
    restore = functools.partial(_scaled, factor=0.5)
    here = restore_tiled(image, 0.1, 16, 5, restore, reference=reference)
    done = []
    elsewhere = restore_tiled(image, 0.1, 16, 5, restore, reference=reference, workers=2,
                              on_done=lambda finished, total: done.append((finished, total)))
    assert torch.equal(elsewhere.image, here.image)
    assert elsewhere.tiles == here.tiles  # in the order of the boxes, whatever order the workers finished in
    count = len(tile_boxes(37, 53, 16, 5))
    assert done == [(k, count) for k in range(count + 1)]


def _scaled(observation, sigma, reference=None, factor=1.0):
    """A picklable stand-in for restore_tensor (worker processes import it from this module)."""
    return _fake_restore(lambda y: factor * y)(observation, sigma, reference=reference)


@pytest.mark.parametrize("height,width,smallest,overlap", [(256, 256, 144, 32), (512, 512, 144, 32),
                                                           (512, 768, 144, 32), (257, 300, 144, 32),
                                                           (300, 100, 96, 16), (100, 90, 144, 32),
                                                           (1000, 999, 128, 0), (3000, 4000, 144, 32)])
def test_time_tile_is_the_cheapest_tile_of_at_least_the_smallest(height, width, smallest, overlap):
    from dipddpm.tiling import RUN_TIME_EXPONENT

    def cost(tile):
        return len(tile_boxes(height, width, tile, overlap)) * tile ** (2 * RUN_TIME_EXPONENT)

    tile = time_tile(height, width, smallest, overlap)
    assert tile >= smallest
    assert all(cost(tile) <= cost(other) for other in range(smallest, max(smallest, height, width) + 1, 7))
    assert all(cost(tile) < cost(other) for other in range(smallest, tile))  # ties go to the smaller tile
    with pytest.raises(ValueError):
        time_tile(height, width, overlap, overlap)


def test_time_tile_takes_fewer_larger_tiles_where_the_last_would_be_mostly_overlap():
    assert time_tile(256, 256, 144, 32) == 144  # 2 x 2 tiles meet exactly
    assert len(tile_boxes(512, 512, time_tile(512, 512, 144, 32), 32)) == 16  # not 25 of 144
    assert len(tile_boxes(512, 768, time_tile(512, 768, 144, 32), 32)) == 24  # a Kodak image: not 35


def test_auto_tiling_on_a_cpu_tiles_large_images_at_moderate_noise_for_time():
    from dipddpm.api import TIME_TILE, TIME_TILE_SIGMA_MAX

    room, moderate = 2 * TIME_TILE - 32, TIME_TILE_SIGMA_MAX  # two tiles overlapping by exactly the overlap
    assert plan_tiling(room, 100, 3, overlap=32, config=FAST, sigma=moderate) == TIME_TILE
    assert plan_tiling(100, room, 3, overlap=32, config=FAST, sigma=0.01) == TIME_TILE
    assert plan_tiling(room - 1, room - 1, 3, overlap=32, config=FAST, sigma=0.01) is None  # one network is cheaper
    assert plan_tiling(room, room, 3, overlap=32, config=FAST, sigma=moderate * 1.01) is None  # high noise: whole
    assert plan_tiling(room, room, 3, overlap=32, config=FAST) is None  # sigma unknown: memory only
    assert plan_tiling(room, room, 3, overlap=32, tile=None, config=FAST, sigma=0.01) is None  # never means never
    budget = estimate_memory(64, 64, 3, FAST.train.net)  # memory asks for smaller tiles still
    assert plan_tiling(room, room, 3, overlap=8, memory_budget=budget, config=FAST, sigma=0.01) < TIME_TILE


def test_denoise_tiles_a_large_image_for_time_with_sigma_estimated_once(rng, monkeypatch):
    from dipddpm import api

    calls = []
    real = api.noise_level
    monkeypatch.setattr(api, "noise_level", lambda *a: calls.append(a[1]) or real(*a))
    noisy = dipddpm.add_gaussian_noise(smooth_image(256, 40), 0.08, rng)
    info = denoise(noisy, channel_axis=-1, config=replace(FAST, train=replace(FAST.train, max_iter=2)),
                   return_info=True)
    assert isinstance(info, TiledRestoration) and info.tile == api.TIME_TILE and info.sigma_source == "estimated"
    assert calls == [None]  # estimated once, for the plan, then given to every tile
    assert info.estimated_psnr is None  # an estimated sigma gives no PSNR estimate, tiled or not
    assert info.describe_estimate() == "n/a (sigma was estimated; give sigma for one)"
    from dipddpm import restore

    estimates = []
    real_estimate = restore.estimate_sigma
    monkeypatch.setattr(restore, "estimate_sigma", lambda *a, **k: estimates.append(1) or real_estimate(*a, **k))
    loud = dipddpm.add_gaussian_noise(smooth_image(256, 40), 0.3, rng)
    whole = denoise(loud, channel_axis=-1, config=FAST, max_iter=2, return_info=True)
    assert not isinstance(whole, TiledRestoration)  # high noise: one network
    assert len(estimates) == 1 and whole.sigma_source == "estimated"  # the plan's estimate is the run's
    assert whole.estimated_psnr is None and whole.sigma_used > api.TIME_TILE_SIGMA_MAX


def test_tiles_get_a_shallower_network_and_less_patience(rng):
    default = DenoiserConfig()
    assert default.train.net.depth == 5 and default.stopping.patience == 150
    tiled = default.for_tiles()
    assert tiled.train.net == replace(default.train.net, depth=4)  # nothing else in the network changes
    assert tiled.stopping == replace(default.stopping, patience=50)
    assert FAST.for_tiles().train.net.depth == 3  # a shallower network is never deepened
    assert replace(default, stopping=replace(default.stopping, patience=20)).for_tiles().stopping.patience == 20
    assert replace(default, tiles=TileSettings(max_depth=None)).for_tiles().train.net.depth == 5
    assert replace(default, tiles=None).for_tiles().stopping.patience == 150
    paper = PRESETS["paper"].config
    assert paper.for_tiles().train.net == paper.train.net  # the paper's architecture, tiles included
    for bad in (0, 2.5, True, "4"):
        with pytest.raises(ValueError, match="max_depth"):
            TileSettings(max_depth=bad)
        with pytest.raises(ValueError, match="patience"):
            TileSettings(patience=bad)
    deep = replace(FAST, train=replace(FAST.train, net=NetConfig(channels=4, depth=5, input_channels=4)))
    image = rng.random((64, 64, 3)).astype(np.float32)
    tiled_run = denoise(image, 0.1, channel_axis=-1, config=deep, tile=48, overlap=16, stopper="fixed:2",
                        return_info=True)
    assert len(tiled_run.tiles) == 4 and tiled_run.config["train"]["net"]["depth"] == 4
    assert tiled_run.config["stopping"]["patience"] == 50
    whole = denoise(image, 0.1, channel_axis=-1, config=deep, tile=None, stopper="fixed:2", return_info=True)
    assert whole.config["train"]["net"]["depth"] == 5 and whole.config["stopping"]["patience"] == 150
