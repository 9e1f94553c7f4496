"""Inpainting and super-resolution: the automatic stop against the oracle of the same run (issue 6).

For each clean centre crop (the first N images of a folder): inpainting with 50% of the pixels missing
(a random mask per image, all channels of a pixel together) and x4 super-resolution (the crop box-averaged
over 4x4 blocks, i.e. `dipddpm.physics.Downsample(4)`), both noise-free apart from 8-bit quantisation.
One trajectory per row with the default settings, decided by `auto` (the held-out stopper: no sigma is
given), watched by ES-WMV; the oracle (best iterate against the clean crop) and the scores are evaluation
only. Classical baselines: biharmonic inpainting and bicubic upscaling (scikit-image).

Usage: python benchmarks/inverse.py --images DIR [--limit 4] [--crop 128] [--max-iter 3000] [--seed 1]
                                    [--out benchmarks/results/inverse-128]
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from skimage.restoration import inpaint_biharmonic
from skimage.transform import resize

from dipddpm.bench.data import list_images, load_clean, noise_seed
from dipddpm.bench.methods import end_when_all_fired, to_tensor
from dipddpm.bench.scripts import script_meta, write_script_results
from dipddpm.config import DenoiserConfig
from dipddpm.metrics import psnr
from dipddpm.physics import Downsample, PixelMask
from dipddpm.restore import restore_tensor


def _quantise(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255) / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True)
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--max-iter", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/inverse-128"))
    args = parser.parse_args()
    config = DenoiserConfig()
    config = replace(config, train=replace(config.train, max_iter=args.max_iter))
    rows = []
    for path in list_images(args.images, args.limit):
        name = f"{Path(args.images).name}/{path.stem}"
        clean = load_clean(path, args.crop)
        clean = np.repeat(clean[..., None], 3, axis=-1) if clean.ndim == 2 else clean
        rng = np.random.default_rng(noise_seed(name, 0, args.seed))
        keep = rng.random(clean.shape[:2]) < 0.5
        down = Downsample(4)
        masked = _quantise(clean * keep[..., None])
        small = _quantise(down.A(to_tensor(clean))[0].permute(1, 2, 0).double().numpy())
        tasks = {
            "inpainting 50%": (PixelMask(torch.from_numpy(keep)), masked,
                               inpaint_biharmonic(masked, ~keep, channel_axis=-1), "biharmonic"),
            "x4 super-resolution": (down, small, resize(small, clean.shape, order=3), "bicubic"),
        }
        for task, (physics, observed, baseline, baseline_name) in tasks.items():
            start = time.perf_counter()
            run = restore_tensor(to_tensor(observed), None, config=config, stopper="oracle",
                                 watch=("held-out", "es-wmv"), reference=to_tensor(clean), seed=args.seed,
                                 physics=physics, callbacks=(end_when_all_fired,))
            row = {"image": name, "task": task, "crop": args.crop, "seed": args.seed,
                   "oracle_psnr": run.evaluation["oracle_psnr"], "oracle_iteration": run.evaluation["oracle_iteration"],
                   "ours_psnr": run.stoppers["held-out"]["ref_psnr"],
                   "ours_stop": run.stoppers["held-out"]["best_iteration"],
                   "eswmv_psnr": run.stoppers["es-wmv"]["ref_psnr"], "eswmv_fired": run.stoppers["es-wmv"]["fired_at"],
                   "iterations_run": run.iterations_run, "seconds": time.perf_counter() - start,
                   "baseline": baseline_name, "baseline_psnr": psnr(np.clip(baseline, 0, 1), clean)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = ["| image | task | ours (gap, stop) | ES-WMV | oracle (iteration) | baseline |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        eswmv = "-" if r["eswmv_psnr"] is None else f"{r['eswmv_psnr']:.2f}"
        eswmv += "" if r["eswmv_fired"] else " (not fired)"
        lines.append(f"| {r['image']} | {r['task']} | {r['ours_psnr']:.2f} ({r['oracle_psnr'] - r['ours_psnr']:.2f}, "
                     f"{r['ours_stop']}) | {eswmv} | {r['oracle_psnr']:.2f} ({r['oracle_iteration']}) | "
                     f"{r['baseline_psnr']:.2f} ({r['baseline']}) |")
    write_script_results(args.out / "rows.json", args.out / "summary.md", script_meta("benchmarks/inverse.py"),
                         rows, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
