"""Callbacks of the training loop: a progress bar and a snapshot recorder."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from .engine import StepInfo

__all__ = ["ProgressBar", "SnapshotRecorder", "report_finished_runs"]


class ProgressBar:
    """tqdm bar showing the stage, the training loss and the deciding stopper's criterion.

    Shown only on a terminal (``disable=None`` lets tqdm decide) unless ``enabled`` is forced.
    A new run (the next member of an ensemble, the next tile) starts a new bar. Runs restored at once
    in worker processes (:func:`dipddpm.executors.runs_at_once`) are counted instead, as they finish
    (:meth:`runs_finished`). Call :meth:`close` when the restoration ends.

    Parameters
    ----------
    enabled : bool or None
        True: always; False: never; None: only when stderr is a terminal.
    """

    def __init__(self, enabled: bool | None = None):
        self.enabled = enabled
        self.description: str | None = None
        self._bar: tqdm | None = None
        self._iteration = 0
        self._runs_done: int | None = None

    def start(self, description: str | None = None) -> None:
        """Begin a new bar (e.g. for the next tile) labelled ``description``."""
        self.close()
        self.description = description

    def __call__(self, info: StepInfo) -> None:
        """Advance the bar by one iteration."""
        if info.iteration <= self._iteration:
            self.close()
        self._iteration = info.iteration
        if self._bar is None:
            disable = None if self.enabled is None else not self.enabled
            self._bar = tqdm(total=info.max_iter, unit="it", disable=disable, file=sys.stderr,
                             dynamic_ncols=True, leave=False, desc=self.description)
        if self._bar.disable:
            return
        self._bar.update(1)
        if info.iteration % 10 == 0:
            criterion = "-" if info.criterion is None else f"{info.criterion:.3e}"
            self._bar.set_postfix_str(f"stage {info.stage + 1}/{info.num_stages} loss {info.loss:.3e} "
                                      f"criterion {criterion}", refresh=False)

    def runs_finished(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` runs finished (runs in worker processes report only when they end)."""
        if self._runs_done is None:
            self.close()
            disable = None if self.enabled is None else not self.enabled
            self._bar = tqdm(total=total, unit="run", disable=disable, file=sys.stderr, dynamic_ncols=True,
                             leave=False, desc=self.description or "runs at once")
            self._runs_done = 0
        self._bar.update(done - self._runs_done)
        self._runs_done = done

    def close(self) -> None:
        """Remove the bar from the terminal."""
        self._iteration = 0
        self._runs_done = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class SnapshotRecorder:
    """Keep copies of the returned stream (EMA output) at chosen iterations, as (H, W, C) numpy arrays.

    Parameters
    ----------
    iterations : iterable of int, optional
        Iterations to keep.
    every : int, optional
        Also keep every ``every``-th iteration.

    Attributes
    ----------
    snapshots : dict of int to numpy.ndarray
        Iteration -> image.
    stages : dict of int to int
        Iteration -> stage (0-based) at that iteration.
    """

    def __init__(self, iterations=(), every: int | None = None):
        self.iterations = set(int(i) for i in iterations)
        self.every = every
        self.snapshots: dict[int, np.ndarray] = {}
        self.stages: dict[int, int] = {}

    def __call__(self, info: StepInfo) -> None:
        """Store the output of this iteration if it is one to keep."""
        if info.iteration in self.iterations or (self.every and info.iteration % self.every == 0):
            self.snapshots[info.iteration] = info.output[0].permute(1, 2, 0).double().cpu().numpy()
            self.stages[info.iteration] = info.stage


def report_finished_runs(callbacks: Sequence) -> Callable[[int, int], None]:
    """``report(done, total)`` telling every callback (each has ``runs_finished``) of the runs finished so far:
    how runs in worker processes (:func:`dipddpm.executors.runs_at_once`) reach the callbacks."""
    def report(done: int, total: int) -> None:
        for callback in callbacks:
            callback.runs_finished(done, total)
    return report
