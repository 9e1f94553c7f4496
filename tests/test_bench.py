import json

import numpy as np
import pytest
import torch
from conftest import smooth_image

from dipddpm.bench import METHODS, BenchSpec, run_bench
from dipddpm.bench.data import load_clean, load_crop, make_noisy, noise_seed
from dipddpm.bench.methods import DipMethod
from dipddpm.bench.zsn2n import zsn2n_denoise
from dipddpm.config import DenoiserConfig, StagingConfig
from dipddpm.engine import TrainConfig
from dipddpm.errors import InputError
from dipddpm.io import write_image
from dipddpm.metrics import psnr, ssim
from dipddpm.nets import NetConfig

TINY = DenoiserConfig(train=TrainConfig(net=NetConfig(channels=8, depth=3, input_channels=8)),
                      staging=StagingConfig(num_stages=2, min_iter=5, max_iter=10))


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "clean"
    images.mkdir()
    for k, (h, w) in enumerate([(24, 30), (30, 24)]):
        write_image(images / f"img{k}.png", np.round(smooth_image(h, w) * 255).astype(np.uint8))
    (images / "notes.txt").write_text("not an image")
    return images


@pytest.fixture
def tiny_methods(monkeypatch):
    monkeypatch.setitem(METHODS, "tiny", DipMethod("tiny", "small net", TINY, ("recorruption", "fixed:10")))
    monkeypatch.setitem(METHODS, "tiny-anti", DipMethod("tiny-anti", "pair", TINY, ("recorruption",), "antithetic"))
    monkeypatch.setitem(METHODS, "tiny-refit", DipMethod("tiny-refit", "refit", TINY, ("recorruption",), "refit"))


def test_noise_is_reproducible_per_row():
    clean = smooth_image(16, 16)
    assert np.array_equal(make_noisy(clean, "a", 25, 0), make_noisy(clean, "a", 25, 0))
    assert not np.array_equal(make_noisy(clean, "a", 25, 0), make_noisy(clean, "a", 25, 1))
    assert noise_seed("a", 25, 0) != noise_seed("b", 25, 0) != noise_seed("a", 15, 0)
    noisy = make_noisy(clean, "a", 25, 0)
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert np.allclose(noisy * 255, np.round(noisy * 255))  # 8-bit levels


def test_centre_crop(folder):
    full = load_clean(folder / "img0.png")
    crop = load_clean(folder / "img0.png", 16)
    assert crop.shape == (16, 16, 3)
    assert np.array_equal(crop, full[4:20, 7:23])


def test_a_crop_is_named_by_its_folder_and_keeps_a_channel_axis(folder, tmp_path):
    name, crop = load_crop(folder / "img0.png", 16)
    assert name == f"{folder.name}/img0"
    assert np.array_equal(crop, load_clean(folder / "img0.png", 16))
    grey = tmp_path / "grey.png"
    write_image(grey, np.round(smooth_image(20, 20, channels=1) * 255).astype(np.uint8))
    name, crop = load_crop(grey, 16)
    assert name == f"{tmp_path.name}/grey" and crop.shape == (16, 16, 1)


def test_bench_writes_rows_reports_and_resumes(folder, tmp_path, tiny_methods):
    spec = BenchSpec(folders=[str(folder)], sigmas=[25], seeds=[0], crop=None,
                     methods=["tiny", "tiny-anti", "tiny-refit", "bayes", "tv", "nlm"], max_iter=30,
                     command="dipddpm bench (test)")
    out = run_bench(spec, tmp_path / "out", progress=False)
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert not [r for r in rows if r.get("error")]
    tiny = [r for r in rows if r["method"] == "tiny"]
    assert {r["stopper"] for r in tiny} == {"recorruption", "fixed:10"}
    for r in tiny:
        assert r["oracle_psnr"] >= r["psnr"] - 1e-6 and r["gap"] == pytest.approx(r["oracle_psnr"] - r["psnr"])
    assert all(r["stop_iteration"] == 10 for r in tiny if r["stopper"] == "fixed:10")
    assert {r["method"] for r in rows} == {"tiny", "tiny-anti", "tiny-refit", "bayes", "tv", "nlm"}
    summary = (out / "summary.md").read_text()
    assert "dipddpm bench (test)" in summary and "| tiny | recorruption |" in summary
    for name in ("results.csv", "results.json", "meta.json", "curves.png", "gaps.png"):
        assert (out / name).stat().st_size > 0
    again = run_bench(spec, out, progress=False)
    assert len((again / "rows.jsonl").read_text().splitlines()) == len(rows)  # nothing re-run


