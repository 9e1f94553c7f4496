"""Should ensemble members stop later than their own minimum? (issue 13, a probe)

Each member of an ensemble stops at the minimum of its own validation error, the best iterate for a single run.
An average of K members has less variance than any one of them, so it may afford later, less smoothed members.
This probe runs the K members of each crop (package defaults, σ estimated) with a long patience
(``--run-patience``), keeps each member's returned stream (the EMA output) every ``--every`` iterations of the
final stage, replays the package's stop (patience 150) on each member's recorded validation error to find its own
minimum ``t_i``, and scores the average of the members' iterates at ``t_i + Δ`` for ``Δ = 0, every, 2 every, …``,
and at ``t_i + ρ t_i`` for a few fractions ``ρ`` (declipped, as the package returns them):

- ``truth``: the PSNR of that average against the clean crop (evaluation only);
- ``pooled``: the ensemble's own estimate of its error at that ``Δ``, from the members' recorruption estimates and
  their spread (:func:`dipddpm.ensemble.ensemble_mse`) — a choice of ``Δ`` by its minimum needs no clean image.

Rows (one per crop, σ and K in 1, 2, 4, …) hold both curves; ``--report`` prints the mean PSNR at ``Δ = 0``, at each
fixed ``Δ``, at the pooled choice and at the best ``Δ`` per crop (an oracle).

Usage:
    python benchmarks/ensemble_stop_probe.py --images DIR [--images DIR] [--limit 4] [--crop 128] [--sigma 25,50]
        [--seed 0] [--members 4] [--run-patience 600] [--every 10] [--threads 2] --out FILE.jsonl [--resume]
    python benchmarks/ensemble_stop_probe.py --report FILE.jsonl [FILE.jsonl ...]
"""

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dipddpm.bench.data import list_images, load_crop, make_noisy
from dipddpm.bench.report import read_records, replay_minimum
from dipddpm.bench.scripts import open_rows
from dipddpm.config import DenoiserConfig
from dipddpm.ensemble import ensemble_mse
from dipddpm.metrics import tensor_psnr
from dipddpm.restore import declipped, draw_noise, ensemble_members
from dipddpm.stopping import Observation, RecorruptionStopper

STOP_PATIENCE = 150
FRACTIONS = (0.05, 0.1, 0.15, 0.2, 0.3)


class FinalStageStreams:
    """Keep every ``every``-th output of the final stage, one dict per run (a run starts at iteration 1)."""

    def __init__(self, every: int):
        self.every = every
        self.runs: list[dict[int, torch.Tensor]] = []

    def __call__(self, info) -> None:
        if info.iteration == 1:
            self.runs.append({})
        if info.stage == info.num_stages - 1 and info.iteration % self.every == 0:
            self.runs[-1][info.iteration] = info.output.detach().float().clone()


def _estimate(y, fit, z, sigma, ratio) -> float:
    stopper = RecorruptionStopper(y, z, sigma, ratio, clipped=True, declipped=True)
    stopper.observe(Observation(iteration=1, output=fit, raw=fit, stage=0, final_stage=True, schedule_finished=False))
    return stopper.estimated_mse


def probe(members, streams, y, x, every: int, run_patience: int) -> list[dict]:
    """Per prefix K: the truth and the pooled estimate of the members' average at ``t_i + Δ``."""
    ratio = members[0][1].config["staging"]["ratio"]
    seeds = {m.pair: m.seed for m, _ in members if m.sign == 1}
    own, curves = [], []
    for (member, result), stream in zip(members, streams, strict=True):
        stop_index, _ = replay_minimum(result.history["recorruption"], STOP_PATIENCE, result.history["stage"])
        own.append(stop_index + 1)
        z = member.sign * draw_noise(y.shape, seeds[member.pair])
        points = sorted(stream)
        start = min(points, key=lambda t: abs(t - own[-1]))
        curve = []
        for t in points[points.index(start):]:
            fit = stream[t]
            curve.append((declipped(fit, result.sigma_used), _estimate(y, fit, z, result.sigma_used, ratio)))
        curves.append(curve)
    deltas = range(min(len(c) for c in curves))
    rows = []
    k = 1
    while k <= len(members):
        truth, pooled = [], []
        for d in deltas:
            images = [c[d][0] for c in curves[:k]]
            truth.append(tensor_psnr(torch.stack(images).mean(dim=0), x))
            mse = ensemble_mse([c[d][1] for c in curves[:k]], images)
            pooled.append(mse)
        by_fraction = {}
        for q in FRACTIONS:
            steps = [round(q * t / every) for t in own[:k]]
            if all(d < len(c) for d, c in zip(steps, curves[:k], strict=True)):
                images = [c[d][0] for d, c in zip(steps, curves[:k], strict=True)]
                by_fraction[str(q)] = tensor_psnr(torch.stack(images).mean(dim=0), x)
        rows.append({"members_used": k, "own_stops": own[:k], "deltas": [d * every for d in deltas],
                     "truth": truth, "pooled_mse": pooled, "fraction_truth": by_fraction, "run_patience": run_patience})
        k *= 2
    return rows


