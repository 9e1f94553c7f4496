"""Ensembles (issue 13): PSNR, SSIM, stop gap and the PSNR estimate against the number of members K.

For each noisy crop the package runs the members of a ``K``-member ensemble one by one
(:func:`dipddpm.restore.ensemble_members`, the default settings, σ estimated unless ``--sigma-given``) and
scores every prefix
of 2, 4, … members with :func:`dipddpm.restore.combine_members` — the ensemble of the first ``k``
members is exactly what ``DenoiserConfig(ensemble=k)`` returns, so one ``K = 4`` run gives the
``K = 2, 4`` rows. The ``K = 1`` row is the single default run of the same seed: member 0 itself when members
return their minimum (``StoppingConfig.ensemble_delay = 0``, before the eleventh session), else a run of its own
(member 0's trajectory, returned at its minimum).

Per prefix: the auto-stopped PSNR and SSIM of the average, the average of the members' own oracle
iterates (best true PSNR of each run up to its stop; evaluation only) and the gap between the two,
the iterations and seconds summed over the members, and the self-estimated PSNR with its range (the
report leaves it out: ``benchmarks/estimate_check.py`` recomputes it with the current estimator). Per
member (``members``), the pieces of its recorruption estimate (validation error, offset, the standard
deviations of the cross term and of the σ term) next to their true values, computed with the clean
image for evaluation only: the true error, the noise energy ``mean(n²)`` and the cross term
``-2 s (σ/a) mean(n z)`` — for the analysis of the estimate (issue 15, part 3). ``--bm3d`` adds CBM3D
with the true σ; ``--save-outputs DIR`` keeps each crop's noisy, clean and member images (``.npz``) for offline
analysis. Rows are appended as they finish; ``--resume`` skips the (image, σ) already done.

Usage:
    python benchmarks/ensemble.py --images DIR [--images DIR] [--limit 4] [--crop 128] [--sigma 15,25,50]
        [--seed 0] [--members 4] [--threads 2] [--bm3d] [--sigma-given] [--save-outputs DIR] --out FILE.jsonl
        [--resume]
    python benchmarks/ensemble.py --report FILE.jsonl [FILE.jsonl ...] [--plot FIGURE.png]
"""

import argparse
import json
import math
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dipddpm.bench.baselines import bm3d_available, bm3d_denoise
from dipddpm.bench.data import list_images, load_crop, make_noisy
from dipddpm.bench.methods import to_tensor
from dipddpm.bench.report import nearest_rank, read_records
from dipddpm.bench.scripts import open_rows
from dipddpm.config import DenoiserConfig
from dipddpm.metrics import psnr, ssim
from dipddpm.restore import combine_members, draw_noise, ensemble_members, restore_tensor


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor[0].permute(1, 2, 0).double().cpu().numpy()


def member_row(member, result, y: torch.Tensor, x: torch.Tensor, seed: int, plan_z: dict) -> dict:
    """One member's stop and the pieces of its PSNR estimate beside their true values (evaluation only)."""
    summary = result.stoppers["recorruption"]
    sigma, a = result.sigma_used, result.config["staging"]["ratio"]
    z = member.sign * plan_z[member.pair]
    n = (y - x).double()
    return {"index": member.index, "seed": member.seed, "pair": member.pair, "sign": member.sign,
            "stop_iteration": result.stop_iteration, "iterations_run": result.iterations_run,
            "seconds": result.seconds, "ref_psnr": result.evaluation["ref_psnr"],
            "oracle_psnr": result.evaluation["oracle_psnr"], "oracle_iteration": result.evaluation["oracle_iteration"],
            "estimated_psnr": result.estimated_psnr,
            "validation_mse": summary["validation_mse"], "offset": summary["offset"],
            "noise_cross_sd": summary["noise_cross_sd"], "sigma_sd": summary["sigma_sd"],
            "true_mse": float(((result.image.double() - x.double()) ** 2).mean()),
            "true_noise_energy": float((n ** 2).mean()),
            "true_cross": float(-2 * (sigma / a) * (n * z.double()).mean())}


def prefix_sizes(members: int) -> list[int]:
    """1, 2, 4, … up to ``members``, and ``members`` itself."""
    sizes, k = [], 1
    while k < members:
        sizes.append(k)
        k *= 2
    return sizes + [members]


