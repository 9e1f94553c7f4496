"""Where the runs of a batch happen: in this process, in local worker processes, or as Ray tasks.

Every executor has one method, ``map_unordered(function, tasks)``: it calls ``function`` on each task
of a lazy iterable and yields ``(task, outcome)`` pairs as they finish, where ``outcome`` is what the
function returned or, when the machinery itself failed (a worker killed, a Ray node lost), the
exception. Only a bounded number of tasks is in flight, so a large batch is read as it goes.

Worker processes and Ray tasks split the machine's cores: ``workers x threads <= cores``. A run's
torch threads are set in the worker before it starts (:func:`torch.set_num_threads`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from .errors import InputError

__all__ = ["HereAndProcesses", "InProcess", "LocalProcesses", "RayTasks", "available_cores", "local_executor",
           "run_in_order", "runs_at_once", "threads_per_worker"]

_inside_worker = False  # True in worker processes and Ray tasks: the runs they do never start pools of their own


def available_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _one_per_core(device: str) -> int:
    """Processes that ``workers=None`` means: one per core on the CPU, one on a GPU."""
    return available_cores() if str(device) == "cpu" else 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads for each of ``workers`` processes: ``max(1, cores // workers)``.

    Parameters
    ----------
    workers : int
        Processes running at once.
    cores : int, optional
        Cores to share (default: those this process may use).

    Returns
    -------
    int
    """
    return max(1, (cores or available_cores()) // max(1, workers))


def _set_threads(threads: int) -> None:
    global _inside_worker
    _inside_worker = True
    torch.set_num_threads(threads)


def _worker_start(threads: int) -> None:
    """Worker process set-up: its share of threads; Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_threads(threads)


def runs_at_once(runs: int, workers: int | None, device: str, callbacks: Iterable = ()) -> int:
    """How many of the ``runs`` independent runs of one restoration (tiles, ensemble members) go at once.

    ``min(workers, runs)``; ``workers=None`` means one process per core on a CPU and one on a GPU. Always 1
    inside a worker process or Ray task (no pools within pools), and when a callback cannot follow runs in
    other processes: a callback must define ``runs_finished(done, total)`` to be told of finished runs
    instead of being called at every step (:class:`~dipddpm.callbacks.ProgressBar` does).

    Parameters
    ----------
    runs : int
        Independent runs to do.
    workers : int or None
        The setting (:attr:`~dipddpm.config.DenoiserConfig.workers`).
    device : str
        The resolved device of the runs (``cpu``, ``cuda``, ``cuda:N``).
    callbacks : iterable
        The per-step callbacks of the runs.

    Returns
    -------
    int
    """
    if _inside_worker or runs <= 1 or not all(hasattr(c, "runs_finished") for c in callbacks):
        return 1
    return max(1, min(_one_per_core(device) if workers is None else workers, runs))


def _keyword_call(function: Callable, item: tuple[int, dict]) -> Any:
    return function(**item[1])


def run_in_order(function: Callable, keywords: Sequence[dict], workers: int,
                 on_done: Callable[[int, int], None] | None = None) -> list:
    """``[function(**k) for k in keywords]``, ``workers`` at once when ``workers > 1``.

    With ``workers > 1`` this process is one of them (:class:`HereAndProcesses`): it starts on the first run
    while ``workers - 1`` local processes start. For those processes ``function`` and the keywords must pickle
    (a module-level function or a :func:`functools.partial` of one, tensors, dataclasses); every run has
    :func:`threads_per_worker` torch threads. An exception of a run, or a worker that died, is raised
    here once the others are stopped.

    Parameters
    ----------
    function : callable
    keywords : sequence of dict
        One dictionary of keyword arguments per run.
    workers : int
        Processes (1: one run after another in this process).
    on_done : callable, optional
        ``on_done(done, total)`` after each finished run.

    Returns
    -------
    list
        The runs' results, in the order of ``keywords``.
    """
    outcomes: list = [None] * len(keywords)
    if workers <= 1:
        for index, kw in enumerate(keywords):
            outcomes[index] = function(**kw)
            if on_done is not None:
                on_done(index + 1, len(keywords))
        return outcomes
    finished = 0
    for (index, _), outcome in HereAndProcesses(workers).map_unordered(
            functools.partial(_keyword_call, function), list(enumerate(keywords))):
        if isinstance(outcome, BaseException):
            raise outcome
        outcomes[index] = outcome
        finished += 1
        if on_done is not None:
            on_done(finished, len(keywords))
    return outcomes


def _quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker unable to warn about the semaphores of workers we terminate.

    Workers stopped at once on Ctrl-C leave their queue semaphores registered; the tracker cleans them
    up but prints a UserWarning per batch on stderr. Its process takes its warning filters from the
    environment when it starts, so it is started here (once) with that one warning silenced.
    """
    from multiprocessing import resource_tracker

    before = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = "ignore::UserWarning:multiprocessing.resource_tracker"
    try:
        resource_tracker.ensure_running()
    finally:
        if before is None:
            del os.environ["PYTHONWARNINGS"]
        else:
            os.environ["PYTHONWARNINGS"] = before


def _call_with_threads(function: Callable, task: Any, threads: int) -> Any:
    """Run ``function(task)`` with ``threads`` torch threads (a Ray task's body)."""
    _set_threads(threads)
    return function(task)


class InProcess:
    """Run every task here, one after another, with this process's threads."""

    def map_unordered(self, function: Callable, tasks: Iterable) -> Iterator[tuple[Any, Any]]:
        """Yield ``(task, function(task))`` in order."""
        for task in tasks:
            yield task, function(task)


class LocalProcesses:
    """Run tasks in ``workers`` local processes (spawned), each with ``threads`` torch threads.

    A worker that dies (killed, out of memory) fails the tasks then in flight; the pool is started
    afresh for the rest. Ctrl-C stops the workers at once; nothing they were writing is left, since
    outputs are written by the parent.

    Parameters
    ----------
    workers : int
        Processes (at least 1).
    threads : int, optional
        Torch threads per process (default: :func:`threads_per_worker`).
    queued : int
        Tasks handed to each process beyond the one it runs (so that it never waits for the parent); 0 when
        others take tasks from the same iterable (:class:`HereAndProcesses`).
    """

    def __init__(self, workers: int, threads: int | None = None, queued: int = 1):
        if workers < 1:
            raise InputError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.threads = threads or threads_per_worker(workers)
        self.queued = queued
        self._current: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        _quiet_resource_tracker()
        self._current = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_worker_start, initargs=(self.threads,))
        return self._current

    def terminate(self) -> None:
        """End the processes now, from another thread than the one in :meth:`map_unordered`: the tasks they
        run fail there as if the processes had died (a pool started afterwards for the rest starts processes
        only when it is given a task)."""
        pool = self._current
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()

    @staticmethod
    def _stop(pool: ProcessPoolExecutor) -> None:
        """Stop at once: cancel what waits and end the workers (there is no public way to stop running work)."""
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)

    def map_unordered(self, function: Callable, tasks: Iterable) -> Iterator[tuple[Any, Any]]:
        """Yield ``(task, outcome)`` as tasks finish, at most ``(1 + queued) x workers`` in flight."""
        waiting = iter(tasks)
        pool = self._pool()
        running: dict[Future, Any] = {}
        try:
            while True:
                while len(running) < (1 + self.queued) * self.workers:
                    task = next(waiting, None)
                    if task is None:
                        break
                    running[pool.submit(function, task)] = task
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for future in finished:
                    task = running.pop(future)
                    try:
                        yield task, future.result()
                    except BrokenProcessPool:
                        broken = True
                        yield task, RuntimeError("a worker process died (killed, or out of memory)")
                if broken:
                    for future, task in list(running.items()):
                        running.pop(future)
                        yield task, RuntimeError("a worker process died (killed, or out of memory)")
                    self._stop(pool)
                    pool = self._pool()
        except BaseException:
            self._stop(pool)
            raise
        pool.shutdown(wait=True)


