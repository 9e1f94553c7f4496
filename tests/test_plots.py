import numpy as np
import pytest
from conftest import smooth_image
from matplotlib.figure import Figure

from dipddpm import DenoiserConfig, NetConfig, StagingConfig, TrainConfig, denoise, plots
from dipddpm.callbacks import SnapshotRecorder
from dipddpm.restore import build_stages

FAST = DenoiserConfig(train=TrainConfig(max_iter=30, net=NetConfig(channels=8, depth=3, input_channels=8)),
                      staging=StagingConfig(num_stages=2, min_iter=5, max_iter=10))


@pytest.fixture(scope="module")
def run():
    clean = smooth_image(24, 32)
    noisy = np.clip(clean + 0.1 * np.random.default_rng(0).standard_normal(clean.shape), 0, 1)
    recorder = SnapshotRecorder(iterations=(5, 15), every=10)
    info = denoise(noisy, 0.1, channel_axis=-1, config=FAST, reference=clean, watch=("fixed:12",),
                   callbacks=(recorder,), return_info=True)
    return clean, noisy, info, recorder


def _saved(fig, tmp_path, name):
    assert isinstance(fig, Figure)
    plots.save_figure(fig, tmp_path / name)
    data = (tmp_path / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_every_figure_renders(run, tmp_path):
    clean, noisy, info, recorder = run
    stages = build_stages(0.1, FAST.staging)
    _saved(plots.plot_schedule(stages, "cosine", sigma=0.1), tmp_path, "schedule.png")
    _saved(plots.plot_targets(noisy, np.zeros_like(noisy), stages, 0.1), tmp_path, "targets.png")
    _saved(plots.plot_run(info, title="t"), tmp_path, "run.png")
    _saved(plots.plot_snapshots(recorder.snapshots, recorder.stages, reference=clean), tmp_path, "snaps.png")
    _saved(plots.plot_comparison({"noisy": noisy, "clean": clean}, zoom=(2, 3, 8)), tmp_path, "cmp.png")
    _saved(plots.plot_stoppers(info, reference=clean), tmp_path, "stoppers.png")


def test_snapshot_recorder_keeps_the_asked_iterations(run):
    _, _, info, recorder = run
    assert sorted(recorder.snapshots) == [5, 10, 15, 20, 30]
    assert recorder.snapshots[5].shape == (24, 32, 3)


def test_run_figure_labels_truth_as_evaluation_only(run):
    fig = plots.plot_run(run[2])
    labels = [t.get_text() for ax in fig.axes for t in (ax.get_legend().get_texts() if ax.get_legend() else [])]
    assert any("evaluation only" in label for label in labels)
    assert any("estimated PSNR" in label for label in labels)


def _labels(fig):
    return [t.get_text() for ax in fig.axes for t in (ax.get_legend().get_texts() if ax.get_legend() else [])]


def test_run_figure_draws_the_criterion_each_stop_watched():
    clean = smooth_image(24, 32)
    noisy = np.clip(clean + 0.1 * np.random.default_rng(0).standard_normal(clean.shape), 0, 1)
    held = denoise(noisy, channel_axis=-1, config=FAST, noise="speckle", return_info=True)
    assert any("held-out values" in label for label in _labels(plots.plot_run(held)))
    counts = np.random.default_rng(0).poisson(12 * clean) / 12
    stabilised = denoise(counts, channel_axis=-1, config=FAST, noise="poisson", photons=12, return_info=True)
    labels = _labels(plots.plot_run(stabilised))
    assert plots.estimated_psnr_curve(stabilised) is None  # an estimate in Anscombe units is not the image's
    assert not any("estimated PSNR" in label for label in labels)
    assert any("recorruption stop" in label for label in labels) and any("Anscombe" in label for label in labels)


@pytest.mark.parametrize("shape", [(64, 64), (48, 100), (101, 33)])
def test_centre_zoom_is_a_centred_square_inside_the_image(shape):
    top, left, size = plots.centre_zoom(shape)
    assert size == min(shape) // 4
    assert top + size <= shape[0] and left + size <= shape[1]
    assert abs(top - (shape[0] - top - size)) <= 1 and abs(left - (shape[1] - left - size)) <= 1


def test_centre_zoom_skips_tiny_images():
    assert plots.centre_zoom((31, 200)) is None and plots.centre_zoom((32, 32)) == (12, 12, 8)


def test_comparison_scales_16_bit_images_to_full_range():
    fig = plots.plot_comparison({"a": np.full((8, 8), 65535, np.uint16), "b": np.zeros((8, 8), np.uint8)})
    shown = fig.axes[0].images[0].get_array()
    assert float(shown.max()) == pytest.approx(1.0)