def measure(args) -> None:
    out = Path(args.out)
    done = open_rows(out, args.resume, "benchmarks/ensemble.py")
    torch.set_num_threads(args.threads)
    config = replace(DenoiserConfig(), ensemble=args.members)
    for path in [p for folder in args.images for p in list_images(folder, args.limit)]:
        name, clean = load_crop(path, args.crop)
        for sigma255 in args.sigma:
            if (name, sigma255, args.seed) in done:
                continue
            noisy = make_noisy(clean, name, sigma255, args.seed)
            y, x = to_tensor(noisy), to_tensor(clean)
            given = sigma255 / 255 if args.sigma_given else None
            members = list(ensemble_members(y, given, config=config, seed=args.seed, reference=x))
            single = members[0] if config.stopping.ensemble_delay == 0 or args.members == 1 else (
                members[0][0], restore_tensor(y, given, config=replace(config, ensemble=1), seed=args.seed,
                                              reference=x))
            plan_z = {m.pair: draw_noise(y.shape, m.seed) for m, _ in members if m.sign == 1}
            rows = [member_row(m, r, y, x, args.seed, plan_z) for m, r in members]
            if args.save_outputs:
                folder = Path(args.save_outputs)
                folder.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(folder / f"{name.replace('/', '-')}-s{sigma255:g}-seed{args.seed}.npz",
                                    noisy=noisy.astype(np.float32), clean=clean.astype(np.float32),
                                    members=np.stack([_numpy(r.image) for _, r in members]).astype(np.float32))
            base = {"image": name, "sigma": sigma255, "seed": args.seed, "crop": args.crop,
                    "sigma_used": members[0][1].sigma_used, "sigma_source": members[0][1].sigma_source}
            with out.open("a") as f:
                for k in prefix_sizes(args.members):
                    result = combine_members([single] if k == 1 else members[:k], x)
                    image = _numpy(result.image)
                    row = {**base, "method": "ours", "members_used": k, "psnr": psnr(image, clean),
                           "ssim": ssim(image, clean, channel_axis=-1), "oracle_psnr": result.evaluation["oracle_psnr"],
                           "estimated_psnr": result.estimated_psnr,
                           "estimated_psnr_range": result.estimated_psnr_range,
                           "iterations_run": result.iterations_run, "seconds": result.seconds,
                           "stops": [m["stop_iteration"] for m in result.members or [{"stop_iteration":
                                                                                     result.stop_iteration}]]}
                    if k == args.members:
                        row["members"] = rows
                    f.write(json.dumps(row) + "\n")
                    print(f"{name} σ={sigma255:g} K={k}: {row['psnr']:.2f} dB (members' oracles averaged "
                          f"{row['oracle_psnr']:.2f}), estimate {row['estimated_psnr'] or float('nan'):.2f}, "
                          f"{row['seconds']:.0f} s", flush=True)
                if args.bm3d and bm3d_available():
                    start = time.perf_counter()
                    image = np.clip(bm3d_denoise(noisy, sigma255 / 255, -1), 0, 1)
                    f.write(json.dumps({**base, "method": "cbm3d", "psnr": psnr(image, clean),
                                        "ssim": ssim(image, clean, channel_axis=-1),
                                        "seconds": time.perf_counter() - start}) + "\n")


