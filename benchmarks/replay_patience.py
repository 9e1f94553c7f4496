"""Replay the recorruption stopper with other patience values on recorded trajectories.

The benchmark stores each DIP trajectory's full validation-error and PSNR histories (curves.jsonl), so a
stopping rule can be re-run offline with the package's own rule (`dipddpm.stopping.patience_exhausted`):
fire when `t - max(t0, t*) >= P` (t0 the start of the final stage, t* the running minimum), return the
minimum. Prints mean PSNR, mean/max gap to the oracle and mean iterations needed for each P.
Trajectories in the benchmark end 300 iterations after the last stopper fired (and the oracle peak), so
larger P can be cut short; such rows are counted in the last column.

Usage: python benchmarks/replay_patience.py [--patience 50,100,...] [--method NAME] RESULTS_DIR [...]
"""

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from dipddpm.bench.report import read_records
from dipddpm.stopping import patience_exhausted

PATIENCES = (50, 100, 150, 200, 300)


def replay(validation: list, psnr: list, stage: list, patience: int) -> tuple[int, float, int]:
    """Return (returned iteration, its PSNR, iterations needed; negative if the recording ended first)."""
    final = max(stage)
    best, best_i, start = np.inf, 0, None
    for i, (v, s) in enumerate(zip(validation, stage, strict=True)):
        if v is not None and v < best:
            best, best_i = v, i
        if s == final and start is None:
            start = i
        if start is not None and patience_exhausted(i + 1, best_i + 1, start + 1, patience):
            return best_i + 1, psnr[best_i], i + 1
    return best_i + 1, psnr[best_i], -len(validation)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--patience", help="comma-separated patience values (default: 50,100,150,200,300)")
    parser.add_argument("--method", help="only this method")
    args = parser.parse_args()
    rules = PATIENCES if not args.patience else tuple(int(p) for p in args.patience.split(","))
    table = defaultdict(lambda: defaultdict(list))
    for folder in args.folders:
        for record in read_records(Path(folder) / "curves.jsonl"):
            h = record.get("histories", {})
            if "recorruption" not in h or (args.method and record["method"] != args.method):
                continue
            peak = max(h["oracle"])
            for rule in rules:
                _, value, needed = replay(h["recorruption"], h["oracle"], h["stage"], rule)
                table[(record["method"], record["sigma"])][rule].append((value, peak - value, abs(needed), needed < 0))
    print("cells: mean PSNR / mean gap / max gap / mean iterations needed")
    print("| method | sigma | n | " + " | ".join(f"P={p}" for p in rules) + " | cut short (per rule) |")
    print("|---|---|---|" + "---|" * len(rules) + "---|")
    for (method, sigma), by_rule in sorted(table.items()):
        cells = []
        for rule in rules:
            a = np.array(by_rule[rule])
            cells.append(f"{a[:, 0].mean():.2f} / {a[:, 1].mean():.2f} / {a[:, 1].max():.2f} / {a[:, 2].mean():.0f}")
        cut = "/".join(str(int(np.array(by_rule[r])[:, 3].sum())) for r in rules)
        print(f"| {method} | {sigma:g} | {len(by_rule[rules[0]])} | " + " | ".join(cells) + f" | {cut} |")


if __name__ == "__main__":
    main()
