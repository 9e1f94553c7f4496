"""The ES-WMV benchmark's noisy images through our stop and ES-WMV's, on the same trajectories.

For each image and noise type (gaussian, shot = Poisson, impulse, speckle) the level-4 file of the ES-WMV
dataset (`../shared/data/eswmv/`, see its README) or, for levels 2 and 3 (not in that folder), noise
regenerated with the same formulas (`dipddpm.noise_models`, `ESWMV_LEVELS`) on the full clean image from a
seed derived from (image, noise, level, seed), and the clean image are centre-cropped; ONE trajectory
per row is trained with the noise model's loss, watched by our automatic stopper (recorruption for Gaussian
with sigma estimated; held-out values for the others, which keeps 10% of the values out of training) and by
ES-WMV (window 100, patience 1000); the oracle (best iterate against the clean image) and the scores are
evaluation only. The run ends when both have fired and the oracle has not improved for 300 iterations, or
at the budget. Classical baselines on the same crop: a 3x3 median filter per channel (impulse), Anscombe +
wavelet BayesShrink + the exact unbiased inverse (Poisson), BayesShrink with its own sigma (Gaussian,
speckle).

Without ``--poisson-photons`` the Poisson rows are not stabilised (``photons="off"``: the photon count is not
estimated either). ``--poisson-photons`` runs the Poisson rows only, with the photon count known: the run fits the
Anscombe-stabilised image with staged targets and stops by recorruption
(`dipddpm.physics.AnscombeStabilised`); write those to their own ``--out``.

Rows are written after each run; ``--resume`` keeps the rows already in ``--out`` (same image, noise and
level) and runs only the others.

Usage: python benchmarks/eswmv.py [--data ../shared/data/eswmv] [--limit 4] [--levels 4] [--crop 128]
                                  [--max-iter 1500] [--seed 1] [--out benchmarks/results/eswmv-128] [--resume]
                                  [--poisson-photons]
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.ndimage import median_filter
from skimage.restoration import denoise_wavelet

from dipddpm.bench.data import centre_crop, list_images, load_clean, noise_seed
from dipddpm.bench.methods import end_when_all_fired, to_tensor
from dipddpm.bench.scripts import script_meta, write_script_results
from dipddpm.config import DenoiserConfig
from dipddpm.io import read_image
from dipddpm.metrics import psnr
from dipddpm.noise_models import ESWMV_LEVELS, NOISE_MODELS, anscombe, inverse_anscombe
from dipddpm.restore import PHOTONS_OFF, resolve_stopper, restore_tensor

DEFAULT = DenoiserConfig()
FOLDERS = {"gaussian": "gaussian_4", "poisson": "shot_4", "impulse": "impulse_4", "speckle": "speckle_4"}


def noisy_image(data: Path, path: Path, noise: str, level: int, seed: int) -> np.ndarray:
    """The full-size noisy image: ES-WMV's own file at level 4, regenerated from the clean image otherwise."""
    if level == 4:
        return read_image(data / FOLDERS[noise] / path.name)[..., :3] / 255.0
    clean = read_image(data / "clean" / path.name)[..., :3] / 255.0
    rng = np.random.default_rng(noise_seed(f"{path.stem}|{noise}", level, seed))
    return NOISE_MODELS[noise].sample(clean, ESWMV_LEVELS[noise][level], rng)


def classical(noisy: np.ndarray, noise: str, level: int) -> tuple[str, np.ndarray]:
    """The classical baseline for one noise type and level, on an (H, W, 3) image in [0, 1]."""
    if noise == "impulse":
        return "median 3x3", median_filter(noisy, size=(3, 3, 1))
    if noise == "poisson":
        lam = ESWMV_LEVELS["poisson"][level]
        stabilised = anscombe(noisy * lam)
        smooth = denoise_wavelet(stabilised, sigma=1.0, channel_axis=-1, method="BayesShrink", mode="soft",
                                 rescale_sigma=False)
        return "Anscombe + BayesShrink", inverse_anscombe(smooth) / lam
    return "BayesShrink (own sigma)", denoise_wavelet(noisy, channel_axis=-1, method="BayesShrink", mode="soft",
                                                      rescale_sigma=True)


