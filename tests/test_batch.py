"""Many images: input discovery, stacks, the summary, failure isolation, resumption, local workers, Ray."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import smooth_image

from dipddpm.batch import (
    SUMMARY_COLUMNS,
    PageTask,
    RunSettings,
    find_inputs,
    one_line_error,
    restore_arrays,
    restore_files,
    sidecar_path,
)
from dipddpm.cli import main
from dipddpm.config import DenoiserConfig, StagingConfig
from dipddpm.engine import TrainConfig
from dipddpm.errors import InputError
from dipddpm.executors import (
    InProcess,
    LocalProcesses,
    RayTasks,
    available_cores,
    local_executor,
    run_in_order,
    runs_at_once,
    threads_per_worker,
)
from dipddpm.io import read_pages, write_image
from dipddpm.nets import NetConfig

TINY = RunSettings(config=DenoiserConfig(train=TrainConfig(max_iter=12, net=NetConfig(channels=8, depth=3,
                                                                                      input_channels=8)),
                                         staging=StagingConfig(num_stages=1)),
                   sigma=0.1, device="cpu", tile=None)


def _noisy(rng, height=20, width=16, channels=3, dtype=np.uint8):
    clean = smooth_image(height, width, channels)
    noisy = np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1)
    top = np.iinfo(dtype).max
    return np.round(noisy * top).astype(dtype)


@pytest.fixture
def folder(tmp_path, rng):
    """RGB and 16-bit grey PNGs, one in a subfolder, a 3-page uint8 TIFF stack and a broken file."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    write_image(root / "a.png", _noisy(rng))
    write_image(root / "sub" / "b.png", _noisy(rng, channels=1, dtype=np.uint16))
    tifffile.imwrite(root / "stack.tif", np.stack([_noisy(rng, channels=1) for _ in range(3)]),
                     photometric="minisblack")
    (root / "broken.png").write_text("not an image")
    return root


