"""Per-seed tables of a `dipddpm bench` results folder: our stop, its gaps, the baselines and paired differences.

``summary.md`` pools every seed; this prints one block per (sigma, seed), so a second seed can be read
against the first.

Usage: python benchmarks/per_seed.py benchmarks/results/cpu-suite [--sigma 25,50] [--seeds 1,2]
"""

import argparse
import csv
from pathlib import Path

import numpy as np

BASELINES = ("bm3d", "zsn2n", "nlm", "bayes", "bayes-est", "tv")


def block(rows: list[dict], sigma: float, seed: str) -> list[str]:
    """Lines describing one (sigma, seed): ours, the baselines with paired differences, every stopper's gaps."""
    rows = [r for r in rows if float(r["sigma"]) == sigma and r["seed"] == seed and not r["error"]]
    ours = {r["image"]: r for r in rows if r["method"] == "ours" and r["stopper"] == "recorruption"}
    if not ours:
        return [f"sigma {sigma:g}, seed {seed}: no rows"]
    psnr = np.array([float(r["psnr"]) for r in ours.values()])
    gap = np.array([float(r["gap"]) for r in ours.values()])
    lines = [f"sigma {sigma:g}, seed {seed}: ours {psnr.mean():.2f} dB over {len(ours)} images, gap mean / median / "
             f"max {gap.mean():.2f} / {np.median(gap):.2f} / {gap.max():.2f}; stops "
             f"{min(int(r['stop_iteration']) for r in ours.values())}-"
             f"{max(int(r['stop_iteration']) for r in ours.values())}"]
    for method in BASELINES:
        other = {r["image"]: float(r["psnr"]) for r in rows if r["method"] == method}
        paired = np.array([float(ours[image]["psnr"]) - value for image, value in other.items() if image in ours])
        if paired.size:
            lines.append(f"  {method:9s} {np.mean(list(other.values())):.2f} dB; ours minus it {paired.mean():+.2f} "
                         f"[{paired.min():+.2f}, {paired.max():+.2f}]")
    stoppers = sorted({r["stopper"] for r in rows if r["method"] == "ours"})
    for stopper in stoppers:
        gaps = np.array([float(r["gap"]) for r in rows if r["method"] == "ours" and r["stopper"] == stopper])
        lines.append(f"  gap of {stopper:13s} median / p90 / max {np.median(gaps):.2f} / "
                     f"{np.percentile(gaps, 90):.2f} / {gaps.max():.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--sigma", default="15,25,50")
    parser.add_argument("--seeds", default="1,2")
    args = parser.parse_args()
    with open(args.folder / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for sigma in (float(s) for s in args.sigma.split(",")):
        for seed in args.seeds.split(","):
            print("\n".join(block(rows, sigma, seed)))


if __name__ == "__main__":
    main()
