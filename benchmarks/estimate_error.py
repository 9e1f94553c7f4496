"""Where the self-estimated PSNR goes wrong (issue 15, part 3), from the rows of ``benchmarks/ensemble.py``.

A member's estimate of its error is ``v − offset`` (validation error less the known noise energy of the
validation copy). With the clean image (evaluation only) its error splits exactly into

- the σ part: ``mean(n²) − s_e²``, the true energy of the observation's (clipped) noise less the one the
  offset assumed from σ used (``s_e² = offset − (σ/a)² mean(z²)``);
- the cross part: ``−2 s (σ/a) mean(n z)``, the noise of ``y`` against the member's ``±z``;
- the rest: ``−2 mean(e (n − s (σ/a) z))`` (error against validation noise) and the selection at the minimum.

The ensemble's estimate (:func:`dipddpm.ensemble.ensemble_mse`) inherits the members' errors averaged: in
a pair the cross parts cancel. The report gives, for K = 1, 2 and 4 members, the error of the estimate in
dB as measured (σ estimated) and as it would be with σ known (σ part replaced by the sampling fluctuation
``mean(n²) − s_e²(σ_true)``, ``s_e²`` scaled by ``(σ_true/σ_used)²`` and the cross part by
``σ_true/σ_used``), and each part's share, in units of the true MSE.

This split is how the clipping bias of the old offset (the second moment at the fit, which estimates the
clipped mean) and the size of the σ part were found (``docs/method.md`` 4c, 4e); the seed-0 rows of
``benchmarks/results/ensemble/`` were recorded with that old offset. ``benchmarks/estimate_check.py`` applies the
current estimator to saved fits, and ``benchmarks/ensemble.py --sigma-given`` measures it in the package.

Usage:
    python benchmarks/estimate_error.py FILE.jsonl [FILE.jsonl ...]
"""

import argparse
import math
import statistics
from pathlib import Path

import numpy as np

from dipddpm.bench.report import nearest_rank, read_records
from dipddpm.restore import draw_noise

RATIO = 0.25


def _db(estimate_mse: float, true_mse: float) -> float:
    """PSNR error in dB of an MSE estimate (+: the estimate is optimistic); +inf when it is not positive."""
    return math.inf if estimate_mse <= 0 else 10 * math.log10(true_mse / estimate_mse)


def member_parts(member: dict, sigma_true: float, sigma_used: float, shape: tuple) -> dict:
    """The parts of one member's estimate error (MSE units), as measured and with σ known."""
    z = draw_noise(shape, member["pair_seed"]).double().numpy()
    assumed = member["offset"] - (sigma_used / RATIO) ** 2 * float(np.mean(z ** 2))
    sigma_part = member["true_noise_energy"] - assumed
    total = member["validation_mse"] - member["offset"] - member["true_mse"]
    rest = total - sigma_part - member["true_cross"]
    scale = sigma_true / sigma_used
    known = (member["true_noise_energy"] - assumed * scale ** 2) + member["true_cross"] * scale + rest
    return {"sigma": sigma_part, "cross": member["true_cross"], "rest": rest, "total": total, "known": known}


def analyse(rows: list[dict], shape: tuple) -> str:
    lines = ["| K | σ | n | estimate − true, dB, σ estimated: median abs / 90th pct abs / within 1 dB | the same "
             "with σ known | σ part / cross part / rest, median abs, × true MSE |", "|---|---|---|---|---|---|"]
    table: dict = {}
    for row in rows:
        members = row.get("members")
        if not members:
            continue
        seeds = {m["pair"]: m["seed"] for m in members if m["sign"] == 1}
        sigma_true, sigma_used = row["sigma"] / 255, row["sigma_used"]
        parts = [member_parts({**m, "pair_seed": seeds[m["pair"]]}, sigma_true, sigma_used, shape) for m in members]
        for k in (1, 2, 4):
            if k > len(members):
                continue
            # the ensemble's estimate error is the mean of its members' (ensemble_mse's spread term is exact)
            chosen = parts[:k]
            true_mse = row["true_ensemble_mse"][k]
            est = {key: true_mse + statistics.mean(p[key] for p in chosen) for key in ("total", "known")}
            share = {key: abs(statistics.mean(p[key] for p in chosen)) / true_mse for key in ("sigma", "cross", "rest")}
            table.setdefault((k, row["sigma"]), []).append(
                {"measured": _db(est["total"], true_mse), "known": _db(est["known"], true_mse), **share})
    for (k, sigma), items in sorted(table.items()):
        cells = []
        for key in ("measured", "known"):
            errors = [abs(i[key]) for i in items]
            p90 = nearest_rank(errors, 0.9)
            within = sum(e <= 1 for e in errors)
            cells.append(f"{statistics.median(errors):.2f} / {p90:.2f} / {within}/{len(errors)}")
        shares = " / ".join(f"{statistics.median(i[key] for i in items):.2f}" for key in ("sigma", "cross", "rest"))
        lines.append(f"| {k} | {sigma:g} | {len(items)} | {cells[0]} | {cells[1]} | {shares} |")
    return "\n".join(lines)


def with_ensemble_truth(rows: list[dict]) -> list[dict]:
    """Attach the true MSE of each prefix ensemble (from its PSNR row) to the row that holds the members."""
    truth: dict = {}
    for row in rows:
        if row.get("method") == "ours":
            truth.setdefault((row["image"], row["sigma"], row["seed"]), {})[row["members_used"]] = \
                10 ** (-row["psnr"] / 10)
    return [{**row, "true_ensemble_mse": truth[(row["image"], row["sigma"], row["seed"])]}
            for row in rows if row.get("members")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--crop", type=int, default=128)
    args = parser.parse_args()
    rows = [r for path in args.files for r in read_records(path) if "image" in r]
    print(analyse(with_ensemble_truth(rows), (1, 3, args.crop, args.crop)))


if __name__ == "__main__":
    main()
