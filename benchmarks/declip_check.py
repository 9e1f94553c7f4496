"""Declipping (``DenoiserConfig.declip``): PSNR of the returned fits before and after ``m^{-1}``, on saved runs.

Reads the ``.npz`` files of ``benchmarks/ensemble.py --save-outputs`` (noisy and clean crop, the members'
returned fits, recorded before declipping existed) and scores, for the first 1, 2 and 4 members: the average of
the fits as returned then, and the average of the declipped fits (each member mapped through
:func:`dipddpm.restore.declipped` with the σ the package estimates from the noisy crop — what the package now
returns). ``--bm3d`` adds CBM3D with the true σ, as it is and declipped the same way with the true σ (Foi's
recipe for clipped data), so that the comparison stays fair. The clean crop only scores.

Usage:
    python benchmarks/declip_check.py --outputs DIR [--bm3d] [--json FILE]
"""

import argparse
import json
import re
import statistics
from pathlib import Path

import numpy as np
import torch

from dipddpm.bench.baselines import bm3d_available, bm3d_denoise
from dipddpm.metrics import psnr
from dipddpm.noise import clipped_mean_inverse, estimate_sigma


def score(path: Path, with_bm3d: bool) -> list[dict]:
    data = np.load(path)
    noisy, clean = data["noisy"].astype(np.float64), data["clean"].astype(np.float64)
    fits = data["members"].astype(np.float64)
    sigma255 = float(re.search(r"-s([0-9.]+)-seed", path.name).group(1))
    seed = int(re.search(r"-seed(\d+)\.npz$", path.name).group(1))
    image = path.name[:path.name.index(f"-s{sigma255:g}-seed")].replace("-", "/", 1)
    sigma_used = estimate_sigma(noisy, channel_axis=-1)
    base = {"image": image, "sigma": sigma255, "seed": seed, "sigma_used": sigma_used}
    rows = []
    for k in (1, 2, 4):
        if k <= len(fits):
            raw = fits[:k].mean(axis=0)
            fixed = np.mean([clipped_mean_inverse(f, sigma_used) for f in fits[:k]], axis=0)
            rows.append({**base, "method": f"ours-K{k}", "psnr_raw": psnr(raw, clean), "psnr": psnr(fixed, clean)})
    if with_bm3d and bm3d_available():
        out = np.clip(bm3d_denoise(noisy, sigma255 / 255, -1), 0, 1)
        rows.append({**base, "method": "cbm3d", "psnr_raw": psnr(out, clean),
                     "psnr": psnr(clipped_mean_inverse(out, sigma255 / 255), clean)})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| method | σ | n | PSNR as returned before | declipped | gain: mean [min, max] |",
             "|---|---|---|---|---|---|"]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["method"], r["sigma"]), []).append(r)
    for (method, sigma), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        gains = [r["psnr"] - r["psnr_raw"] for r in rs]
        lines.append(f"| {method} | {sigma:g} | {len(rs)} | {statistics.mean(r['psnr_raw'] for r in rs):.2f} | "
                     f"{statistics.mean(r['psnr'] for r in rs):.2f} | {statistics.mean(gains):+.2f} "
                     f"[{min(gains):+.2f}, {max(gains):+.2f}] |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outputs", type=Path, required=True)
    parser.add_argument("--bm3d", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [r for path in sorted(args.outputs.glob("*.npz")) for r in score(path, args.bm3d)]
    if args.json:
        args.json.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