def _summary(out: Path) -> list[dict]:
    with open(out / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_find_inputs_folders_patterns_files(folder, tmp_path):
    top = find_inputs([folder])
    assert [str(i.relative) for i in top] == ["a.png", "broken.png", "stack.tif"]
    deep = find_inputs([folder], recursive=True)
    assert [str(i.relative) for i in deep] == ["a.png", "broken.png", "stack.tif", "sub/b.png"]
    pattern = find_inputs([str(folder / "**" / "*.png")], recursive=True)
    assert sorted(str(i.relative) for i in pattern) == ["a.png", "broken.png", "sub/b.png"]
    single = find_inputs([folder / "sub" / "b.png", tmp_path / "missing.png"])
    assert [str(i.relative) for i in single] == ["b.png", "missing.png"] and all(i.problem is None for i in single)
    (tmp_path / "empty").mkdir()
    nothing = find_inputs([tmp_path / "empty", str(tmp_path / "*.jpg")])
    assert [i.problem is not None for i in nothing] == [True, True]
    assert len(find_inputs([folder, folder / "a.png"])) == 3  # each file once


def test_find_inputs_rejects_two_inputs_with_one_output(folder, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    write_image(other / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="would both be written to a.png"):
        find_inputs([folder, other])


def test_find_inputs_skips_the_output_folder(folder):
    (folder / "out").mkdir()
    write_image(folder / "out" / "a.png", np.zeros((4, 4), np.uint8))
    found = find_inputs([folder], recursive=True, exclude=folder / "out")
    assert [str(i.relative) for i in found] == ["a.png", "broken.png", "stack.tif", "sub/b.png"]


def test_a_folder_with_a_broken_file_and_a_stack(folder, tmp_path):
    out = tmp_path / "out"
    records = restore_files([folder], out, TINY, recursive=True, progress=False)
    status = {Path(r.input).name: r.status for r in records}
    assert status == {"a.png": "done", "broken.png": "failed", "stack.tif": "done", "b.png": "done"}
    broken = next(r for r in records if r.status == "failed")
    assert "not a readable image" in broken.error and "\n" not in broken.error
    assert not (out / "broken.png").exists() and not sidecar_path(out / "broken.png").exists()
    # every output keeps its input's relative path, shape, dtype and layout
    for name in ("a.png", "sub/b.png", "stack.tif"):
        (before, _), (after, _) = read_pages(folder / name), read_pages(out / name)
        assert [(p.shape, p.dtype) for p in after] == [(p.shape, p.dtype) for p in before]
    pages, layout = read_pages(out / "stack.tif")
    assert len(pages) == 3 and layout.axes == "QYX"
    sidecar = json.loads(sidecar_path(out / "stack.tif").read_text())
    assert len(sidecar["pages"]) == 3 and all(p["iterations_run"] <= 12 for p in sidecar["pages"])
    assert sidecar["batch"]["settings"]["seed"] == 0 and len(sidecar["batch"]["input_sha256"]) == 64
    single = json.loads(sidecar_path(out / "a.png").read_text())
    assert "stop_iteration" in single and "history" in single
    rows = _summary(out)
    assert tuple(rows[0]) == SUMMARY_COLUMNS and len(rows) == 4
    stack_row = next(r for r in rows if r["input"].endswith("stack.tif"))
    assert stack_row["pages"] == "3" and len(stack_row["stop_iteration"].split(";")) == 3
    assert [p["stop_iteration"] for p in sidecar["pages"]] == [int(v) for v in stack_row["stop_iteration"].split(";")]
    assert not list(out.rglob("*.part"))


def test_resume_skips_finished_inputs_and_redoes_changed_ones(folder, tmp_path, monkeypatch):
    import dipddpm.batch

    out = tmp_path / "out"
    restore_files([folder], out, TINY, progress=False)
    stamp = (out / "a.png").stat().st_mtime_ns
    decoded = []
    monkeypatch.setattr(dipddpm.batch, "read_pages", lambda path: decoded.append(path.name) or read_pages(path))
    again = restore_files([folder], out, TINY, progress=False)
    assert decoded == ["broken.png"]  # what was done before is not decoded again
    monkeypatch.undo()
    assert {Path(r.input).name: r.status for r in again} == {"a.png": "skipped", "broken.png": "failed",
                                                             "stack.tif": "skipped"}
    assert (out / "a.png").stat().st_mtime_ns == stamp
    skipped = next(r for r in again if r.input.endswith("a.png"))
    assert skipped.stop_iteration and skipped.sigma_used == [pytest.approx(0.1)]
    from dataclasses import replace

    other_seed = restore_files([folder / "a.png"], out, replace(TINY, seed=1), progress=False)
    assert other_seed[0].status == "done"
    write_image(folder / "stack.tif", np.zeros((3, 20, 16), np.uint8))  # new content under the same name
    changed = restore_files([folder / "stack.tif", folder / "a.png"], out, replace(TINY, seed=1), progress=False)
    assert [r.status for r in changed] == ["done", "skipped"]
    forced = restore_files([folder / "a.png"], out, replace(TINY, seed=1), force=True, progress=False)
    assert forced[0].status == "done"


class _Interrupting:
    """An executor whose user presses Ctrl-C after the first page."""

    def map_unordered(self, function, tasks):
        for count, (task, outcome) in enumerate(InProcess().map_unordered(function, tasks)):
            if count == 1:
                raise KeyboardInterrupt
            yield task, outcome


def test_an_interrupted_batch_leaves_whole_files_and_resumes(folder, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        restore_files([folder / "a.png", folder / "stack.tif"], out, TINY, executor=_Interrupting(), progress=False)
    assert [r["status"] for r in _summary(out)] == ["done"]
    assert not (out / "stack.tif").exists() and not list(out.rglob("*.part"))
    resumed = restore_files([folder / "a.png", folder / "stack.tif"], out, TINY, progress=False)
    assert [r.status for r in resumed] == ["skipped", "done"]


def test_an_input_is_never_overwritten(folder):
    before = (folder / "a.png").read_bytes()
    records = restore_files([folder / "a.png", folder], folder, TINY, progress=False)
    assert records[0].status == "failed" and "would replace the input" in records[0].error
    assert records[1].status == "failed" and "no images" in records[1].error  # the output folder's files are skipped
    assert (folder / "a.png").read_bytes() == before


def test_a_failing_run_is_its_own_row(folder, tmp_path):
    write_image(folder / "tiny.png", np.zeros((1, 1), np.uint8) + 9)
    records = restore_files([folder / "tiny.png", folder / "a.png"], tmp_path / "out",
                            RunSettings(config=TINY.config, sigma=None, device="cpu", tile=None), progress=False)
    assert [r.status for r in records] == ["failed", "done"]
    assert records[0].error and "\n" not in records[0].error


def test_restore_arrays_in_memory(rng):
    images = [_noisy(rng), _noisy(rng, channels=1), np.zeros((2, 2, 2, 2))]
    results = restore_arrays(images, TINY, progress=False)
    assert [r.error is None for r in results] == [True, True, False]
    assert results[0].image.shape == images[0].shape and results[0].image.dtype == np.uint8
    assert results[1].record["iterations_run"] <= 12 and "3-D" in results[2].error


def test_local_processes_restore_like_one_process(folder, tmp_path):
    inputs = [folder / "a.png", folder / "stack.tif", folder / "broken.png"]
    records = restore_files(inputs, tmp_path / "out", TINY, executor=LocalProcesses(2), progress=False)
    assert [r.status for r in records] == ["done", "done", "failed"]
    alone = restore_files(inputs, tmp_path / "alone", TINY, progress=False)
    assert [r.stop_iteration for r in records] == [r.stop_iteration for r in alone]


def _die_on_two(task):
    if task == 2:
        os._exit(1)
    return task * 10


def test_a_killed_worker_fails_its_tasks_and_the_rest_go_on():
    outcomes = dict(LocalProcesses(1, threads=1).map_unordered(_die_on_two, [1, 2, 3, 4, 5, 6]))
    assert isinstance(outcomes[2], RuntimeError) and "worker process died" in str(outcomes[2])
    assert outcomes[6] == 60 and sorted(outcomes) == [1, 2, 3, 4, 5, 6]


def test_local_executor_choice():
    assert isinstance(local_executor(1), InProcess) and isinstance(local_executor(None, "cuda"), InProcess)
    assert local_executor(3).workers == 3 and local_executor(3).threads == threads_per_worker(3)
    cores = available_cores()
    assert isinstance(local_executor(None, "cpu"), InProcess if cores == 1 else LocalProcesses)


def _power(base, exponent):
    if base < 0:
        raise InputError(f"negative base {base}")
    return base ** exponent


def test_run_in_order_keeps_the_order_and_raises_a_runs_error():
    keywords = [{"base": b, "exponent": 2} for b in (5, 1, 4, 2, 3)]
    assert run_in_order(_power, keywords, 2) == run_in_order(_power, keywords, 1) == [25, 1, 16, 4, 9]
    with pytest.raises(InputError, match="negative base -1"):
        run_in_order(_power, [*keywords, {"base": -1, "exponent": 2}], 2)


class _EveryStep:
    def __call__(self, info):
        pass


class _Counting(_EveryStep):
    def runs_finished(self, done, total):
        pass


def test_runs_at_once():
    cores = available_cores()
    assert runs_at_once(4, None, "cpu") == min(4, cores) and runs_at_once(4, None, "cuda") == 1
    assert runs_at_once(4, 3, "cpu") == 3 and runs_at_once(2, 8, "cpu") == 2 and runs_at_once(1, 8, "cpu") == 1
    assert runs_at_once(4, 3, "cpu", [_Counting()]) == 3  # told of finished runs instead of every step
    assert runs_at_once(4, 3, "cpu", [_Counting(), _EveryStep()]) == 1  # needs every step: runs stay here


def test_threads_are_split_between_workers():
    assert threads_per_worker(1, cores=2) == 2 and threads_per_worker(2, cores=2) == 1
    assert threads_per_worker(3, cores=2) == 1 and threads_per_worker(4, cores=16) == 4


def test_one_line_error():
    assert one_line_error(InputError("bad thing")) == "bad thing"
    assert one_line_error(ValueError("first\nsecond")) == "ValueError: first"
    assert one_line_error(FileNotFoundError(2, "No such file or directory", "x.png")) == \
        "x.png: No such file or directory"


def test_settings_key_leaves_out_the_device_and_the_workers():
    from dataclasses import replace

    assert TINY.key() == replace(TINY, device="cuda").key() != replace(TINY, seed=3).key()
    assert TINY.key() == replace(TINY, config=replace(TINY.config, workers=None)).key()
    assert json.loads(json.dumps(TINY.key())) == TINY.key()


def test_page_tasks_pickle_for_workers(rng):
    import pickle

    task = PageTask(0, 1, _noisy(rng), TINY)
    back = pickle.loads(pickle.dumps(task))
    assert back.settings == TINY and np.array_equal(back.image, task.image)


@pytest.fixture
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_tasks_on_a_local_instance(local_ray, folder, tmp_path):
    records = restore_files([folder / "a.png", folder / "stack.tif", folder / "broken.png"], tmp_path / "out",
                            TINY, executor=RayTasks(), progress=False)
    assert [r.status for r in records] == ["done", "done", "failed"]
    assert local_ray.is_initialized()  # an instance the caller started is left running
    assert len(read_pages(tmp_path / "out" / "stack.tif")[0]) == 3


def test_cli_batch_with_ray(local_ray, folder, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["batch", str(folder / "a.png"), str(folder / "broken.png"), "-o", str(out), "--ray",
                 "--max-iter", "8", "--sigma", "25/255", "--device", "cpu", "--tile", "none"])
    captured = capsys.readouterr()
    assert code == 1 and "1 restored, 0 skipped (done before), 1 failed, of 2" in captured.out
    assert "broken.png" in captured.err and "Traceback" not in captured.err
    assert [r["status"] for r in _summary(out)] == ["done", "failed"]


def test_ctrl_c_stops_local_workers_cleanly(folder, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    command = [sys.executable, "-m", "dipddpm", "batch", str(folder / "broken.png"), str(folder / "a.png"), "-o",
               str(out), "--workers", "2", "--max-iter", "100000", "--stopper", "fixed", "--quiet"]
    # A shell without job control starts background commands with SIGINT ignored, and the batch would inherit
    # that (and rightly ignore the signal, as after nohup): the batch gets the disposition of a terminal's command.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not (out / "summary.csv").exists() and time.monotonic() < deadline:  # the broken file settles first
        time.sleep(0.2)
    time.sleep(2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and stderr.strip() == "dipddpm: interrupted" and stdout == "", (
        process.returncode, stdout, stderr, (out / "summary.csv").read_text())
    assert [r["status"] for r in _summary(out)] == ["failed"]
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv"]