_NO_TASK = object()


class _SharedTasks:
    """A lazy iterable of tasks taken by several threads, each task once; closing it ends it for all."""

    def __init__(self, tasks: Iterable):
        self._tasks = iter(tasks)
        self._lock = threading.Lock()
        self._closed = False

    def take(self) -> Any:
        """The next task, or ``_NO_TASK`` when there is none left or the tasks were closed."""
        with self._lock:
            return _NO_TASK if self._closed else next(self._tasks, _NO_TASK)

    def close(self) -> None:
        with self._lock:
            self._closed = True


class _Raised:
    """An exception raised by the machinery of the other processes, passed to the thread that yields."""

    def __init__(self, error: BaseException):
        self.error = error


@contextlib.contextmanager
def _as_a_worker(threads: int) -> Iterator[None]:
    """This process as one of the workers for a while: their thread count, and no pools of its own."""
    global _inside_worker
    before = torch.get_num_threads(), _inside_worker
    _set_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        _inside_worker = before[1]


class HereAndProcesses:
    """Run tasks in this process and in ``workers - 1`` local processes, each taking the next task when free.

    This process starts on the first task at once, while the others start: a spawned process spends
    seconds importing torch before its first task (about 3 s on the 2-core development machine, where a
    256² image takes well under a minute in four tiles). Tasks run here with the workers' thread count and, like
    theirs, start no pools of their own. A task's exception is raised here once the others are stopped (one
    raised in another process when this one is between tasks); a process that dies fails its task (as in
    :class:`LocalProcesses`). Ctrl-C stops the processes at once.

    Parameters
    ----------
    workers : int
        Tasks at once, this process included (at least 2).
    threads : int, optional
        Torch threads per task (default: :func:`threads_per_worker`).
    """

    def __init__(self, workers: int, threads: int | None = None):
        if workers < 2:
            raise InputError(f"workers must be at least 2 (this process and another), got {workers}")
        self.workers = workers
        self.threads = threads or threads_per_worker(workers)

    @staticmethod
    def _feed(others: LocalProcesses, function: Callable, shared: _SharedTasks, finished: queue.SimpleQueue) -> None:
        """The other processes' side (a thread of this process): their outcomes, then None, into ``finished``."""
        try:
            for pair in others.map_unordered(function, iter(shared.take, _NO_TASK)):
                finished.put(pair)
        except BaseException as error:  # a task's own exception: the yielding thread raises it
            finished.put(_Raised(error))
        finished.put(None)

    def map_unordered(self, function: Callable, tasks: Iterable) -> Iterator[tuple[Any, Any]]:
        """Yield ``(task, outcome)`` as tasks finish, here or in the other processes."""
        shared, finished = _SharedTasks(tasks), queue.SimpleQueue()
        others = LocalProcesses(self.workers - 1, self.threads, queued=0)
        feeder = threading.Thread(target=self._feed, args=(others, function, shared, finished), daemon=True)
        feeder.start()
        fed_all = False

        def received(message: Any) -> Any:
            nonlocal fed_all
            if isinstance(message, _Raised):
                raise message.error
            fed_all = message is None
            return message

        try:
            while (task := shared.take()) is not _NO_TASK:
                with _as_a_worker(self.threads):
                    outcome = function(task)
                yield task, outcome
                while not finished.empty():
                    if (pair := received(finished.get())) is not None:
                        yield pair
            while not fed_all:
                if (pair := received(finished.get())) is not None:
                    yield pair
        finally:
            shared.close()
            while feeder.is_alive():  # a task taken just before the close may still start a process
                others.terminate()
                feeder.join(timeout=0.1)


