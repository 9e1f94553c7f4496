"""How well is sigma estimated? Every estimator of dipddpm.noise on every clean set, clipped and not.

Each clean image (centre crop, 256 by default) gets noise of sigma 5, 15, 25, 50 (8-bit units) in two
ways: the benchmark's (``make_noisy``: clipped to [0, 1], 8-bit, seed 0) and float Gaussian noise
with no clipping and no quantisation (numpy Generator seeded from ``noise_seed(name + "|float", ...)``).
Rows (one per estimator x image x sigma x noise) are appended to ``OUT/rows.jsonl`` and skipped when
already there, so an interrupted run resumes; the table ``OUT.md`` is rebuilt from the rows.

Parameters (patch sizes, the weak-texture confidence and spectrum rule) are chosen on the tuning images
(first 4 of kodak24 and of cbsd68): the ``tune:`` estimators run on those only. The main table
reports the other images.

Usage: python benchmarks/sigma_estimates.py [--data ../shared/data] [--out benchmarks/results/sigma_estimates]
       [--crop 256] [--sets kodak24 cbsd68 ...] [--only-tuning]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dipddpm.bench.data import list_images, load_clean, make_noisy, noise_seed
from dipddpm.noise import estimate_sigma_pca, estimate_sigma_wavelet, estimate_sigma_weak_texture

SETS = ("kodak24", "cbsd68", "mcmaster", "set9", "set12", "bsd68")
SIGMAS = (5, 15, 25, 50)
TUNING = {"kodak24": 4, "cbsd68": 4}  # first n images of these sets

Estimator = Callable[[np.ndarray, "int | None"], float]

ESTIMATORS: dict[str, Estimator] = {
    "wavelet (before)": lambda y, ax: estimate_sigma_wavelet(y, ax, clip_correction=True),
    "wavelet": lambda y, ax: estimate_sigma_wavelet(y, ax, clip_correction=None),
    "pca": lambda y, ax: estimate_sigma_pca(y, ax),
    "weak-texture": lambda y, ax: estimate_sigma_weak_texture(y, ax),
    "weak-texture (smallest, 1-1e-6)": lambda y, ax: estimate_sigma_weak_texture(y, ax, spectrum="smallest",
                                                                                confidence=1 - 1e-6),
}
TUNE: dict[str, Estimator] = {
    "tune: wavelet no clip corr.": lambda y, ax: estimate_sigma_wavelet(y, ax, clip_correction=False),
    "tune: pca d=5": lambda y, ax: estimate_sigma_pca(y, ax, patch=5),
    "tune: pca d=6": lambda y, ax: estimate_sigma_pca(y, ax, patch=6),
    "tune: pca d=7": lambda y, ax: estimate_sigma_pca(y, ax, patch=7),
    "tune: pca d=8": lambda y, ax: estimate_sigma_pca(y, ax, patch=8),
    "tune: pca d=8 no clip corr.": lambda y, ax: estimate_sigma_pca(y, ax, clip_correction=False),
    "tune: wt smallest 0.99": lambda y, ax: estimate_sigma_weak_texture(y, ax, spectrum="smallest",
                                                                       confidence=0.99),
    "tune: wt smallest 0.999999": lambda y, ax: estimate_sigma_weak_texture(y, ax, spectrum="smallest",
                                                                           confidence=1 - 1e-6),
    "tune: wt pca 0.99": lambda y, ax: estimate_sigma_weak_texture(y, ax, spectrum="pca", confidence=0.99),
    "tune: wt pca 0.999999": lambda y, ax: estimate_sigma_weak_texture(y, ax, spectrum="pca", confidence=1 - 1e-6),
    "tune: wt pca 0.9": lambda y, ax: estimate_sigma_weak_texture(y, ax, spectrum="pca", confidence=0.9),
    "tune: wt pca 0.999": lambda y, ax: estimate_sigma_weak_texture(y, ax, spectrum="pca", confidence=0.999),
    "tune: wt smallest 0.9999": lambda y, ax: estimate_sigma_weak_texture(y, ax, spectrum="smallest",
                                                                         confidence=0.9999),
    "tune: wt smallest 0.99999999": lambda y, ax: estimate_sigma_weak_texture(y, ax, spectrum="smallest",
                                                                             confidence=1 - 1e-8),
    "tune: wt pca 0.99 min clip ratio 0": lambda y, ax: estimate_sigma_weak_texture(y, ax, spectrum="pca",
                                                                                   confidence=0.99, min_clip_ratio=0),
    "tune: wt pca 0.99 min clip ratio 0.8": lambda y, ax: estimate_sigma_weak_texture(
        y, ax, spectrum="pca", confidence=0.99, min_clip_ratio=0.8),
    "tune: wt pca 0.99 min clip ratio 0.97": lambda y, ax: estimate_sigma_weak_texture(
        y, ax, spectrum="pca", confidence=0.99, min_clip_ratio=0.97),
    "tune: wt pca 0.99 d=5": lambda y, ax: estimate_sigma_weak_texture(y, ax, spectrum="pca", confidence=0.99,
                                                                      patch=5),
    "tune: wt pca 0.99 no clip corr.": lambda y, ax: estimate_sigma_weak_texture(y, ax, spectrum="pca", confidence=0.99,
                                                                                clip_correction=False),
}


def noisy_pair(clean: np.ndarray, name: str, sigma255: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(noise_seed(name + "|float", sigma255, 0))
    return {"clipped": make_noisy(clean, name, sigma255, 0),
            "float": clean + sigma255 / 255.0 * rng.standard_normal(clean.shape)}


def run(args: argparse.Namespace, rows_path: Path) -> None:
    done = set()
    if rows_path.exists():
        for line in rows_path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["image"], r["sigma"], r["noise"], r["estimator"]))
    with rows_path.open("a") as out:
        for folder in args.sets:
            n_tune = TUNING.get(folder, 0)
            for index, path in enumerate(list_images(args.data / folder)):
                tuning = index < n_tune
                if args.only_tuning and not tuning:
                    break
                name = f"{folder}/{path.stem}"
                estimators = dict(ESTIMATORS, **(TUNE if tuning else {}))
                todo = [(s, e) for s in SIGMAS for e in estimators
                        if any((name, s, n, e) not in done for n in ("clipped", "float"))]
                if not todo:
                    continue
                clean = load_clean(path, args.crop or None)
                axis = -1 if clean.ndim == 3 else None
                for sigma in SIGMAS:
                    for noise, noisy in noisy_pair(clean, name, sigma).items():
                        for estimator, fn in estimators.items():
                            if (name, sigma, noise, estimator) in done:
                                continue
                            start = time.perf_counter()
                            value = fn(noisy, axis) * 255.0
                            row = {"set": folder, "image": name, "tuning": tuning, "sigma": sigma, "noise": noise,
                                   "estimator": estimator, "estimate": round(value, 4),
                                   "rel_error": round(value / sigma - 1, 6), "seconds": round(time.perf_counter()
                                                                                              - start, 4),
                                   "shape": list(clean.shape)}
                            out.write(json.dumps(row) + "\n")
                out.flush()
                print(name, flush=True)


def stats(errors: np.ndarray) -> str:
    a = np.abs(errors)
    return (f"{100 * errors.mean():+.1f}% | {100 * np.median(a):.1f}% | {100 * np.quantile(a, 0.9):.1f}% "
            f"| {100 * np.mean(a <= 0.05):.0f}% | {errors.size}")


def table(rows: list[dict], command: str, crop: int) -> str:
    head = "| estimator | sigma | noise | mean rel. error | median abs. | 90th pct abs. | within 5% | n |"
    rule = "|---|---|---|---|---|---|---|---|"
    evaluation = [r for r in rows if not r["tuning"]]
    main_names = [e for e in ESTIMATORS if any(r["estimator"] == e for r in evaluation)]
    lines = ["# Noise-level (sigma) estimates", "", f"Command: `{command}`", "",
             f"Images: centre crops of {crop} px (a shorter side kept whole)" if crop else "Images: whole",
             "of the clean sets kodak24, cbsd68, mcmaster, set9, set12, bsd68 (grey and RGB, 8-bit). Noise of "
             "sigma 5/15/25/50 (8-bit units) added two ways: *clipped* = the benchmark's `make_noisy` (clipped "
             "to [0, 1], quantised to 8 bits, seed 0); *float* = Gaussian noise with no clipping or quantisation "
             "(seeded numpy Generator). Error = estimate / sigma - 1. The clean images carry their own noise and "
             "grain, so sigma 5 reads high for every estimator.", "",
             "**Tuning**: patch sizes, the weak-texture confidence and spectrum rule were chosen on the tuning "
             "images (first 4 of kodak24 and of cbsd68), table at the end; every other table excludes them.",
             "", "*wavelet (before)* is `estimate_sigma` before this change (clipping correction always on); "
             "*wavelet* applies the correction only when all values lie in [0, 1].", "",
             "**Weak-texture default**: on the tuning images *weak-texture (smallest, 1-1e-6)* (the paper's "
             "smallest eigenvalue) and the mean = median spectrum at confidence 0.99 tied on the clipped target "
             "(96% each; float 100% vs 92%). The smallest eigenvalue was the default first; it was replaced "
             "by mean = median AFTER this table's evaluation rows were seen, for a reason outside them: on "
             "small images of pure noise the smallest eigenvalue reads low (0.1 read as 0.089 at 64x64x3, "
             "0.073 at 32x32x3; mean = median 0.098 and 0.089), a bias the 256 crops hide. Both are reported.",
             ""]

    def target(rs: list[dict], name: str, noise: str) -> str:
        e = np.array([r["rel_error"] for r in rs if r["estimator"] == name and r["noise"] == noise
                      and r["sigma"] >= 15])
        return f"{100 * np.mean(np.abs(e) <= 0.05):.0f}% ({e.size})" if e.size else "-"

    lines += ["## Target: fraction within 5% at sigma >= 15 (evaluation images)", "",
              "| estimator | clipped | float | clipped, sigma 50 mean error |", "|---|---|---|---|"]
    for name in main_names:
        e50 = np.array([r["rel_error"] for r in evaluation if r["estimator"] == name and r["noise"] == "clipped"
                        and r["sigma"] == 50])
        lines.append(f"| {name} | {target(evaluation, name, 'clipped')} | {target(evaluation, name, 'float')} "
                     f"| {100 * e50.mean():+.1f}% |")
    lines += ["", "## All evaluation images", "", head, rule]
    for name in main_names:
        for sigma in SIGMAS:
            for noise in ("clipped", "float"):
                e = np.array([r["rel_error"] for r in evaluation if (r["estimator"], r["sigma"], r["noise"])
                              == (name, sigma, noise)])
                if e.size:
                    lines.append(f"| {name} | {sigma} | {noise} | {stats(e)} |")
    lines += ["", "## Per set: fraction within 5% at sigma >= 15, clipped / float (evaluation images)", "",
              "| estimator | " + " | ".join(SETS) + " |", "|---" * (len(SETS) + 1) + "|"]
    for name in main_names:
        cells = []
        for folder in SETS:
            rs = [r for r in evaluation if r["set"] == folder]
            cells.append(f"{target(rs, name, 'clipped')} / {target(rs, name, 'float')}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Per set, every sigma (evaluation images)", "", "| set | " + head[2:], "|---" + rule]
    for folder in SETS:
        for name in main_names:
            for sigma in SIGMAS:
                for noise in ("clipped", "float"):
                    e = np.array([r["rel_error"] for r in evaluation if (r["set"], r["estimator"], r["sigma"],
                                                                         r["noise"]) == (folder, name, sigma, noise)])
                    if e.size:
                        lines.append(f"| {folder} | {name} | {sigma} | {noise} | {stats(e)} |")
    tuning = [r for r in rows if r["tuning"]]
    names = list(dict.fromkeys(r["estimator"] for r in tuning))
    lines += ["", "## Tuning images (first 4 of kodak24 and cbsd68): all variants", "",
              "| estimator | within 5% at sigma >= 15, clipped | float | "
              + " | ".join(f"mean err. {s} clipped" for s in SIGMAS) + " | seconds per image |",
              "|---|---|---" + "|---" * len(SIGMAS) + "|---|"]
    for name in names:
        means = []
        for sigma in SIGMAS:
            e = np.array([r["rel_error"] for r in tuning if (r["estimator"], r["sigma"], r["noise"])
                          == (name, sigma, "clipped")])
            means.append(f"{100 * e.mean():+.1f}%")
        seconds = np.mean([r["seconds"] for r in tuning if r["estimator"] == name])
        lines.append(f"| {name} | {target(tuning, name, 'clipped')} | {target(tuning, name, 'float')} | "
                     + " | ".join(means) + f" | {seconds:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sigma_estimates")
    parser.add_argument("--crop", type=int, default=256, help="centre crop side; 0 for whole images")
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--only-tuning", action="store_true", help="run the tuning images only")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows_path = args.out.with_suffix(".jsonl")
    run(args, rows_path)
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    command = "python benchmarks/sigma_estimates.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = table(rows, command.strip(), args.crop)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
