"""Independent runs of one image at once (issues 12 and 13): wall time of an ensemble in worker processes.

For each noisy crop, three restorations with the package defaults (σ estimated), timed end to end:
``single`` (one run), ``pair-here`` (``ensemble = 2``, the members one after another in this process, all
cores) and ``pair-workers`` (``ensemble = 2``, ``workers = None``: one process per core, each with its share
of the threads). The two pairs are the same members (seeds, ``±z``); only the thread count of each run
differs, so their PSNR agrees to rounding and their seconds say what the processes save. The clean crop
only scores. One JSON line per (crop, setting), appended as it finishes; ``--resume`` skips those done.

Usage:
    python benchmarks/parallel_runs.py --images DIR [--images DIR] [--limit 2] [--crop 128] [--sigma 25]
        [--seed 0] --out FILE.jsonl [--resume]
    python benchmarks/parallel_runs.py --report FILE.jsonl
"""

import argparse
import json
import statistics
import time
from pathlib import Path

from dipddpm.api import denoise
from dipddpm.bench.data import list_images, load_clean, make_noisy
from dipddpm.bench.report import read_records
from dipddpm.bench.scripts import script_meta
from dipddpm.config import DenoiserConfig

SETTINGS = {"single": DenoiserConfig(), "pair-here": DenoiserConfig(ensemble=2, workers=1),
            "pair-workers": DenoiserConfig(ensemble=2, workers=None)}


def measure(args) -> None:
    out = Path(args.out)
    rows = read_records(out) if args.resume else []
    done = {(r["image"], r["sigma"], r["setting"]) for r in rows if "setting" in r}
    with open(out, "a") as f:
        f.write(json.dumps({"meta": script_meta("benchmarks/parallel_runs.py")}) + "\n")
        for folder in args.images:
            for path in list_images(folder, args.limit):
                name = f"{Path(folder).name}/{path.stem}"
                clean = load_clean(path, args.crop)
                for sigma in args.sigma:
                    noisy = make_noisy(clean, name, sigma, args.seed)
                    for setting, config in SETTINGS.items():
                        if (name, sigma, setting) in done:
                            continue
                        start = time.perf_counter()
                        info = denoise(noisy, channel_axis=-1, config=config, seed=args.seed, device="cpu",
                                       reference=clean, return_info=True)
                        row = {"image": name, "sigma": sigma, "seed": args.seed, "crop": args.crop, "setting": setting,
                               "psnr": info.evaluation["ref_psnr"], "seconds": time.perf_counter() - start,
                               "stops": [m["stop_iteration"] for m in info.members] if info.members
                               else [info.stop_iteration]}
                        f.write(json.dumps(row) + "\n")
                        f.flush()
                        print(json.dumps(row), flush=True)


def report(path: Path) -> str:
    rows = [r for r in read_records(path) if "setting" in r]
    by = {(r["image"], r["sigma"], r["setting"]): r for r in rows}
    crops = sorted({(r["image"], r["sigma"]) for r in rows})
    lines = ["| crop | σ | single: PSNR, s | pair here: PSNR, s | pair in workers: PSNR, s | pair here / single | "
             "pair in workers / single |", "|---|---|---|---|---|---|---|"]
    ratios = {"pair-here": [], "pair-workers": []}
    for image, sigma in crops:
        got = [by.get((image, sigma, s)) for s in SETTINGS]
        if None in got:
            continue
        cells = [f"{r['psnr']:.2f}, {r['seconds']:.0f}" for r in got]
        for setting, r in zip(("pair-here", "pair-workers"), got[1:], strict=True):
            ratios[setting].append(r["seconds"] / got[0]["seconds"])
        lines.append(f"| {image} | {sigma:g} | {' | '.join(cells)} | {ratios['pair-here'][-1]:.2f} | "
                     f"{ratios['pair-workers'][-1]:.2f} |")
    if ratios["pair-here"]:
        lines.append(f"| median | | | | | {statistics.median(ratios['pair-here']):.2f} | "
                     f"{statistics.median(ratios['pair-workers']):.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", action="append", default=[])
    p.add_argument("--limit", type=int, default=2)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--sigma", type=lambda s: [float(v) for v in s.split(",")], default=[25.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--report")
    args = p.parse_args()
    if args.report:
        print(report(Path(args.report)))
    elif args.images and args.out:
        measure(args)
    else:
        raise SystemExit("need --report FILE, or --images and --out")


if __name__ == "__main__":
    main()