def _scored(value: float | None, row: dict) -> str:
    return "-" if value is None else f"{value:.2f} ({row['oracle_psnr'] - value:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/eswmv")
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--levels", default="4", help="comma-separated ES-WMV levels (2, 3, 4)")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--max-iter", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/eswmv-128"))
    parser.add_argument("--resume", action="store_true", help="keep the rows already in --out")
    parser.add_argument("--poisson-photons", action="store_true",
                        help="Poisson rows only, photons known: Anscombe-stabilised, staged, recorruption stop")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    rows = json.loads((args.out / "rows.json").read_text())["rows"] if args.resume else []
    done = {(r["image"], r["noise"], r.get("level", 4)) for r in rows}
    meta = script_meta("benchmarks/eswmv.py")
    noises = ["poisson"] if args.poisson_photons else list(FOLDERS)
    for level, path, noise in ((lv, p, n) for lv in levels for p in list_images(Path(args.data) / "clean", args.limit)
                               for n in noises):
        if (path.stem, noise, level) in done:
            continue
        clean = load_clean(path, args.crop)
        noisy = centre_crop(noisy_image(Path(args.data), path, noise, level, args.seed), args.crop)
        y, ref = to_tensor(noisy), to_tensor(clean)
        photons = ESWMV_LEVELS["poisson"][level] if args.poisson_photons else None
        ours = "recorruption" if photons else resolve_stopper("auto", noise)
        start = time.perf_counter()
        run = restore_tensor(y, None, stopper="oracle", watch=(ours, "es-wmv"), reference=ref, seed=args.seed,
                             noise_model=noise, photons=photons or PHOTONS_OFF, callbacks=(end_when_all_fired,),
                             config=replace(DEFAULT, train=replace(DEFAULT.train, max_iter=args.max_iter)))
        seconds = time.perf_counter() - start
        name, baseline = classical(noisy, noise, level)
        row = {"image": path.stem, "noise": noise, "photons": photons, "level": level, "crop": args.crop,
               "seed": args.seed,
               "noisy_psnr": psnr(noisy, clean), "oracle_psnr": run.evaluation["oracle_psnr"],
               "oracle_iteration": run.evaluation["oracle_iteration"], "ours": ours,
               "ours_psnr": run.stoppers[ours]["ref_psnr"], "ours_stop": run.stoppers[ours]["best_iteration"],
               "ours_fired": run.stoppers[ours]["fired_at"], "eswmv_psnr": run.stoppers["es-wmv"]["ref_psnr"],
               "eswmv_stop": run.stoppers["es-wmv"]["best_iteration"],
               "eswmv_fired": run.stoppers["es-wmv"]["fired_at"], "iterations_run": run.iterations_run,
               "seconds": seconds, "classical": name, "classical_psnr": psnr(np.clip(baseline, 0, 1), clean)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        write_results(args.out, meta, rows)
    print(write_results(args.out, meta, rows))


def write_results(out: Path, meta: dict, rows: list[dict]) -> str:
    """Write ``rows.json`` and ``summary.md`` (one table row per run, by level, image and noise); return the table."""
    lines = ["| level | image | noise | noisy | ours (gap) | ES-WMV (gap) | oracle | classical |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (-r.get("level", 4), r["image"], list(FOLDERS).index(r["noise"]))):
        lines.append(f"| {r.get('level', 4)} | {r['image']} | {r['noise']} | {r['noisy_psnr']:.2f} | "
                     f"{_scored(r['ours_psnr'], r)} | "
                     f"{_scored(r['eswmv_psnr'], r)}{'' if r['eswmv_fired'] else ' not fired'} | "
                     f"{r['oracle_psnr']:.2f} | {r['classical_psnr']:.2f} ({r['classical']}) |")
    table = "\n".join(lines)
    write_script_results(out / "rows.json", out / "summary.md", meta, rows, table)
    return table


if __name__ == "__main__":
    main()
