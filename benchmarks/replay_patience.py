"""Replay the recorruption stopper with other patience values, or checked every k steps, on recorded trajectories.

The benchmark stores each DIP trajectory's full validation-error and PSNR histories (curves.jsonl), so a
stopping rule can be re-run offline with the package's own rule (`dipddpm.stopping.patience_exhausted`):
fire when `t - max(t0, t*) >= P` (t0 the start of the final stage, t* the running minimum), return the
minimum. Prints mean PSNR, mean/max gap to the oracle and mean iterations needed for each P.
Trajectories in the benchmark end 300 iterations after the last stopper fired (and the oracle peak), so
larger P can be cut short; such rows are counted in the last column.

``--every k`` replays a stopper that looks only at every k-th iteration (k, 2k, ...): the saving of
checking less often (no per-step validation error, no per-step host synchronisation on a GPU) against the
iterate it then returns.

Usage: python benchmarks/replay_patience.py [--patience 50,100,...] [--every 1,5,...] [--method NAME] RESULTS_DIR [...]
"""

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from dipddpm.bench.report import read_records, replay_minimum

PATIENCES = (50, 100, 150, 200, 300)


def replay(validation: list, psnr: list, stage: list, patience: int, every: int = 1) -> tuple[int, float, int]:
    """Return (returned iteration, its PSNR, iterations needed; negative if the recording ended first).

    The stopper sees iterations ``every, 2 every, ...`` only."""
    best, fired = replay_minimum(validation, patience, stage, every)
    return best + 1, psnr[best], -len(validation) if fired is None else fired + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--patience", help="comma-separated patience values (default: 50,100,150,200,300)")
    parser.add_argument("--every", help="comma-separated check intervals, at the first patience value")
    parser.add_argument("--method", help="only this method")
    args = parser.parse_args()
    rules = PATIENCES if not args.patience else tuple(int(p) for p in args.patience.split(","))
    if args.every:
        rules = tuple((rules[0], int(k)) for k in args.every.split(","))
    else:
        rules = tuple((p, 1) for p in rules)
    table = defaultdict(lambda: defaultdict(list))
    for folder in args.folders:
        for record in read_records(Path(folder) / "curves.jsonl"):
            h = record.get("histories", {})
            if "recorruption" not in h or (args.method and record["method"] != args.method):
                continue
            peak = max(h["oracle"])
            for rule in rules:
                _, value, needed = replay(h["recorruption"], h["oracle"], h["stage"], *rule)
                table[(record["method"], record["sigma"])][rule].append((value, peak - value, abs(needed), needed < 0))
    print("cells: mean PSNR / mean gap / max gap / mean iterations needed")
    print("| method | sigma | n | " + " | ".join(f"P={p}" + (f", every {k}" if k > 1 or args.every else "")
                                                for p, k in rules) + " | cut short (per rule) |")
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
