"""One table from several benchmark result folders: mean PSNR per method, stopper and sigma, with the gap.

Each folder is the ``--out`` of a ``dipddpm bench`` run (its ``rows.jsonl``). Rows of the same
(method, stopper, sigma) from different folders are pooled; ``n`` says how many there are, so an
incomplete run is visible. Cells read ``PSNR (gap mean / gap max, n)``; one-shot methods have no gap.

Usage: python benchmarks/collect.py [--stopper NAME] RESULTS_DIR [RESULTS_DIR ...]
"""

import argparse
import math
from pathlib import Path

from dipddpm.bench.report import read_records, summarise


def collect(folders: list[str], stopper: str | None) -> str:
    """Return the markdown table for the rows of ``folders`` (only ``stopper`` and one-shot rows if given)."""
    rows = [row for folder in folders for row in read_records(Path(folder) / "rows.jsonl")
            if not stopper or row.get("stopper") in (stopper, "-")]
    means = summarise(rows)["means"]
    sigmas = sorted({sigma for by_sigma in means.values() for sigma in by_sigma})
    header = "| method | stopper | " + " | ".join(f"σ={s:g}" for s in sigmas) + " |"
    lines = [header, "|---|---|" + "---|" * len(sigmas)]
    for (method, stop), by_sigma in sorted(means.items()):
        out = []
        for sigma in sigmas:
            m = by_sigma.get(sigma)
            if m is None:
                out.append("")
            elif math.isnan(m["gap"]):
                out.append(f"{m['psnr']:.2f} ({m['n']})")
            else:
                out.append(f"{m['psnr']:.2f} ({m['gap']:.2f} / {m['gap_max']:.2f}, {m['n']})")
        lines.append(f"| {method} | {stop} | " + " | ".join(out) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stopper", help="keep only this stopper's rows (and one-shot methods)")
    parser.add_argument("folders", nargs="+")
    args = parser.parse_args()
    print(collect(args.folders, args.stopper))
