"""The self-estimated PSNR, recomputed with the package's estimator on saved runs (issue 15, part 3).

Reads the ``.npz`` files of ``benchmarks/ensemble.py --save-outputs`` (noisy and clean crop, the members'
returned images: declipped fits, ``m^{-1}(fit)``) and the members' seeds and signs from its rows, maps each image
back to its fit (``m(image)``, :func:`dipddpm.noise.clipped_noise_moments`; exact to 1e-7 for fits inside [0, 1]),
and applies the estimator of
:class:`dipddpm.stopping.RecorruptionStopper` (clip-aware offset, declipped result) to each member's fit,
once with the σ the run used (estimated) and once with the true σ (what a user who knows σ gets), each with
and without the cross term estimated from a pilot (``correct_cross``, the default since the tenth session), then
:func:`dipddpm.ensemble.ensemble_mse` to the first 1, 2 and 4 members. Each estimate is compared with the true
PSNR of the declipped result (evaluation only). The range is the estimator's ``±2`` standard deviations
without the σ-error term (σ known).

Usage:
    python benchmarks/estimate_check.py --outputs DIR --rows FILE.jsonl [FILE.jsonl ...]
"""

import argparse
import itertools
import math
import statistics
from pathlib import Path

import numpy as np
import torch

from dipddpm.bench.methods import to_tensor
from dipddpm.bench.report import nearest_rank, read_records
from dipddpm.ensemble import ensemble_mse, ensemble_mse_uncertainty, plan_members
from dipddpm.noise import clipped_noise_moments
from dipddpm.restore import declipped, draw_noise
from dipddpm.stopping import Observation, RecorruptionStopper

RATIO = 0.25


def member_estimate(y: torch.Tensor, fit: torch.Tensor, z: torch.Tensor, sigma: float,
                    correct_cross: bool = True) -> RecorruptionStopper:
    """A recorruption stopper that has seen one observation: ``fit`` against ``y``'s validation copy."""
    stopper = RecorruptionStopper(y, z, sigma, RATIO, clipped=True, declipped=True, correct_cross=correct_cross)
    stopper.observe(Observation(iteration=1, output=fit, raw=fit, stage=0, final_stage=True, schedule_finished=False))
    return stopper


def check(outputs: Path, rows: list[dict]) -> list[dict]:
    found = []
    for row in rows:
        if not row.get("members"):
            continue
        name = f"{row['image'].replace('/', '-')}-s{row['sigma']:g}-seed{row['seed']}.npz"
        if not (outputs / name).exists():
            continue
        data = np.load(outputs / name)
        y, x = to_tensor(data["noisy"].astype(np.float64)), to_tensor(data["clean"].astype(np.float64))
        returned = [m.astype(np.float64) for m in data["members"]]
        seeds = {m["pair"]: m["seed"] for m in row["members"] if m["sign"] == 1}
        plan = plan_members(len(returned), row["seed"])
        for (label, sigma), pilot in itertools.product(
                (("estimated", row["sigma_used"]), ("known", row["sigma"] / 255)), (False, True)):
            fits = [to_tensor(image + clipped_noise_moments(image, row["sigma_used"])[0]) for image in returned]
            stoppers = [member_estimate(y, fit, m.sign * draw_noise(y.shape, seeds[m.pair]), sigma, pilot)
                        for m, fit in zip(plan, fits, strict=True)]
            images = [declipped(fit, sigma) for fit in fits]
            for k in (1, 2, 4):
                if k > len(fits):
                    continue
                chosen = stoppers[:k]
                mse = ensemble_mse([s.estimated_mse for s in chosen], images[:k])
                sd = ensemble_mse_uncertainty(plan[:k], *([getattr(s, key) * s.error_gain for s in chosen] for key in (
                    "noise_cross_sd", "error_cross_sd", "energy_sd", "sigma_sd")))
                truth = float(((torch.stack(images[:k]).mean(dim=0) - x) ** 2).mean())
                found.append({"image": row["image"], "sigma": row["sigma"], "seed": row["seed"], "members": k,
                              "sigma_from": label, "pilot": pilot, "true_psnr": -10 * math.log10(truth),
                              "estimate": -10 * math.log10(mse) if mse > 0 else None,
                              "low": -10 * math.log10(mse + 2 * sd),
                              "high": -10 * math.log10(mse - 2 * sd) if mse > 2 * sd else None})
    return found


def table(found: list[dict]) -> str:
    lines = ["| σ from | cross term | K | σ | n | estimate − true: median abs | 90th pct abs | within 1 dB | "
             "truth in the range |", "|---|---|---|---|---|---|---|---|---|"]
    groups: dict = {}
    for f in found:
        groups.setdefault((f["sigma_from"], f.get("pilot", False), f["members"], f["sigma"]), []).append(f)
    for (source, pilot, k, sigma), items in sorted(groups.items()):
        errors = [math.inf if f["estimate"] is None else abs(f["estimate"] - f["true_psnr"]) for f in items]
        p90 = nearest_rank(errors, 0.9)
        inside = sum(f["low"] <= f["true_psnr"] and (f["high"] is None or f["true_psnr"] <= f["high"]) for f in items)
        lines.append(f"| {source} | {'pilot' if pilot else 'unknown'} | {k} | {sigma:g} "
                     f"| {len(items)} | {statistics.median(errors):.2f} | {p90:.2f} | "
                     f"{sum(e <= 1 for e in errors)}/{len(items)} | {inside}/{len(items)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outputs", type=Path, required=True)
    parser.add_argument("--rows", nargs="+", type=Path, required=True)
    args = parser.parse_args()
    rows = [r for path in args.rows for r in read_records(path) if "image" in r]
    print(table(check(args.outputs, rows)))


if __name__ == "__main__":
    main()
