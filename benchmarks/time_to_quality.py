"""Time to a result (issue 12): true PSNR against wall seconds, setting by setting, on the tuning crops.

Each row restores one noisy crop with one setting and records the auto-stopped PSNR, the best iterate
of the same run up to its stop (the oracle, evaluation only), the stop iteration and the wall seconds
of the whole call (σ estimate included), plus the (seconds, true PSNR) curve every 10 iterations for the
figure. The clean image only scores: the run sees the noisy crop alone. One-shot baselines (CBM3D with
the true σ, ZS-N2N) are timed the same way, as points. Rows are appended as they finish (``--resume``
skips the ones already in ``--out``), so a long measurement can be stopped and continued.

Settings (``--variants``):

- ``default``: the package defaults (Adam 0.01, no warm-up, betas 0.9 / 0.999; above σ = 18/255, and so in
  every row recorded before the low-noise optimiser became the default, the fast preset's optimiser below);
- ``fast``: the ``fast`` preset (Adam 0.03 after a 100-step warm-up, betas 0.9 / 0.99);
- ``fast-tiles136``: the fast preset in 136² tiles with 16 px overlap (four tiles on a 256² crop), each tile
  with its own network and stop, one after another;
- ``fast-lr0.02-w50``, ``fast-lr0.01-w100``: the fast preset with a smaller rate (0.02 after 50 warm-up steps,
  0.01 after 100);
- ``default-beta2-0.99``, ``default-warmup100``: the defaults with only β₂ 0.99, or only a 100-step warm-up;
- ``adam0.01``: Adam 0.01 without warm-up at every σ (the defaults before the low-noise optimiser; the same
  as ``default`` above σ = 18/255);
- ``tiles144``: the defaults in 144² tiles with 32 px overlap (four tiles on a 256² crop), restored at once in
  one worker process per core (``DenoiserConfig.workers = None``); ``tiles144-here``: the same tiles one
  after another in this process; ``fast-tiles144``: the fast preset in those tiles, one worker per core;
  ``fast-tiles112`` (32 px overlap) and ``fast-tiles96`` (16 px overlap): the same in nine smaller tiles on a
  256² crop; ``-p50``: with patience 50 instead of 150;
- ``auto``: what ``dipddpm denoise`` does with its defaults (``tile="auto"``, one worker per core), e.g. for the
  time to a result at 512² (``--crop 512``) or on a whole image (``--crop 0``); ``auto-d4``, ``auto-in8``,
  ``auto-d4-in8``: the same with a network of depth 4 (a 144² tile is then not padded to 160²), 8 input
  channels, or both (rows recorded when the tiles' networks were 5 scales deep); ``auto-p50``: the defaults with
  patience 50; ``auto-bf16``, ``auto-fp32``: the defaults with the generator's forward pass under bfloat16
  autocast, or in float32 (rows from the seventh session on record the precision used; ``auto`` is bfloat16 on a
  CPU with native bfloat16 since then, float32 before); ``auto-tv0.01``: the defaults with a total-variation term
  of weight 0.01 at every sigma; ``auto-notv``: the defaults without it (``high_noise=None``; the defaults add it
  above sigma 35/255 since the eighth session); ``auto-hn0.02``, ``auto-hn0.04``: the defaults with that term of weight
  0.02 or 0.04 instead of 0.01; ``auto-window``, ``auto-fresh``: the defaults with the input jitter
  drawn as a random window of one fixed field, or fresh each step (``TrainConfig.jitter``; fresh until the ninth
  session).

Usage:
    python benchmarks/time_to_quality.py --images DIR [--images DIR] [--limit 2] [--crop 256] [--sigma 25]
        [--seed 0] [--variants default,fast] --out FILE.jsonl [--resume]
    python benchmarks/time_to_quality.py --report FILE.jsonl [--figure FILE.png] [--paired-with SUITE_DIR]

``--paired-with`` compares each row with the same (image, σ, seed) of a benchmark folder's recorded ``ours``
(or ``--paired-method``) trajectories (e.g. ``benchmarks/results/cpu-suite``, run with the default
optimiser): their stop is replayed with the current patience on the recorded validation error, and PSNR and
iterations to the stop firing are compared pair by pair (iterations, not seconds: those runs were timed with
every stopper watching).
"""

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dipddpm.api import denoise
from dipddpm.bench.baselines import bm3d_available
from dipddpm.bench.data import list_images, load_clean, make_noisy
from dipddpm.bench.methods import METHODS
from dipddpm.bench.report import read_records, replay_minimum
from dipddpm.bench.scripts import script_meta
from dipddpm.config import DenoiserConfig, HighNoisePrior
from dipddpm.metrics import psnr
from dipddpm.presets import PRESETS
from dipddpm.result import TiledRestoration

