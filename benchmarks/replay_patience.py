"""Replay the recorruption stopper with other patience values on recorded trajectories.

The benchmark stores each DIP trajectory's full validation-error and PSNR histories (curves.jsonl), so a
stopping rule can be re-run offline: the stop is the first iteration that is P iterations past the
running minimum (counting from the final stage), the returned iterate is that minimum. Prints mean PSNR,
mean/max gap to the oracle and mean iterations for each P. Trajectories in the benchmark end 300
iterations after the last stopper fired (and the oracle peak), so patience values above 300 can be
cut short; such rows are counted in the last column.

Usage: python benchmarks/replay_patience.py RESULTS_DIR [RESULTS_DIR ...]
"""

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from dipddpm.bench.report import read_records

PATIENCES = (50, 100, 150, 200, 300, 500)


def replay(validation: list, psnr: list, stage: list, patience: int) -> tuple[int, float, int]:
    """Return (returned iteration, its PSNR, iterations needed) for one patience value."""
    final = max(stage)
    best, best_i, start = np.inf, 0, None
    for i, (v, s) in enumerate(zip(validation, stage, strict=True)):
        if v is not None and v < best:
            best, best_i = v, i
        if s == final and start is None:
            start = i
        if start is not None and i - max(start, best_i) >= patience:
            return best_i + 1, psnr[best_i], i + 1
    return best_i + 1, psnr[best_i], -len(validation)  # negative: the recording ended first


def main(folders: list[str]) -> None:
    table = defaultdict(lambda: defaultdict(list))
    for folder in folders:
        for record in read_records(Path(folder) / "curves.jsonl"):
            h = record.get("histories", {})
            if "recorruption" not in h:
                continue
            peak = max(h["oracle"])
            for p in PATIENCES:
                _, value, needed = replay(h["recorruption"], h["oracle"], h["stage"], p)
                table[(record["method"], record["sigma"])][p].append((value, peak - value, abs(needed), needed < 0))
    header = " | ".join(f"P={p}: PSNR / mean gap / max gap / iterations" for p in PATIENCES)
    print(f"| method | sigma | {header} | cut short (per P) |")
    print("|---|---|" + "---|" * len(PATIENCES) + "---|")
    for (method, sigma), by_p in sorted(table.items()):
        cells = []
        for p in PATIENCES:
            a = np.array(by_p[p])
            cells.append(f"{a[:, 0].mean():.2f} / {a[:, 1].mean():.2f} / {a[:, 1].max():.2f} / {a[:, 2].mean():.0f}")
        cut = "/".join(str(int(np.array(by_p[p])[:, 3].sum())) for p in PATIENCES)
        print(f"| {method} | {sigma:g} | " + " | ".join(cells) + f" | {cut} |")


if __name__ == "__main__":
    main(sys.argv[1:])
