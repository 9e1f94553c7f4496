"""One table from several benchmark result folders: mean PSNR per method, stopper and sigma, with the gap.

Each folder is the ``--out`` of a ``dipddpm bench`` run (its ``rows.jsonl``). Rows of the same
(method, stopper, sigma) from different folders are pooled; ``n`` says how many there are, so an
incomplete run is visible. Cells read ``PSNR (gap mean / gap max, n)``; one-shot methods have no gap.

Usage: python benchmarks/collect.py [--stopper NAME] RESULTS_DIR [RESULTS_DIR ...]
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def collect(folders: list[str], stopper: str | None) -> str:
    """Return the markdown table for the rows of ``folders`` (only ``stopper`` and one-shot rows if given)."""
    cells = defaultdict(list)
    sigmas = set()
    for folder in folders:
        for line in (Path(folder) / "rows.jsonl").read_text().splitlines():
            row = json.loads(line)
            if row.get("error") or (stopper and row["stopper"] not in (stopper, "-")):
                continue
            cells[(row["method"], row["stopper"], row["sigma"])].append(row)
            sigmas.add(row["sigma"])
    sigmas = sorted(sigmas)
    header = "| method | stopper | " + " | ".join(f"σ={s:g}" for s in sigmas) + " |"
    lines = [header, "|---|---|" + "---|" * len(sigmas)]
    for method, stop in sorted({(m, s) for m, s, _ in cells}):
        out = []
        for sigma in sigmas:
            rows = cells.get((method, stop, sigma), [])
            if not rows:
                out.append("")
                continue
            psnr = np.mean([r["psnr"] for r in rows])
            gaps = [r["gap"] for r in rows if r["gap"] is not None]
            out.append(f"{psnr:.2f} ({np.mean(gaps):.2f} / {np.max(gaps):.2f}, {len(rows)})" if gaps
                       else f"{psnr:.2f} ({len(rows)})")
        lines.append(f"| {method} | {stop} | " + " | ".join(out) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stopper", help="keep only this stopper's rows (and one-shot methods)")
    parser.add_argument("folders", nargs="+")
    args = parser.parse_args()
    print(collect(args.folders, args.stopper))