def local_executor(workers: int | None, device: str = "cpu") -> InProcess | LocalProcesses:
    """The executor for ``workers`` local processes; None chooses: one per core on the CPU, one on a GPU.

    On the 2-core development machine two one-thread workers restored 16 images of 128² in 548 s against
    839 s for one process with two threads (``benchmarks/results/batch/README.md``).

    Parameters
    ----------
    workers : int or None
        Processes; 1 runs in this process.
    device : str
        The resolved device of the runs (``cpu``, ``cuda``, ``cuda:N``).

    Returns
    -------
    InProcess or LocalProcesses
    """
    if workers is None:
        workers = _one_per_core(device)
    return InProcess() if workers == 1 else LocalProcesses(workers)


class RayTasks:
    """Run each task as a Ray task: on a local Ray instance, or on the cluster at ``address``.

    Ray is an optional extra (``pip install "dipddpm[ray]"``). When Ray is not yet initialised here,
    :func:`ray.init` is called with ``address`` (None: a new local instance with ``num_cpus``) and
    Ray is shut down at the end; an instance the caller started is used as it is. Tasks stream back
    as they finish, at most ``window`` in flight.

    Parameters
    ----------
    address : str, optional
        A cluster's address (``ray://host:10001``, ``auto``); None for a local instance.
    cpus_per_task : float
        CPUs Ray reserves for each task; its torch threads are that, rounded down, at least 1.
    gpus_per_task : float
        GPUs Ray reserves for each task; fractional shares (e.g. 0.25) let runs share a GPU.
    num_cpus : int, optional
        CPUs of a local instance (default: all).
    window : int, optional
        Tasks in flight (default: twice the tasks the cluster can run at once).
    """

    def __init__(self, address: str | None = None, cpus_per_task: float = 1.0, gpus_per_task: float = 0.0,
                 num_cpus: int | None = None, window: int | None = None):
        if not cpus_per_task > 0 or gpus_per_task < 0:
            raise InputError("cpus per task must be positive and gpus per task not negative")
        self.address = address
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task
        self.num_cpus = num_cpus
        self.window = window

    @staticmethod
    def _ray():
        try:
            import ray
        except ImportError:
            raise InputError('Ray is not installed; pip install "dipddpm[ray]"') from None
        return ray

    def map_unordered(self, function: Callable, tasks: Iterable) -> Iterator[tuple[Any, Any]]:
        """Yield ``(task, outcome)`` as Ray tasks finish; a task's Ray error is its outcome."""
        ray = self._ray()
        started = not ray.is_initialized()
        if started:
            # a local instance: no dashboard, and Ray's start-up notices kept off the user's terminal
            local = {"num_cpus": self.num_cpus, "include_dashboard": False,
                     "logging_level": logging.ERROR} if self.address is None else {}
            ray.init(address=self.address, log_to_driver=False, **local)
        try:
            remote = ray.remote(_call_with_threads).options(num_cpus=self.cpus_per_task,
                                                            num_gpus=self.gpus_per_task, max_retries=0)
            threads = max(1, int(self.cpus_per_task))
            window = self.window or max(2, 2 * int(ray.cluster_resources().get("CPU", 1) // self.cpus_per_task))
            queue = iter(tasks)
            running: dict[Any, Any] = {}
            while True:
                while len(running) < window:
                    task = next(queue, None)
                    if task is None:
                        break
                    running[remote.remote(function, task, threads)] = task
                if not running:
                    return
                (ref,), _ = ray.wait(list(running), num_returns=1)
                task = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as err:  # Ray wraps task and node failures in several types
                    outcome = err
                yield task, outcome
        finally:
            if started:
                ray.shutdown()
