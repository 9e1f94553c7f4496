"""Run the benchmark: rows appended as they finish, resumable, a crash in one row recorded and skipped."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import InputError
from ..metrics import psnr, ssim
from ..restore import resolve_device
from ..result import versions
from .data import list_images, load_clean, make_noisy
from .methods import DEFAULT_METHODS, METHODS
from .report import read_records, write_reports

__all__ = ["BenchSpec", "run_bench", "machine"]


@dataclass
class BenchSpec:
    """What to run.

    Attributes
    ----------
    folders : list of str
        Folders of clean images.
    limit : int or None
        Use the first ``limit`` images (sorted by name) of each folder.
    sigmas : list of float
        Noise levels in 8-bit units (15 means 15/255).
    seeds : list of int
        Seeds; row ``(image, sigma, seed)`` has its own noise and the DIP seed ``seed``.
    crop : int or None
        Centre crop size (None: full images).
    methods : list of str
        Keys of :data:`dipddpm.bench.methods.METHODS`.
    max_iter : int
        Iteration budget of every DIP trajectory.
    device : str
        Torch device.
    command : str
        The command line that asked for this run (recorded in every output).
    """

    folders: list[str]
    limit: int | None = None
    sigmas: list[float] = field(default_factory=lambda: [15.0, 25.0, 50.0])
    seeds: list[int] = field(default_factory=lambda: [0])
    crop: int | None = 128
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    max_iter: int = 3000
    device: str = "auto"
    command: str = ""

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise InputError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
        if any(s <= 0 or s >= 255 for s in self.sigmas):
            raise InputError("noise levels are in 8-bit units: 0 < sigma < 255")
        if self.max_iter < 1 or (self.crop is not None and self.crop < 8):
            raise InputError("need max_iter >= 1 and crop >= 8")


def machine(device: torch.device) -> dict:
    """CPU model, core count, torch threads and GPU name of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device),
            "platform": platform.platform()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _describe(method) -> dict:
    info = {"description": method.description, "family": method.family,
            "sigma_given": getattr(method, "sigma_given", None)}
    config = getattr(method, "config", None)
    if config is not None:
        info.update(config=config.to_dict(), stoppers=list(method.stoppers), variant=method.variant)
    return info


def _task_key(row: dict) -> tuple:
    return row["image"], float(row["sigma"]), int(row["seed"]), row["method"]


def _append(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def _rows_for(outcome, base: dict, clean: np.ndarray, method) -> list[dict]:
    axis = None if clean.ndim == 2 else -1
    oracle_psnr, peak = outcome.oracle if outcome.oracle else (None, None)
    rows = []
    for stopper, (image, stop, fired) in outcome.images.items():
        value = None if image is None else psnr(image, clean)
        no_ssim = image is None or min(clean.shape[:2]) < 11
        rows.append({**base, "family": method.family, "stopper": stopper, "psnr": value,
                     "ssim": None if no_ssim else ssim(image, clean, channel_axis=axis),
                     "oracle_psnr": oracle_psnr,
                     "gap": None if oracle_psnr is None or value is None else oracle_psnr - value,
                     "stop_iteration": stop, "fired_at": fired, "peak_iteration": peak,
                     "iterations_run": outcome.iterations_run,
                     "sigma_used": None if outcome.sigma_used is None else outcome.sigma_used * 255,
                     "sigma_source": outcome.sigma_source, "seconds": outcome.seconds, "error": None})
        if stopper == "recorruption" and outcome.estimate is not None:
            rows[-1].update(zip(("estimated_psnr", "estimated_psnr_low", "estimated_psnr_high"), outcome.estimate,
                                strict=True))
    return rows


def run_bench(spec: BenchSpec, out: str | Path, resume: bool = True, progress: bool | None = None) -> Path:
    """Run every (image, sigma, seed, method) task not done yet, then write the reports.

    Parameters
    ----------
    spec : BenchSpec
    out : str or Path
        Output folder: ``rows.jsonl`` and ``curves.jsonl`` grow as tasks finish; ``results.csv``,
        ``results.json``, ``summary.md`` and plots are rewritten at the end.
    resume : bool
        Skip tasks already in ``rows.jsonl`` without an error (else start afresh).
    progress : bool or None
        Progress bar (None: on a terminal).

    Returns
    -------
    Path
        The output folder.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path, curves_path = out / "rows.jsonl", out / "curves.jsonl"
    if not resume:
        for path in (rows_path, curves_path):
            path.unlink(missing_ok=True)
    device = resolve_device(spec.device)
    available = [m for m in spec.methods if getattr(METHODS[m], "available", lambda: True)()]
    skipped = [m for m in spec.methods if m not in available]
    meta = {"command": spec.command, "spec": asdict(spec), "date": _dt.datetime.now().isoformat(timespec="seconds"),
            "machine": machine(device), "versions": versions(), "skipped_methods": skipped,
            "methods": {m: _describe(METHODS[m]) for m in spec.methods},
            "noise": "AWGN, noisy image clipped to [0, 1] and quantised to 8 bits; "
                     "noise seed = sha256(image|sigma|seed)"}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")

    existing = [r for r in read_records(rows_path) if r.get("error") is None]
    done = {_task_key(r) for r in existing}
    images = [(f"{Path(folder).name}/{p.stem}", p) for folder in spec.folders for p in list_images(folder, spec.limit)]
    tasks = [(name, path, float(s), seed, m) for name, path in images for s in spec.sigmas for seed in spec.seeds
             for m in available if (name, float(s), seed, m) not in done]
    bar = tqdm(tasks, unit="task", disable=None if progress is None else not progress, dynamic_ncols=True)
    cache: dict = {}
    for name, path, sigma, seed, method_name in bar:
        bar.set_description(f"{name} s{sigma:g} seed{seed} {method_name}")
        base = {"image": name, "sigma": sigma, "seed": seed, "method": method_name}
        try:
            if (name, sigma, seed) not in cache:
                cache.clear()
                clean = load_clean(path, spec.crop)
                cache[(name, sigma, seed)] = (clean, make_noisy(clean, name, sigma, seed))
            clean, noisy = cache[(name, sigma, seed)]
            base["noisy_psnr"] = psnr(noisy, clean)
            method = METHODS[method_name]
            outcome = method.run(noisy, clean, sigma / 255.0, seed, str(device), spec.max_iter)
            for row in _rows_for(outcome, base, clean, method):
                _append(rows_path, row)
            if outcome.curve:
                _append(curves_path, {**base, "curve": outcome.curve, "histories": outcome.histories,
                                      "stops": {k: v[1] for k, v in outcome.images.items()}})
        except Exception as err:  # one failed row must not end the benchmark
            _append(rows_path, {**base, "error": f"{type(err).__name__}: {err}".splitlines()[0],
                                "traceback": traceback.format_exc(limit=3)})
    bar.close()
    write_reports(out)
    return out

