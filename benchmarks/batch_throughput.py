"""Many images (issue 14): images per minute of ``dipddpm batch`` with one process, local workers and Ray.

Writes the first ``--count`` images of ``--images`` as noisy 8-bit PNG crops (σ = ``--sigma``, the
benchmark's seeded noise) into a work folder, then restores the whole folder with each setting in turn
(``--settings``: ``workers1`` = one process with all threads, ``workers2`` = two processes with one
thread each, ``ray`` = a local Ray instance with ``--cpus-per-task`` per task), each into a fresh output
folder, timing the whole command. Each row gives wall seconds, images per minute, the median of the
runs' own seconds (from ``summary.csv``) and, for Ray, the cost of Ray itself: the start of a local
instance and the round trip of an empty task (``--overhead``). Rows are appended to ``--out``.

The runs are real restorations with the auto stop (or ``--max-iter`` as a cap). Run nothing else meanwhile.

Usage:
    python benchmarks/batch_throughput.py --images ../shared/data/kodak24 --count 16 --crop 128 \
        --settings workers1,workers2,ray --out benchmarks/results/batch/throughput.jsonl
    python benchmarks/batch_throughput.py --overhead --out benchmarks/results/batch/throughput.jsonl
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dipddpm.bench.data import list_images, load_clean, make_noisy
from dipddpm.bench.scripts import script_meta
from dipddpm.io import write_image

SETTINGS = {"workers1": ["--workers", "1"], "workers2": ["--workers", "2"], "ray": ["--ray"]}


def write_inputs(folder: Path, images: str, count: int, crop: int, sigma: float) -> None:
    """The noisy crops, as 8-bit PNGs named after their source."""
    for path in list_images(images, count):
        clean = load_clean(path, crop)
        noisy = make_noisy(clean, path.stem, sigma, 0)
        write_image(folder / f"{path.stem}.png", np.round(noisy * 255).astype(np.uint8))


def run_setting(inputs: Path, out: Path, setting: str, extra: list[str]) -> dict:
    """One ``dipddpm batch`` over the folder; wall seconds and what summary.csv says."""
    command = [sys.executable, "-m", "dipddpm", "batch", str(inputs), "-o", str(out), "--quiet",
               *SETTINGS[setting], *extra]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    finished = [r for r in rows if r["status"] == "done"]
    return {"setting": setting, "images": len(rows), "done": len(finished), "exit": done.returncode,
            "wall_seconds": round(seconds, 1), "images_per_minute": round(60 * len(finished) / seconds, 2),
            "median_run_seconds": round(statistics.median(float(r["seconds"]) for r in finished), 1),
            "stops": [int(r["stop_iteration"]) for r in finished],
            "stderr_tail": done.stderr[-300:]}


def ray_overhead(tasks: int = 200) -> dict:
    """Start of a local Ray instance and the round trip of an empty task, in a fresh process."""
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter() - start

    @ray.remote(num_cpus=1)
    def empty(x):
        return x

    ray.get([empty.remote(i) for i in range(4)])  # workers up
    start = time.perf_counter()
    for i in range(tasks):
        ray.get(empty.remote(i))
    serial = (time.perf_counter() - start) / tasks
    payload = np.zeros((128, 128, 3), np.uint8)
    start = time.perf_counter()
    for _ in range(tasks):
        ray.get(empty.remote(payload))
    with_image = (time.perf_counter() - start) / tasks
    ray.shutdown()
    return {"setting": "ray-overhead", "init_seconds": round(started, 2), "task_round_trip_ms": round(1000 * serial, 2),
            "task_round_trip_128px_rgb_ms": round(1000 * with_image, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--settings", default="workers1,workers2,ray")
    parser.add_argument("--max-iter", type=int)
    parser.add_argument("--overhead", action="store_true", help="measure Ray's own costs only")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = script_meta("benchmarks/batch_throughput.py")
    rows = []
    if args.overhead:
        rows.append(ray_overhead())
    else:
        extra = ["--sigma", f"{args.sigma:g}/255"] + (["--max-iter", str(args.max_iter)] if args.max_iter else [])
        with tempfile.TemporaryDirectory() as work:
            inputs = Path(work) / "in"
            inputs.mkdir()
            write_inputs(inputs, args.images, args.count, args.crop, args.sigma)
            for setting in args.settings.split(","):
                row = run_setting(inputs, Path(work) / setting, setting, extra)
                rows.append({**row, "count": args.count, "crop": args.crop, "sigma": args.sigma})
                print(json.dumps({k: v for k, v in row.items() if k != "stderr_tail"}), flush=True)
                with open(args.out, "a") as handle:
                    handle.write(json.dumps({**rows[-1], "meta": meta}) + "\n")
        return
    print(json.dumps(rows[-1]), flush=True)
    with open(args.out, "a") as handle:
        handle.write(json.dumps({**rows[-1], "meta": meta}) + "\n")


if __name__ == "__main__":
    main()