_NOW = DenoiserConfig()
_FAST = PRESETS["fast"].config
_FAST_AT_ONCE = replace(_FAST, workers=None)
_FAST_P50 = replace(_FAST_AT_ONCE, stopping=replace(_FAST.stopping, patience=50))


def _net_variant(**net) -> DenoiserConfig:
    """The defaults (``auto``) with another network shape."""
    return replace(_NOW, workers=None, train=replace(_NOW.train, net=replace(_NOW.train.net, **net)))


DIP_VARIANTS = {"default": (_NOW, None), "fast": (_FAST, None), "fast-tiles136": (_FAST, 136),
                "fast-tiles96": (_FAST_AT_ONCE, 96), "fast-tiles96-p50": (_FAST_P50, 96),
                "fast-tiles112": (_FAST_AT_ONCE, 112), "fast-tiles144-p50": (_FAST_P50, 144),
                "fast-lr0.02-w50": (replace(_FAST, train=replace(_FAST.train, lr=0.02, lr_warmup=50)), None),
                "fast-lr0.01-w100": (replace(_FAST, train=replace(_FAST.train, lr=0.01, lr_warmup=100)), None),
                "default-beta2-0.99": (replace(_NOW, train=replace(_NOW.train, betas=(0.9, 0.99))), None),
                "default-warmup100": (replace(_NOW, train=replace(_NOW.train, lr_warmup=100)), None),
                "adam0.01": (replace(_NOW, low_noise=None), None),
                "tiles144": (replace(_NOW, workers=None), 144), "tiles144-here": (_NOW, 144),
                "fast-tiles144": (_FAST_AT_ONCE, 144), "auto": (replace(_NOW, workers=None), "auto"),
                "auto-d4": (_net_variant(depth=4), "auto"), "auto-in8": (_net_variant(input_channels=8), "auto"),
                "auto-d4-in8": (_net_variant(depth=4, input_channels=8), "auto"),
                "auto-p50": (replace(_NOW, workers=None, stopping=replace(_NOW.stopping, patience=50)), "auto"),
                "auto-bf16": (replace(_NOW, workers=None, train=replace(_NOW.train, precision="bfloat16")), "auto"),
                "auto-fp32": (replace(_NOW, workers=None, train=replace(_NOW.train, precision="float32")), "auto"),
                "auto-tv0.01": (replace(_NOW, workers=None, train=replace(_NOW.train, tv_weight=0.01)), "auto"),
                "auto-notv": (replace(_NOW, workers=None, high_noise=None), "auto"),
                "auto-hn0.02": (replace(_NOW, workers=None, high_noise=HighNoisePrior(tv_weight=0.02)), "auto"),
                "auto-hn0.04": (replace(_NOW, workers=None, high_noise=HighNoisePrior(tv_weight=0.04)), "auto"),
                "auto-window": (replace(_NOW, workers=None, train=replace(_NOW.train, jitter="window")), "auto"),
                "auto-fresh": (replace(_NOW, workers=None, train=replace(_NOW.train, jitter="fresh")), "auto")}
TILE_OVERLAP = {"tiles144": 32, "tiles144-here": 32, "fast-tiles144": 32, "fast-tiles144-p50": 32,
                "fast-tiles112": 32}  # tiles of a fixed size; older rows and the 96² tiles use 16


def tile_overlap(variant: str) -> int:
    """The overlap of ``variant``'s tiles: the package's 32 px for ``tile="auto"``, else :data:`TILE_OVERLAP`."""
    return 32 if DIP_VARIANTS[variant][1] == "auto" else TILE_OVERLAP.get(variant, 16)


ONE_SHOT = ("cbm3d", "zsn2n")


def run_dip(noisy: np.ndarray, clean: np.ndarray, config: DenoiserConfig, tile: int | str | None, seed: int,
            overlap: int = 16) -> dict:
    """One DIP restoration timed end to end; the curve is recorded by a callback (``tile=None`` only)."""
    start = time.perf_counter()
    curve: list[tuple[float, float]] = []

    def record(info) -> None:
        if info.iteration % 10 == 0:
            curve.append((round(time.perf_counter() - start, 2), round(info.stoppers["oracle"].value, 3)))

    info = denoise(noisy, channel_axis=-1 if noisy.ndim == 3 else None, config=config, seed=seed, device="cpu",
                   reference=clean, tile=tile, overlap=overlap, return_info=True,
                   callbacks=(record,) if tile is None else ())
    seconds = time.perf_counter() - start
    row = {"psnr": info.evaluation["ref_psnr"], "oracle_psnr": info.evaluation["oracle_psnr"],
           "sigma_used": info.sigma_used, "seconds": seconds, "curve": curve,
           "precision": info.config["train"]["precision"]}
    if not isinstance(info, TiledRestoration):
        return {**row, "stop_iteration": info.stop_iteration, "iterations_run": info.iterations_run}
    return {**row, "tile": info.tile, "stop_iteration": [t["stop_iteration"] for t in info.tiles],
            "iterations_run": sum(t["iterations_run"] for t in info.tiles)}


