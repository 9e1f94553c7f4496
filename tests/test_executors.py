"""This process as one of the workers: tasks run here and in another process at once, and nothing is left behind."""

import multiprocessing
import os
import time
from pathlib import Path

import pytest
import torch

from dipddpm import executors
from dipddpm.errors import InputError
from dipddpm.executors import HereAndProcesses, threads_per_worker


def _meet(task: tuple[int, str, int]) -> tuple[int, int, bool]:
    """Run here: wait until a task has run in another process; run elsewhere: say so."""
    parent, folder, _ = task
    marker = Path(folder) / "ran-elsewhere"
    if os.getpid() == parent:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        marker.touch()
    return os.getpid(), torch.get_num_threads(), executors._inside_worker


def test_this_process_and_another_run_tasks_at_once(tmp_path):
    threads_before = torch.get_num_threads()
    tasks = [(os.getpid(), str(tmp_path), index) for index in range(2)]
    outcomes = dict(HereAndProcesses(2, threads=1).map_unordered(_meet, tasks))
    places = {pid == os.getpid() for pid, _, _ in outcomes.values()}
    assert places == {True, False} and sorted(outcomes) == tasks
    assert all(threads == 1 and inside for _, threads, inside in outcomes.values())
    assert torch.get_num_threads() == threads_before and not executors._inside_worker
    assert not multiprocessing.active_children()


def _slow(task: int) -> int:
    time.sleep(0.2)
    return task


def test_stopping_early_ends_the_other_processes():
    outcomes = HereAndProcesses(2, threads=1).map_unordered(_slow, range(50))
    next(outcomes)
    outcomes.close()
    assert not multiprocessing.active_children()


def _fail_on_three(task: int) -> int:
    if task == 3:
        raise InputError("task three failed")
    time.sleep(0.05)
    return task


def test_a_tasks_error_is_raised_wherever_it_ran():
    with pytest.raises(InputError, match="task three failed"):
        list(HereAndProcesses(2, threads=1).map_unordered(_fail_on_three, range(8)))
    assert not multiprocessing.active_children()


def test_every_task_once_and_the_threads_given():
    outcomes = dict(HereAndProcesses(3).map_unordered(_slow, range(12)))
    assert outcomes == {task: task for task in range(12)}
    assert HereAndProcesses(3).threads == threads_per_worker(3)


def test_needs_another_process():
    with pytest.raises(InputError, match="at least 2"):
        HereAndProcesses(1)