def report(rows: list[dict]) -> str:
    cbm3d = {(r["image"], r["sigma"], r["seed"]): r for r in rows if r["method"] == "cbm3d"}
    single = {(r["image"], r["sigma"], r["seed"]): r for r in rows if r["method"] == "ours" and r["members_used"] == 1}
    groups: dict = {}
    for r in rows:
        if r["method"] == "ours":
            groups.setdefault((r["sigma"], r["members_used"]), []).append(r)
    lines = ["| σ | K | n | PSNR | SSIM | − single run: mean [min, max] | − CBM3D (σ given) | members' oracles "
             "averaged | stop gap median / max | seconds (median) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (sigma, k), rs in sorted(groups.items()):
        key = [(r["image"], r["sigma"], r["seed"]) for r in rs]
        gain = [r["psnr"] - single[q]["psnr"] for r, q in zip(rs, key, strict=True) if q in single]
        vs_bm3d = [r["psnr"] - cbm3d[q]["psnr"] for r, q in zip(rs, key, strict=True) if q in cbm3d]
        gaps = [r["oracle_psnr"] - r["psnr"] for r in rs]
        lines.append(
            f"| {sigma:g} | {k} | {len(rs)} | {statistics.mean(r['psnr'] for r in rs):.2f} | "
            f"{statistics.mean(r['ssim'] for r in rs):.4f} | "
            + (f"{statistics.mean(gain):+.2f} [{min(gain):+.2f}, {max(gain):+.2f}]" if gain else "") + " | "
            + (f"{statistics.mean(vs_bm3d):+.2f}" if vs_bm3d else "") + " | "
            f"{statistics.mean(r['oracle_psnr'] for r in rs):.2f} | {statistics.median(gaps):.2f} / {max(gaps):.2f} | "
            f"{statistics.median(r['seconds'] for r in rs):.0f} |")
    bm3d_rows = {}
    for r in cbm3d.values():
        bm3d_rows.setdefault(r["sigma"], []).append(r)
    for sigma, rs in sorted(bm3d_rows.items()):
        lines.append(f"| {sigma:g} | CBM3D | {len(rs)} | {statistics.mean(r['psnr'] for r in rs):.2f} | "
                     f"{statistics.mean(r['ssim'] for r in rs):.4f} | | | | | "
                     f"{statistics.median(r['seconds'] for r in rs):.1f} |")
    return "\n".join(lines)


def estimate_table(rows: list[dict]) -> str:
    """How far the printed PSNR estimate is from the truth, and how often its range holds it.

    Only runs given sigma print an estimate; among them, a run whose estimated error is not positive prints
    none (``no estimate``), which counts as a miss in ``within 1 dB`` and ``truth in the range``.
    """
    groups: dict = {}
    for r in rows:
        if r.get("method") == "ours" and r.get("sigma_source") == "given":
            groups.setdefault((r["sigma"], r["members_used"]), []).append(r)
    if not groups:
        return ""
    lines = ["| σ | K | n | no estimate | estimate − true: median | median abs | 90th pct abs | within 1 dB | "
             "truth in the range |", "|---|---|---|---|---|---|---|---|---|"]
    for (sigma, k), rs in sorted(groups.items()):
        given = [r for r in rs if r["estimated_psnr"] is not None]
        errors = [r["estimated_psnr"] - r["psnr"] for r in given]
        absolute = [abs(e) for e in errors] + [math.inf] * (len(rs) - len(given))
        p90 = nearest_rank(absolute, 0.9)
        inside = sum(lo is not None and lo <= r["psnr"] and (hi is None or r["psnr"] <= hi)
                     for r in given for lo, hi in [r["estimated_psnr_range"]])
        lines.append(f"| {sigma:g} | {k} | {len(rs)} | {len(rs) - len(given)} | "
                     f"{statistics.median(errors) if errors else math.nan:+.2f} | {statistics.median(absolute):.2f} | "
                     f"{p90:.2f} | {sum(e <= 1 for e in absolute)}/{len(rs)} | {inside}/{len(rs)} |")
    return "\n".join(lines)


def plot_quality_against_compute(series: dict[str, list[dict]], path: Path) -> None:
    """Mean PSNR against the median iterations trained (all members) per K, one line per result file, CBM3D as a
    horizontal line; a panel per σ. Iterations, not seconds: this machine's speed drifts between sessions, the
    iterations of a run do not. Only crops with a row in every series and a CBM3D row count."""
    from matplotlib.figure import Figure

    from dipddpm.plots import save_figure

    sigmas = sorted({r["sigma"] for rows in series.values() for r in rows})
    figure = Figure(figsize=(4.2 * len(sigmas), 3.6))
    for i, sigma in enumerate(sigmas):
        ax = figure.add_subplot(1, len(sigmas), i + 1)
        keys = [{(r["image"], r["seed"]) for r in rows if r["sigma"] == sigma and r["method"] == "cbm3d"}
                for rows in series.values()]
        common = set.intersection(*keys)
        for label, rows in series.items():
            rows = [r for r in rows if r["sigma"] == sigma and (r["image"], r["seed"]) in common]
            ks = sorted({r["members_used"] for r in rows if r["method"] == "ours"})
            points = [[r for r in rows if r["method"] == "ours" and r["members_used"] == k] for k in ks]
            xs = [statistics.median(r["iterations_run"] for r in group) for group in points]
            ys = [statistics.mean(r["psnr"] for r in group) for group in points]
            line = ax.plot(xs, ys, "o-", label=label)[0]
            for k, x_, y_ in zip(ks, xs, ys, strict=True):
                ax.annotate(f"K={k}", (x_, y_), textcoords="offset points", xytext=(4, -10), fontsize=7,
                            color=line.get_color())
        bm3d = [r for r in series[next(iter(series))] if r["sigma"] == sigma and r["method"] == "cbm3d"
                and (r["image"], r["seed"]) in common]
        if bm3d:
            ax.axhline(statistics.mean(r["psnr"] for r in bm3d), color="k", ls="--", lw=1,
                       label=f"CBM3D, σ given ({statistics.median(r['seconds'] for r in bm3d):.0f} s)")
        ax.set_xscale("log")
        ax.set_title(f"σ = {sigma:g}/255, {len(common)} crops")
        ax.set_xlabel("iterations trained, all runs (median)")
        ax.set_ylabel("mean PSNR (dB)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    figure.subplots_adjust(wspace=0.32)
    save_figure(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", action="append", default=[])
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma", default="15,25,50")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bm3d", action="store_true")
    parser.add_argument("--sigma-given", action="store_true", help="Give the runs the true σ (else estimated).")
    parser.add_argument("--save-outputs", help="Folder for each crop's noisy, clean and member images (npz).")
    parser.add_argument("--out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--report", nargs="+", type=Path)
    parser.add_argument("--plot", type=Path, help="With --report: PSNR against iterations per K, a line per file.")
    args = parser.parse_args()
    if args.report:
        rows = [r for path in args.report for r in read_records(path) if "image" in r]
        print(report(rows))
        print(estimate_table(rows))
        if args.plot:
            series = {path.stem: [r for r in read_records(path) if "image" in r] for path in args.report}
            plot_quality_against_compute(series, args.plot)
        return
    args.sigma = [float(s) for s in args.sigma.split(",")]
    measure(args)


if __name__ == "__main__":
    main()