def run_one_shot(name: str, noisy: np.ndarray, clean: np.ndarray, sigma: float, seed: int) -> dict:
    """A one-shot baseline of the benchmark (``cbm3d`` is its ``bm3d`` method), timed by the method itself."""
    outcome = METHODS["bm3d" if name == "cbm3d" else name].run(noisy, clean, sigma, seed, "cpu", 0)
    return {"psnr": psnr(outcome.images["-"][0], clean), "seconds": outcome.seconds}


def _rows(path: Path) -> list[dict]:
    """The result rows of a file (its ``meta`` lines left out)."""
    return [r for r in read_records(path) if "variant" in r]


def measure(args) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.resume and out.exists():
        done = {(r["image"], r["sigma"], r["seed"], r["variant"], r.get("crop")) for r in _rows(out)}
    elif out.exists():
        raise SystemExit(f"{out} exists; pass --resume to add to it")
    torch.set_num_threads(args.threads)
    with out.open("a") as f:
        f.write(json.dumps({"meta": script_meta("benchmarks/time_to_quality.py")}) + "\n")
    images = [p for folder in args.images for p in list_images(folder, args.limit)]
    for path in images:
        name = f"{path.parent.name}/{path.stem}"
        clean = load_clean(path, args.crop)
        for sigma255 in args.sigma:
            noisy = make_noisy(clean, name, sigma255, args.seed)
            for variant in args.variants:
                key = (name, sigma255, args.seed, variant, args.crop)
                if key in done or (variant == "cbm3d" and not bm3d_available()):
                    continue
                if variant in DIP_VARIANTS:
                    row = run_dip(noisy, clean, *DIP_VARIANTS[variant], seed=args.seed,
                                  overlap=tile_overlap(variant))
                else:
                    row = run_one_shot(variant, noisy, clean, sigma255 / 255, args.seed)
                row = {"image": name, "sigma": sigma255, "seed": args.seed, "variant": variant,
                       "crop": args.crop, **row}
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{name} σ={sigma255:g} {variant}: {row['psnr']:.2f} dB"
                      + (f" (oracle {row['oracle_psnr']:.2f})" if "oracle_psnr" in row else "")
                      + f", {row['seconds']:.1f} s", flush=True)


def report(path: Path, figure: Path | None) -> str:
    rows = _rows(path)
    sizes = len({r.get("crop") for r in rows}) > 1  # one line per crop size too

    def key(r: dict) -> tuple:
        return r["image"], r["sigma"], r.get("crop")

    reference = {key(r): r for r in rows if r["variant"] == "cbm3d"}
    lines = ["| setting | " + ("crop | " if sizes else "") + "σ | n | PSNR (mean) | oracle of the run (mean) | "
             "stop gap median / max | seconds median (range) | × CBM3D's time (median) | PSNR − CBM3D (mean) |",
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if sizes else "")]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["variant"], r["sigma"], r.get("crop") or 0), []).append(r)
    for (variant, sigma, crop), rs in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0])):
        seconds = [r["seconds"] for r in rs]
        gaps = [r["oracle_psnr"] - r["psnr"] for r in rs if "oracle_psnr" in r]
        paired = [r for r in rs if key(r) in reference]
        ratio = [r["seconds"] / reference[key(r)]["seconds"] for r in paired]
        diff = [r["psnr"] - reference[key(r)]["psnr"] for r in paired]
        lines.append(
            f"| {variant} | " + (f"{crop or 'whole'} | " if sizes else "")
            + f"{sigma:g} | {len(rs)} | {statistics.mean(r['psnr'] for r in rs):.2f} | "
            + (f"{statistics.mean(r['oracle_psnr'] for r in rs):.2f}" if gaps else "-") + " | "
            + (f"{statistics.median(gaps):.2f} / {max(gaps):.2f}" if gaps else "-") + " | "
            + f"{statistics.median(seconds):.1f} ({min(seconds):.1f}–{max(seconds):.1f}) | "
            + (f"{statistics.median(ratio):.1f}×" if ratio and variant != "cbm3d" else "-") + " | "
            + (f"{statistics.mean(diff):+.2f}" if diff and variant != "cbm3d" else "-") + " |")
    if figure is not None:
        _figure(rows, figure)
    return "\n".join(lines)