def measure(args) -> None:
    out = Path(args.out)
    done = open_rows(out, args.resume, "benchmarks/ensemble_stop_probe.py")
    torch.set_num_threads(args.threads)
    base_config = DenoiserConfig()
    config = replace(base_config, ensemble=args.members,
                     stopping=replace(base_config.stopping, patience=args.run_patience))
    for path in [p for folder in args.images for p in list_images(folder, args.limit)]:
        name, clean = load_crop(path, args.crop)
        for sigma255 in args.sigma:
            if (name, sigma255, args.seed) in done:
                continue
            noisy = make_noisy(clean, name, sigma255, args.seed)
            y = torch.from_numpy(np.ascontiguousarray(noisy.transpose(2, 0, 1))).float()[None]
            x = torch.from_numpy(np.ascontiguousarray(clean.transpose(2, 0, 1))).float()[None]
            streams = FinalStageStreams(args.every)
            members = ensemble_members(y, None, config=config, seed=args.seed, callbacks=[streams])
            with out.open("a") as f:
                for row in probe(members, streams.runs, y, x, args.every, args.run_patience):
                    row = {"image": name, "sigma": sigma255, "seed": args.seed, "crop": args.crop, **row}
                    f.write(json.dumps(row) + "\n")
                    best = int(np.argmax(row["truth"]))
                    print(f"{name} σ={sigma255:g} K={row['members_used']}: Δ=0 {row['truth'][0]:.2f} dB, best "
                          f"Δ={row['deltas'][best]} {row['truth'][best]:.2f}, pooled choice "
                          f"Δ={row['deltas'][int(np.argmin(row['pooled_mse']))]}", flush=True)


def report(rows: list[dict], fixed=(0, 20, 50, 100, 150, 200, 300), fractions=FRACTIONS) -> str:
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["sigma"], r["members_used"]), []).append(r)
    lines = ["| σ | K | n | " + " | ".join(f"Δ = {d}" for d in fixed) + " | pooled choice (Δ median) | best Δ per crop "
             "(oracle) |", "|---|---|---|" + "---|" * (len(fixed) + 2)]
    for (sigma, k), rs in sorted(groups.items()):
        cells = []
        for d in fixed:
            values = [r["truth"][r["deltas"].index(d)] - r["truth"][0] for r in rs if d in r["deltas"]]
            cells.append(f"{statistics.mean(values):+.2f} ({len(values)})" if values else "")
        chosen = [int(np.argmin(r["pooled_mse"])) for r in rs]
        pooled = [r["truth"][i] - r["truth"][0] for r, i in zip(rs, chosen, strict=True)]
        oracle = [max(r["truth"]) - r["truth"][0] for r in rs]
        median_choice = statistics.median(r["deltas"][i] for r, i in zip(rs, chosen, strict=True))
        lines.append(f"| {sigma:g} | {k} | {len(rs)} | " + " | ".join(cells)
                     + f" | {statistics.mean(pooled):+.2f} (Δ {median_choice:.0f}) | {statistics.mean(oracle):+.2f} |")
    lines += ["", "Members each at ``t_i + ρ t_i`` (the nearest kept iterate), mean PSNR against Δ = 0:", "",
              "| σ | K | n | " + " | ".join(f"ρ = {q:g}" for q in fractions) + " |",
              "|---|---|---|" + "---|" * len(fractions)]
    for (sigma, k), rs in sorted(groups.items()):
        cells = []
        for q in fractions:
            values = [r["fraction_truth"][str(q)] - r["truth"][0] for r in rs if str(q) in r.get("fraction_truth", {})]
            cells.append(f"{statistics.mean(values):+.2f} ({len(values)})" if values else "")
        lines.append(f"| {sigma:g} | {k} | {len(rs)} | " + " | ".join(cells) + " |")
    base = {(s, k): statistics.mean(r["truth"][0] for r in rs) for (s, k), rs in groups.items()}
    lines.append("")
    lines.append("Δ = 0 (each member at its own stop), mean PSNR: "
                 + ", ".join(f"σ {s:g} K {k}: {v:.2f}" for (s, k), v in sorted(base.items())))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", action="append", default=[])
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma", default="25,50")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--run-patience", type=int, default=600)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--report", nargs="+", type=Path)
    args = parser.parse_args()
    if args.report:
        print(report([r for path in args.report for r in read_records(path) if "image" in r]))
        return
    args.sigma = [float(s) for s in args.sigma.split(",")]
    measure(args)


if __name__ == "__main__":
    main()