def test_a_crashing_row_is_recorded_and_the_rest_go_on(folder, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setitem(METHODS, "broken", type("Broken", (), {"run": broken, "family": "x",
                                                               "description": "raises"})())
    spec = BenchSpec(folders=[str(folder)], sigmas=[25], methods=["broken", "bayes"], crop=None)
    out = run_bench(spec, tmp_path / "out", progress=False)
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert [r["error"] for r in rows if r["method"] == "broken"] == ["RuntimeError: boom"] * 2
    assert len([r for r in rows if r["method"] == "bayes" and r["error"] is None]) == 2
    assert "Failed rows (2)" in (out / "summary.md").read_text()


def test_bench_spec_rejects_bad_values(folder):
    with pytest.raises(InputError):
        BenchSpec(folders=[str(folder)], methods=["nope"])
    with pytest.raises(InputError):
        BenchSpec(folders=[str(folder)], sigmas=[0.1, 300])


def test_zsn2n_removes_noise(rng):
    clean = smooth_image(32, 32)
    noisy = np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1)
    out = zsn2n_denoise(noisy, channel_axis=-1, iterations=300)
    assert out.shape == noisy.shape
    assert psnr(out, clean) > psnr(noisy, clean) + 3


def test_metrics_follow_the_stated_conventions(rng):
    from skimage.metrics import structural_similarity

    a, b = rng.random((24, 24, 3)), rng.random((24, 24, 3))
    assert psnr(a, b) == pytest.approx(-10 * np.log10(np.mean((a - b) ** 2)))
    expected = structural_similarity(b, a, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert ssim(a, b, channel_axis=-1) == pytest.approx(expected)


def test_replay_minimum_reproduces_the_live_stopper():
    from dipddpm.bench.report import replay_minimum
    from dipddpm.stopping import Observation, RecorruptionStopper

    target = torch.zeros(1, 1, 4, 4)
    stopper = RecorruptionStopper(target, torch.zeros_like(target), 0.1, 0.5, patience=20)
    values, stages = [], []
    for t in range(1, 301):
        stage = 0 if t <= 40 else 1
        out = target + abs(t - 120) / 120 + 0.05 * ((t * 7919) % 13) / 13  # a noisy valley near t = 120
        fired = stopper.observe(Observation(iteration=t, output=out, raw=out, stage=stage, final_stage=stage == 1,
                                            schedule_finished=False))
        values.append(stopper.value)
        stages.append(stage)
        if fired:
            break
    best, at = replay_minimum(values, 20, stages)
    assert (best + 1, at + 1) == (stopper.best_iteration, stopper.fired_at)


def test_replay_minimum_checks_only_every_kth_iteration():
    from dipddpm.bench.report import replay_minimum

    values = [abs(t - 53) for t in range(1, 201)]  # minimum at iteration 53
    assert replay_minimum(values, 10) == (52, 62)
    best, fired = replay_minimum(values, 10, every=5)
    assert (best + 1) % 5 == 0 and best + 1 in (50, 55) and (fired + 1) % 5 == 0
    assert replay_minimum(values, 500) == (52, None)


def test_open_rows_starts_or_resumes_a_result_file_and_refuses_to_overwrite(tmp_path):
    from dipddpm.bench.scripts import open_rows

    out = tmp_path / "sub" / "rows.jsonl"
    assert open_rows(out, False, "benchmarks/x.py") == set()
    with out.open("a") as f:
        f.write(json.dumps({"image": "a", "sigma": 25.0, "seed": 1, "psnr": 30.0}) + "\n")
    with pytest.raises(SystemExit, match="pass --resume"):
        open_rows(out, False, "benchmarks/x.py")
    assert open_rows(out, True, "benchmarks/x.py") == {("a", 25.0, 1)}
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [("meta" in line) for line in lines] == [True, False, True]