def paired(path: Path, suite: Path, method: str = "ours") -> str:
    """Markdown: this file's DIP rows against the same noisy crops' recorded ``method`` runs in ``suite``."""
    patience = _NOW.stopping.patience
    recorded = {}
    for record in read_records(suite / "curves.jsonl"):
        h = record.get("histories", {})
        if record["method"] == method and "recorruption" in h:
            best, fired = replay_minimum(h["recorruption"], patience, h["stage"])
            if fired is not None:
                recorded[(record["image"], record["sigma"], record["seed"])] = (h["oracle"][best], fired + 1)
    lines = ["| setting | σ | pairs | PSNR now − recorded: mean (min, max) | iterations to the stop firing: now / "
             "recorded (median) |", "|---|---|---|---|---|"]
    groups: dict = {}
    for r in (r for r in _rows(path) if r["variant"] in DIP_VARIANTS):
        key = (r["image"], r["sigma"], r["seed"])
        if key in recorded and isinstance(r["stop_iteration"], int):
            groups.setdefault((r["variant"], r["sigma"]), []).append((r, *recorded[key]))
    for (variant, sigma), pairs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        diff = [r["psnr"] - old for r, old, _ in pairs]
        lines.append(f"| {variant} | {sigma:g} | {len(pairs)} | {statistics.mean(diff):+.2f} ({min(diff):+.2f}, "
                     f"{max(diff):+.2f}) | {statistics.median(r['iterations_run'] for r, _, _ in pairs):.0f} / "
                     f"{statistics.median(n for _, _, n in pairs):.0f} |")
    return "\n".join(lines)


def _figure(rows: list[dict], figure: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sigmas = sorted({r["sigma"] for r in rows})
    images = sorted({r["image"] for r in rows})
    colours = {"default": "tab:grey", "fast": "tab:blue", "fast-tiles136": "tab:green", "fast-tiles96": "tab:olive",
               "tiles144": "tab:purple", "fast-tiles144": "tab:cyan", "cbm3d": "tab:red", "zsn2n": "tab:orange",
               "fast-tiles112": "tab:brown", "fast-tiles144-p50": "tab:pink", "fast-tiles96-p50": "gold",
               "auto": "black"}
    fig, axes = plt.subplots(len(sigmas), len(images), figsize=(3.2 * len(images), 2.8 * len(sigmas)),
                             squeeze=False)
    for i, sigma in enumerate(sigmas):
        for j, image in enumerate(images):
            ax = axes[i][j]
            if not any(r["sigma"] == sigma and r["image"] == image for r in rows):
                ax.axis("off")
                continue
            for r in (r for r in rows if r["sigma"] == sigma and r["image"] == image):
                colour = colours.get(r["variant"], "black")
                if r.get("curve"):
                    t, q = zip(*r["curve"], strict=True)
                    ax.plot(t, q, color=colour, lw=1)
                ax.plot(r["seconds"], r["psnr"], "o", color=colour, ms=5, label=r["variant"])
            ax.set_xscale("log")
            ax.set_title(f"{image}, σ = {sigma:g}", fontsize=8)
            ax.set_xlabel("wall seconds (2 CPU cores)", fontsize=7)
            ax.set_ylabel("true PSNR (dB)", fontsize=7)
            ax.tick_params(labelsize=7)
    unique: dict = {}
    for ax in (ax for row in axes for ax in row):
        handles, labels = ax.get_legend_handles_labels()
        unique.update({label: handle for label, handle in zip(labels, handles, strict=True) if label not in unique})
    fig.legend(unique.values(), unique.keys(), loc="lower center", ncol=min(len(unique), 7), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(figure, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", action="append", default=[])
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--sigma", type=lambda s: [float(v) for v in s.split(",")], default=[25.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", type=lambda s: s.split(","), default=["default", "fast", "cbm3d"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--report")
    parser.add_argument("--figure")
    parser.add_argument("--paired-with")
    parser.add_argument("--paired-method", default="ours", help="the recorded method to pair with")
    args = parser.parse_args()
    if args.report:
        print(report(Path(args.report), Path(args.figure) if args.figure else None))
        if args.paired_with:
            print()
            print(paired(Path(args.report), Path(args.paired_with), args.paired_method))
        return
    unknown = [v for v in args.variants if v not in DIP_VARIANTS and v not in ONE_SHOT]
    if unknown or not args.images or not args.out:
        raise SystemExit(f"need --images and --out, and variants among {', '.join([*DIP_VARIANTS, *ONE_SHOT])}")
    measure(args)


if __name__ == "__main__":
    main()
