"""Many images: every page of every input restored on its own, written under one folder, resumable.

:func:`find_inputs` turns files, folders and glob patterns into :class:`BatchInput` items, each with
the path its output keeps relative to the output folder. :func:`restore_files` restores them with one
:class:`RunSettings` on an executor (:mod:`dipddpm.executors`: here, in local worker processes, or as
Ray tasks). A multi-page TIFF is restored page by page, each page its own run and stop, and written
back as a stack of the same layout. Outputs and their JSON sidecars are written atomically by this
process, and ``summary.csv`` is rewritten after every input, so an interrupted batch leaves only whole
files. A later call skips an input whose output exists and whose sidecar records the same input
bytes (SHA-256) and the same settings; ``force`` redoes it. :func:`restore_arrays` restores arrays in
memory the same way.

One input's failure (unreadable file, a run that diverges, a worker that dies) is its row in the
summary, with a one-line error; the batch goes on.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .api import denoise
from .config import DenoiserConfig
from .errors import InputError
from .executors import InProcess
from .io import READ_SUFFIXES, atomic_write, check_writable, read_pages, write_pages
from .result import Restoration, TiledRestoration

__all__ = ["SUMMARY_COLUMNS", "BatchInput", "BatchRecord", "PageResult", "RunSettings", "find_inputs",
           "one_line_error", "restore_arrays", "restore_files"]

SUMMARY_COLUMNS = ("input", "output", "status", "pages", "stop_iteration", "seconds", "sigma_used",
                   "estimated_psnr", "error")
_GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class RunSettings:
    """How every image of a batch is restored: the arguments of :func:`~dipddpm.api.denoise` it shares.

    Attributes
    ----------
    config : DenoiserConfig
        Full settings (a preset's, or the defaults).
    stopper : str
        The deciding stopper (``auto`` or one of :data:`~dipddpm.restore.STOPPERS`).
    sigma : float, optional
        Noise level for every image (image units; estimated per image when None).
    noise : str
        Noise model (:data:`~dipddpm.noise_models.NOISE_MODELS`).
    photons : float, "off" or None
        Poisson noise: expected count of a white pixel; None: estimated per image; "off": not stabilised
        (as for :func:`~dipddpm.api.denoise`).
    seed : int
        Seed of every run.
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` (where the run happens; not part of :meth:`key`).
    tile : int, "auto" or None
        Tiling, as for :func:`~dipddpm.api.denoise`.
    overlap : int
        Tile overlap in pixels.
    """

    config: DenoiserConfig = field(default_factory=DenoiserConfig)
    stopper: str = "auto"
    sigma: float | None = None
    noise: str = "gaussian"
    photons: float | str | None = None
    seed: int = 0
    device: str = "auto"
    tile: int | str | None = "auto"
    overlap: int = 32

    def restore(self, image: np.ndarray, *, reference: np.ndarray | None = None, watch: Sequence[str] = (),
                progress: bool | None = False) -> Restoration | TiledRestoration:
        """Restore one image as read from a file ((H, W) or (H, W, C)), in its own dtype.

        Parameters
        ----------
        image : numpy.ndarray
        reference : numpy.ndarray, optional
            Clean image, EVALUATION ONLY (PSNR numbers; the run is unchanged).
        watch : sequence of str
            Extra stoppers to record.
        progress : bool or None
            Per-step progress bar.

        Returns
        -------
        Restoration or TiledRestoration
        """
        return denoise(image, self.sigma, channel_axis=None if image.ndim == 2 else -1, stopper=self.stopper,
                       seed=self.seed, device=self.device, reference=reference, watch=watch, config=self.config,
                       preserve_dtype=True, progress=progress, tile=self.tile, overlap=self.overlap,
                       noise=self.noise, photons=self.photons, return_info=True)

    def key(self) -> dict:
        """What decides the result (everything but the device and the worker count), JSON-ready; resumption
        compares it."""
        out = asdict(self)
        out.pop("device")
        out["config"].pop("workers")
        return json.loads(json.dumps(out))


def one_line_error(err: BaseException) -> str:
    """An exception as one line: its message for the package's own errors, else ``Type: message``."""
    if isinstance(err, OSError) and err.strerror:
        text = f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    elif isinstance(err, InputError) or type(err).__name__ == "TrainingDiverged":
        text = str(err)
    else:
        text = f"{type(err).__name__}: {err}"
    lines = text.strip().splitlines()
    return lines[0] if lines else type(err).__name__


@dataclass(frozen=True)
class PageTask:
    """One 2-D image to restore: ``page`` of input ``item``."""

    item: int
    page: int
    image: np.ndarray
    settings: RunSettings


@dataclass
class PageResult:
    """What one page's run gave: the restored image and its record, or the error.

    Attributes
    ----------
    item, page : int
        Which input and which of its pages.
    image : numpy.ndarray or None
        The restored page, in the input's dtype; None when it failed.
    record : dict or None
        :meth:`~dipddpm.result.Restoration.to_dict` of the run; None when it failed.
    error : str or None
        One-line error when it failed.
    """

    item: int
    page: int
    image: np.ndarray | None
    record: dict | None
    error: str | None = None


def restore_page(task: PageTask) -> PageResult:
    """Restore one page; any error becomes the result's one-line ``error`` (one image's failure is its own)."""
    try:
        info = task.settings.restore(task.image)
    except Exception as err:  # the isolation boundary: report it and let the batch go on
        return PageResult(task.item, task.page, None, None, one_line_error(err))
    return PageResult(task.item, task.page, np.asarray(info.image), info.to_dict())


def _page_results(executor, tasks: Iterable[PageTask]) -> Iterator[PageResult]:
    """Each task's :class:`PageResult` as the executor finishes it; a failure of the executor itself (a worker
    that died, a lost Ray node) becomes that page's error."""
    for task, outcome in executor.map_unordered(restore_page, tasks):
        if isinstance(outcome, BaseException):
            outcome = PageResult(task.item, task.page, None, None, one_line_error(outcome))
        yield outcome


@dataclass(frozen=True)
class BatchInput:
    """One input of a batch.

    Attributes
    ----------
    source : pathlib.Path
        The file (or, with ``problem``, the argument as given).
    relative : pathlib.Path
        Its output's path inside the output folder (the path below a given folder or pattern's base,
        else the file name).
    problem : str, optional
        Why there is nothing to restore (a folder or pattern that matched no image).
    """

    source: Path
    relative: Path
    problem: str | None = None


def _is_pattern(text: str) -> bool:
    return any(c in text for c in _GLOB_CHARACTERS)


def _pattern_base(pattern: str) -> Path:
    """The leading folders of a glob pattern that hold no wildcard."""
    parts = Path(pattern).parts
    fixed = parts[:next(i for i, p in enumerate(parts) if _is_pattern(p))]
    return Path(*fixed) if fixed else Path(".")


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.resolve().is_relative_to(folder)


def find_inputs(inputs: Sequence[str | os.PathLike], recursive: bool = False,
                exclude: str | os.PathLike | None = None) -> list[BatchInput]:
    """Expand files, folders and glob patterns into the images of a batch, in order, each once.

    Parameters
    ----------
    inputs : sequence of str or path-like
        Files (kept whether or not they exist: a missing one fails in the summary), folders (their
        images: ``.png``, ``.jpg``, ``.jpeg``, ``.tif``, ``.tiff``, ``.bmp``) and glob patterns
        (``**`` with ``recursive``).
    recursive : bool
        Folders: include subfolders.
    exclude : str or path-like, optional
        A folder whose files are never inputs (the output folder).

    Returns
    -------
    list of BatchInput

    Raises
    ------
    InputError
        Two inputs that would write the same output.
    """
    skip = None if exclude is None else Path(exclude).resolve()
    found: list[BatchInput] = []
    for given in inputs:
        text = os.fspath(given)
        path = Path(text)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in READ_SUFFIXES
                           and not p.name.startswith(".") and not _inside(p, skip))
            found += [BatchInput(p, p.relative_to(path)) for p in files]
            if not files:
                found.append(BatchInput(path, path, f"no images ({', '.join(READ_SUFFIXES)}) in this folder"))
        elif _is_pattern(text) and not path.exists():
            base = _pattern_base(text)
            files = sorted(Path(p) for p in glob.glob(text, recursive=recursive))
            files = [p for p in files if p.is_file() and not _inside(p, skip)]
            found += [BatchInput(p, p.relative_to(base)) for p in files]
            if not files:
                found.append(BatchInput(path, path, "the pattern matches no file"))
        else:
            found.append(BatchInput(path, Path(path.name)))
    unique: dict[Path, BatchInput] = {}
    for item in found:
        key = item.source.resolve() if item.problem is None else Path(f"\0{item.source}")
        unique.setdefault(key, item)
    targets: dict[Path, Path] = {}
    for item in unique.values():
        if item.problem is None:
            other = targets.setdefault(item.relative, item.source)
            if other != item.source:
                raise InputError(f"{other} and {item.source} would both be written to {item.relative}; "
                                 f"restore them in separate batches")
    return list(unique.values())


@dataclass
class BatchRecord:
    """One row of ``summary.csv``: an input, its output and how its restoration went.

    For a stack, ``stop_iteration``, ``sigma_used`` and ``estimated_psnr`` list each page's value
    (``;``-separated in the CSV); for a tiled run, ``stop_iteration`` is the median of its tiles' stops.
    """

    input: str
    output: str
    status: str
    pages: int | None = None
    stop_iteration: list = field(default_factory=list)
    seconds: float | None = None
    sigma_used: list = field(default_factory=list)
    estimated_psnr: list = field(default_factory=list)
    error: str = ""

    def row(self) -> dict:
        """The CSV row."""
        def cell(values: list, digits: int) -> str:
            return ";".join("" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))
                            for v in values)

        return {"input": self.input, "output": self.output, "status": self.status,
                "pages": "" if self.pages is None else self.pages, "stop_iteration": cell(self.stop_iteration, 0),
                "seconds": "" if self.seconds is None else f"{self.seconds:.1f}",
                "sigma_used": cell(self.sigma_used, 5), "estimated_psnr": cell(self.estimated_psnr, 2),
                "error": self.error}

    @classmethod
    def from_records(cls, item: BatchInput, output: Path, status: str, records: list[dict]) -> BatchRecord:
        """The row of an input whose pages' runs left ``records`` (their ``to_dict()``); ``seconds`` is the sum of
        the runs' own (for a skipped input, those of the run that made its output)."""
        def stop(record: dict) -> int | None:
            if "tiles" in record:
                return int(statistics.median(t["stop_iteration"] for t in record["tiles"]))
            return record.get("stop_iteration")

        return cls(str(item.source), str(output), status, len(records), [stop(r) for r in records],
                   sum(r.get("seconds") or 0.0 for r in records),
                   [r.get("sigma_used") for r in records], [r.get("estimated_psnr") for r in records])


def sidecar_path(output: Path) -> Path:
    """The JSON sidecar of an output: its name with ``.json`` appended (``a.png`` -> ``a.png.json``)."""
    return output.with_name(output.name + ".json")


def _sidecar(records: list[dict], paged: bool, source: Path, stamp: dict) -> dict:
    """``denoise --json``'s content (``{"pages": [...]}`` for a stack) plus the batch stamp and input."""
    data = {"pages": records} if paged else dict(records[0])
    data["batch"] = {"input": str(source), **stamp}
    return data


def _complete(output: Path, stamp: dict) -> list[dict] | None:
    """The page records of a finished restoration of the same input bytes and settings, else None."""
    sidecar = sidecar_path(output)
    if not output.is_file() or not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    batch = data.get("batch") if isinstance(data, dict) else None
    if not isinstance(batch, dict) or any(batch.get(key) != value for key, value in stamp.items()):
        return None
    return data["pages"] if "pages" in data else [data]


def _write_summary(path: Path, records: Iterable[BatchRecord]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(record.row())
    atomic_write(path, buffer.getvalue().encode())


class _Progress:
    """One bar over the inputs: done / skipped / failed, images per minute, time left."""

    def __init__(self, total: int, enabled: bool | None):
        disable = None if enabled is None else not enabled
        self.bar = tqdm(total=total, unit="image", disable=disable, dynamic_ncols=True)
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self.start = time.perf_counter()

    def update(self, status: str) -> None:
        self.counts[status] += 1
        minutes = (time.perf_counter() - self.start) / 60
        rate = self.counts["done"] / minutes if minutes > 0 else 0.0
        self.bar.set_postfix_str(", ".join(f"{k} {v}" for k, v in self.counts.items()) + f", {rate:.1f} img/min",
                                 refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


@dataclass
class _Open:
    """An input whose pages are being restored."""

    item: BatchInput
    output: Path
    layout: Any
    stamp: dict
    results: list[PageResult | None]


def _about(path: Path, err: BaseException) -> str:
    """The one-line error about ``path``, without the path it may start with (the summary has it)."""
    text = one_line_error(err)
    return text.removeprefix(f"{path}: ")


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def restore_files(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                  settings: RunSettings | None = None, *, executor=None, recursive: bool = False,
                  force: bool = False, progress: bool | None = None,
                  on_record: Callable[[BatchRecord], None] | None = None) -> list[BatchRecord]:
    """Restore every image of ``inputs`` into ``out_dir``, keeping relative paths, formats and dtypes.

    Parameters
    ----------
    inputs : sequence of str or path-like
        Files, folders and glob patterns (:func:`find_inputs`).
    out_dir : str or path-like
        Output folder (created if missing). Gets each output at its input's relative path, a JSON
        sidecar beside it (``NAME.json``: the run's details, as ``dipddpm denoise --json``; a stack's
        has one entry per page) and ``summary.csv`` (:data:`SUMMARY_COLUMNS`, one row per input).
    settings : RunSettings, optional
        How every image is restored (default: the package defaults).
    executor : optional
        An executor of :mod:`dipddpm.executors` (default: :class:`~dipddpm.executors.InProcess`).
    recursive : bool
        Include the subfolders of input folders.
    force : bool
        Redo inputs already restored with the same settings.
    progress : bool or None
        One bar over the inputs (None: only on a terminal).
    on_record : callable, optional
        Called with each input's :class:`BatchRecord` as it is settled.

    Returns
    -------
    list of BatchRecord
        One per input, in the order of ``inputs``; ``status`` is ``done``, ``skipped`` or ``failed``.

    Raises
    ------
    InputError
        An output folder that cannot be made or written, or two inputs with the same output path.
    """
    settings = settings or RunSettings()
    executor = executor or InProcess()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{out}: cannot create the output folder ({err.strerror or err})") from None
    if not os.access(out, os.W_OK):
        raise InputError(f"{out}: not writable")
    items = find_inputs(inputs, recursive=recursive, exclude=out)
    summary = out / "summary.csv"
    settled: dict[int, BatchRecord] = {}
    opened: dict[int, _Open] = {}
    bar = _Progress(len(items), progress)
    settings_key = settings.key()

    def settle(index: int, record: BatchRecord) -> None:
        settled[index] = record
        _write_summary(summary, (settled[i] for i in sorted(settled)))
        bar.update(record.status)
        if on_record is not None:
            on_record(record)

    def tasks() -> Iterable[PageTask]:
        for index, item in enumerate(items):
            output = out / item.relative
            if item.problem is not None:
                settle(index, BatchRecord(str(item.source), "", "failed", error=item.problem))
                continue
            if output.resolve() == item.source.resolve():
                settle(index, BatchRecord(str(item.source), str(output), "failed",
                                          error="the output would replace the input; choose another output folder"))
                continue
            try:
                stamp = {"input_sha256": _file_sha256(item.source), "settings": settings_key}
                earlier = None if force else _complete(output, stamp)
                if earlier is not None:  # done before: not decoded again
                    settle(index, BatchRecord.from_records(item, output, "skipped", earlier))
                    continue
                pages, layout = read_pages(item.source)
                output.parent.mkdir(parents=True, exist_ok=True)
                check_writable(output)
            except (InputError, OSError) as err:
                settle(index, BatchRecord(str(item.source), str(output), "failed", error=_about(item.source, err)))
                continue
            opened[index] = _Open(item, output, layout, stamp, [None] * len(pages))
            for page_index, page in enumerate(pages):
                yield PageTask(index, page_index, page, settings)

    def finish(index: int) -> None:
        state = opened.pop(index)
        pages = len(state.results)
        failed = [(number, r.error) for number, r in enumerate(state.results, start=1) if r.error is not None]
        if failed:
            number, error = failed[0]
            where = "" if pages == 1 else f"page {number} of {pages}: "
            settle(index, BatchRecord(str(state.item.source), str(state.output), "failed", pages, error=where + error))
            return
        records = [r.record for r in state.results]
        try:
            write_pages(state.output, [r.image for r in state.results], state.layout)
            sidecar = _sidecar(records, len(records) > 1, state.item.source, state.stamp)
            atomic_write(sidecar_path(state.output), (json.dumps(sidecar, indent=1) + "\n").encode())
        except (InputError, OSError) as err:
            settle(index, BatchRecord(str(state.item.source), str(state.output), "failed", len(records),
                                      error=one_line_error(err)))
            return
        settle(index, BatchRecord.from_records(state.item, state.output, "done", records))

    try:
        for result in _page_results(executor, tasks()):
            state = opened[result.item]
            state.results[result.page] = result
            if all(r is not None for r in state.results):
                finish(result.item)
    finally:
        bar.close()
    if not settled:
        _write_summary(summary, [])
    return [settled[i] for i in sorted(settled)]


def restore_arrays(images: Iterable[np.ndarray], settings: RunSettings | None = None, *, executor=None,
                   progress: bool | None = None) -> list[PageResult]:
    """Restore many images in memory, each its own run and stop, on an executor.

    Parameters
    ----------
    images : iterable of numpy.ndarray
        Each (H, W) grey or (H, W, C) with C in 1..4, uint8, uint16 or float (as :func:`denoise` takes
        them with ``channel_axis=-1``).
    settings : RunSettings, optional
        How every image is restored.
    executor : optional
        An executor of :mod:`dipddpm.executors` (default: in this process).
    progress : bool or None
        One bar over the images.

    Returns
    -------
    list of PageResult
        In the order of ``images``: ``image`` (same shape and dtype) and ``record`` (the run's
        details), or ``error`` for an image that failed.
    """
    settings = settings or RunSettings()
    executor = executor or InProcess()
    images = list(images)
    results: list[PageResult | None] = [None] * len(images)
    bar = _Progress(len(images), progress)
    tasks = (PageTask(i, 0, np.asarray(image), settings) for i, image in enumerate(images))
    try:
        for result in _page_results(executor, tasks):
            results[result.item] = result
            bar.update("failed" if result.error else "done")
    finally:
        bar.close()
    return results
