"""The clip-aware validation copy against the plain one, single runs (issue 15, thirteenth session).

On a clipped (8-bit) image the recorruption pair's noises are correlated near black and white: the training noise
``e + a σ z`` and the plain copy's ``e - (σ/a) z`` have covariance ``v - σ²`` per value (``v`` the clipped noise's
variance), so the validation error rises faster than the true error past the minimum and the stop comes early
(``benchmarks/noise_correlation.py``). The clip-aware copy ``y - c z``, ``c = v(x_hat) / (a σ)``
(:func:`dipddpm.stopping.validation_scale`), removes the correlation; the package uses it above
``StoppingConfig.clip_aware_sigma_min``. For each crop and σ this runs the package's single default run twice,
with the clip-aware copy off and on at every σ (``clip_aware_sigma_min`` infinite and 0; same seed, same
noise, same ``z``), σ given (``--sigma given``) or estimated, and records the returned PSNR (declipped result),
the run's oracle PSNR and iteration (evaluation only), the stop, and the recorruption stopper's own PSNR
estimate and range (also where the package withholds it). Rows are appended as they finish; a rerun skips the
(image, σ, variant) already in ``--out``.

Usage:
    python benchmarks/clip_aware_probe.py --images DIR [--images DIR] [--limit 4] [--crop 128] [--sigma 25,50]
        [--seed 0] [--sigma-source given|estimated] --out FILE.jsonl
    python benchmarks/clip_aware_probe.py --report FILE.jsonl [FILE.jsonl ...]
"""

import argparse
import json
import math
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from dipddpm.bench.data import list_images, load_crop, make_noisy
from dipddpm.bench.methods import to_tensor
from dipddpm.bench.report import read_records
from dipddpm.bench.scripts import script_meta
from dipddpm.config import DenoiserConfig
from dipddpm.restore import restore_tensor


def measure(args) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    given = args.sigma_source == "given"
    done = {(r["image"], r["sigma"], r["seed"], r["aware"], r["given"])
            for r in read_records(out) if "image" in r} if out.exists() else set()
    torch.set_num_threads(2)
    with out.open("a") as f:
        f.write(json.dumps({"meta": script_meta("benchmarks/clip_aware_probe.py")}) + "\n")
    paths = [p for folder in args.images for p in list_images(folder, args.limit)]
    for sigma255 in (float(s) for s in args.sigma.split(",")):
        for path in paths:
            name, clean = load_crop(path, args.crop)
            noisy = make_noisy(clean, name, sigma255, args.seed)
            y, x = to_tensor(noisy), to_tensor(clean)
            for aware in (False, True):
                if (name, sigma255, args.seed, aware, given) in done:
                    continue
                config = DenoiserConfig()
                config = replace(config, stopping=replace(config.stopping,
                                                          clip_aware_sigma_min=0.0 if aware else math.inf))
                start = time.perf_counter()
                result = restore_tensor(y, sigma255 / 255 if given else None, config=config, seed=args.seed,
                                        reference=x)
                stopper = result.stoppers["recorruption"]
                row = {"image": name, "sigma": sigma255, "seed": args.seed, "aware": aware, "given": given,
                       "psnr": result.evaluation["ref_psnr"], "oracle": result.evaluation["oracle_psnr"],
                       "oracle_it": result.evaluation["oracle_iteration"], "stop": result.stop_iteration,
                       "est": stopper["estimated_psnr"], "range": stopper["estimated_psnr_range"],
                       "sigma_used": result.sigma_used, "seconds": time.perf_counter() - start}
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{name} σ={sigma255:g} aware={aware}: {row['psnr']:.2f} dB, stop {row['stop']} "
                      f"(oracle {row['oracle']:.2f} at {row['oracle_it']})", flush=True)


def _estimate_cells(rows: list[dict]) -> str:
    errors = [abs(r["est"] - r["psnr"]) if r["est"] is not None else float("inf") for r in rows]
    inside = sum(r["range"][0] is not None and r["range"][0] <= r["psnr"]
                 and (r["range"][1] is None or r["psnr"] <= r["range"][1]) for r in rows)
    return (f"{statistics.median(errors):.2f} | {sum(e <= 1 for e in errors)}/{len(rows)} | "
            f"{inside}/{len(rows)}")


def report(rows: list[dict]) -> str:
    """One line per (σ, σ source, seed, result file): rows carry their file's stem as ``file``."""
    pairs: dict = {}
    for r in rows:
        key = (r["sigma"], r["given"], r["seed"], r["file"])
        pairs.setdefault(key, {}).setdefault(r["image"], {})[r["aware"]] = r
    lines = ["| σ | σ source | seed | file | n | PSNR plain | PSNR clip-aware | gain: mean [min, max] | "
             "stop − oracle it. (median) plain / aware | estimate: median abs error, within 1 dB, range holds "
             "truth — plain | clip-aware |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (sigma, given, seed, file), images in sorted(pairs.items()):
        both = [v for v in images.values() if len(v) == 2]
        if not both:
            continue
        plain, aware = [v[False] for v in both], [v[True] for v in both]
        gain = [a["psnr"] - p["psnr"] for p, a in zip(plain, aware, strict=True)]
        lag = [statistics.median(r["stop"] - r["oracle_it"] for r in rs) for rs in (plain, aware)]
        estimate = (f"{_estimate_cells(plain)} | {_estimate_cells(aware)}" if given else "n/a (σ estimated) | n/a")
        means = [statistics.mean(r["psnr"] for r in rs) for rs in (plain, aware)]
        lines.append(f"| {sigma:g} | {'given' if given else 'estimated'} | {seed} | {file} | {len(both)} | "
                     f"{means[0]:.2f} | {means[1]:.2f} | {statistics.mean(gain):+.3f} [{min(gain):+.2f}, "
                     f"{max(gain):+.2f}] | {lag[0]:.0f} / {lag[1]:.0f} | {estimate} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", action="append", default=[])
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma", default="25,50")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sigma-source", choices=("given", "estimated"), default="given")
    parser.add_argument("--out")
    parser.add_argument("--report", nargs="+", type=Path)
    args = parser.parse_args()
    if args.report:
        print(report([{**r, "file": path.stem} for path in args.report for r in read_records(path) if "image" in r]))
    elif args.out and args.images:
        measure(args)
    else:
        parser.error("give --images and --out, or --report")


if __name__ == "__main__":
    main()
