"""Poisson denoising without a known photon count on the held-out photos (issue 15).

The held-out photographs bundled with scikit-image (written to a folder by ``benchmarks/export_heldout.py``;
never used for tuning) are centre-cropped (``--crop``, 128 by default) and given Poisson noise at ``--photons``
expected counts for a white pixel: ``y = Poisson(lam x) / lam`` in [0, 1] units, clipped at 1 and quantised to
8 bits like an image file (:func:`dipddpm.noise_models.sample_poisson`, seed
``noise_seed(name + '|poisson', lam, seed)`` from the file's stem, as in ``benchmarks/photon_estimates.py``).
Each noisy crop goes through:

- ``known``: ``denoise(noisy, noise="poisson", photons=lam)``: Anscombe-stabilised, staged, recorruption stop;
- ``estimated``: the same with ``photons=None`` (the default): the photon count (and read noise) is estimated
  from the noisy image by :mod:`dipddpm.noise_fit`; the fit is recorded (``photons_used``, ``read_noise``,
  ``fit_kind``, ``fit_used``; ``sigma_source`` is ``photons-estimated`` unless the run fell back);
- ``held-out``: ``photons="off"``: fits ``y`` with the Poisson loss and stops on held-out pixels;
- ``bayes``: Anscombe + wavelet BayesShrink (sigma 1 in the stabilised domain) + the closed-form unbiased
  inverse, with the true photon count: the classical baseline of ``benchmarks/eswmv.py``;
- ``bayes-est``: the same with the photon count the ``estimated`` run uses (:func:`dipddpm.restore.photon_count`
  on the same float32 tensor; plain Anscombe: a read noise found by the fit is recorded but not used;
  BayesShrink with its own sigma if the fit finds no signal-dependent noise).

The DIP runs use the default settings and ``seed``; the clean crop is given as ``reference`` for evaluation
only (``oracle_psnr``: best true PSNR of the trajectory); the stop is unchanged. One JSON line is appended per
finished (image, method); ``--resume`` skips those already in ``--out``.

Usage:
    python benchmarks/export_heldout.py /tmp/heldout
    python benchmarks/poisson_heldout.py --images /tmp/heldout [--limit N] [--crop 128] [--photons 12] [--seed 0]
        [--methods known,estimated,held-out,bayes,bayes-est] [--threads 1]
        --out benchmarks/results/poisson-heldout/rows.jsonl [--resume]
    python benchmarks/poisson_heldout.py --report benchmarks/results/poisson-heldout/rows.jsonl
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from skimage.restoration import denoise_wavelet

from dipddpm import denoise
from dipddpm.bench.data import list_images, load_clean, noise_seed
from dipddpm.bench.report import read_records
from dipddpm.bench.scripts import script_meta
from dipddpm.metrics import psnr
from dipddpm.noise_models import anscombe, inverse_anscombe, sample_poisson
from dipddpm.restore import photon_count

METHODS = ("known", "estimated", "held-out", "bayes", "bayes-est")
DIP_PHOTONS = {"known": None, "estimated": None, "held-out": "off"}  # "known" gets the true count


def noisy_crop(path: Path, crop: int, photons: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(clean, noisy)``: the centre crop and its Poisson-noisy version (clipped, 8-bit)."""
    clean = load_clean(path, crop)
    rng = np.random.default_rng(noise_seed(f"{path.stem}|poisson", photons, seed))
    return clean, sample_poisson(clean, photons, rng)


def anscombe_bayes(noisy: np.ndarray, photons: float, channel_axis: int | None) -> np.ndarray:
    """Anscombe + BayesShrink (sigma 1, soft, per channel) + the unbiased inverse, as in ``benchmarks/eswmv.py``."""
    stabilised = anscombe(noisy * photons)
    smooth = denoise_wavelet(stabilised, sigma=1.0, channel_axis=channel_axis, method="BayesShrink", mode="soft",
                             rescale_sigma=False)
    return inverse_anscombe(smooth) / photons


def run_dip(method: str, noisy: np.ndarray, clean: np.ndarray, photons: float, seed: int,
            channel_axis: int | None) -> dict:
    given = photons if method == "known" else DIP_PHOTONS[method]
    result = denoise(noisy, noise="poisson", photons=given, channel_axis=channel_axis, reference=clean,
                     return_info=True, seed=seed, tile=None)
    fit = result.noise_fit or {}
    return {"psnr": psnr(np.clip(result.image, 0, 1), clean), "seconds": result.seconds,
            "oracle_psnr": result.evaluation["oracle_psnr"],
            "oracle_iteration": result.evaluation["oracle_iteration"], "stopper": result.stopper,
            "stopped_by": result.stopped_by,
            "stop_iteration": result.stop_iteration, "iterations_run": result.iterations_run,
            "sigma_used": result.sigma_used, "sigma_source": result.sigma_source,
            "photons_used": fit.get("photons") if method == "estimated" else given,
            "read_noise": fit.get("read_noise"), "photons_sd": fit.get("photons_sd"), "fit_kind": fit.get("kind"),
            "fit_used": fit.get("used"), "fit_reason": fit.get("reason")}


def run_bayes(method: str, noisy: np.ndarray, clean: np.ndarray, photons: float,
              channel_axis: int | None) -> dict:
    start = time.perf_counter()
    row: dict = {"photons_used": photons}
    if method == "bayes-est":
        # The fit the estimated DIP run uses: on the float32 tensor that denoise makes (the fit's choice between
        # Poisson and Poisson-Gaussian can change with float32 rounding of the input).
        hwc = noisy if channel_axis is not None else noisy[..., None]
        y = torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1))).float()[None]
        counted, read_noise, _, fit = photon_count(y, None, 0.0, True)
        row = {"photons_used": counted, "read_noise": read_noise, "photons_sd": (fit or {}).get("photons_sd"),
               "fit_kind": (fit or {}).get("kind")}
    if row["photons_used"] is None:  # no signal-dependent noise found: BayesShrink with its own sigma
        image = denoise_wavelet(noisy, channel_axis=channel_axis, method="BayesShrink", mode="soft",
                                rescale_sigma=True)
    else:
        image = anscombe_bayes(noisy, row["photons_used"], channel_axis)
    return {**row, "psnr": psnr(np.clip(image, 0, 1), clean), "seconds": time.perf_counter() - start}


def measure(args) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.resume and out.exists():
        done = {(r["image"], r["method"], r["photons"], r["seed"], r["crop"]) for r in read_records(out)
                if "image" in r}
    elif out.exists():
        raise SystemExit(f"{out} exists; pass --resume to add to it")
    torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    with out.open("a") as f:
        f.write(json.dumps({"meta": script_meta("benchmarks/poisson_heldout.py")}) + "\n")
    for path in list_images(args.images, args.limit):
        clean, noisy = noisy_crop(path, args.crop, args.photons, args.seed)
        channel_axis = -1 if clean.ndim == 3 else None
        base = {"image": path.stem, "photons": args.photons, "seed": args.seed, "crop": args.crop,
                "shape": list(clean.shape), "noisy_psnr": psnr(noisy, clean)}
        for method in methods:
            if (path.stem, method, args.photons, args.seed, args.crop) in done:
                continue
            if method in DIP_PHOTONS:
                found = run_dip(method, noisy, clean, args.photons, args.seed, channel_axis)
            else:
                found = run_bayes(method, noisy, clean, args.photons, channel_axis)
            row = {**base, "method": method, **found}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            extra = (f", photons {row['photons_used']:.2f}" if method in ("estimated", "bayes-est")
                     and row.get("photons_used") else "")
            print(f"{path.stem} {method}: {row['psnr']:.2f} dB{extra}, {row['seconds']:.0f} s", flush=True)


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def report(rows: list[dict]) -> str:
    """Per image the PSNR of each method, the means, and the two targets of issue 15."""
    table: dict = {}
    for r in rows:
        table.setdefault((r["image"], r["photons"], r["seed"], r["crop"]), {})[r["method"]] = r
    present = [m for m in METHODS if any(m in by for by in table.values())]
    lines = ["| image | noisy | " + " | ".join(present) + " | estimated photons (error) | read noise | "
             "estimated: stop / oracle it. / run | known: stop / run |",
             "|---|---|" + "---|" * len(present) + "---|---|---|---|"]
    for (image, photons, _seed, _crop), by in sorted(table.items()):
        first = next(iter(by.values()))
        cells = []
        for m in present:
            r = by.get(m)
            cells.append("" if r is None else f"{r['psnr']:.2f}" + (
                f" ({r['oracle_psnr']:.2f})" if r.get("oracle_psnr") is not None else ""))
        est = by.get("estimated", {})
        lam = est.get("photons_used")
        photon_cell = ("-" if lam is None else
                       f"{lam:.2f} ± {_fmt(est.get('photons_sd'))} ({100 * (lam / photons - 1):+.1f}%)")
        if est and est.get("sigma_source") != "photons-estimated":
            photon_cell += f" fell back: {est.get('fit_reason') or est.get('sigma_source')}"
        known = by.get("known", {})
        lines.append(f"| {image} | {first['noisy_psnr']:.2f} | " + " | ".join(cells) + f" | {photon_cell} | "
                     f"{_fmt(est.get('read_noise'), '.3f')} {est.get('fit_kind') or ''} | "
                     f"{_fmt(est.get('stop_iteration'), 'd')} / {_fmt(est.get('oracle_iteration'), 'd')} / "
                     f"{_fmt(est.get('iterations_run'), 'd')} | "
                     f"{_fmt(known.get('stop_iteration'), 'd')} / {_fmt(known.get('iterations_run'), 'd')} |")
    means = []
    for m in present:
        values = [by[m]["psnr"] for by in table.values() if m in by]
        oracle = [by[m]["oracle_psnr"] for by in table.values() if m in by and by[m].get("oracle_psnr") is not None]
        means.append(f"{statistics.mean(values):.2f}" + (f" ({statistics.mean(oracle):.2f})" if oracle else ""))
    noisy = statistics.mean(next(iter(by.values()))["noisy_psnr"] for by in table.values())
    lines.append(f"| **mean** | {noisy:.2f} | " + " | ".join(means) + " | | | | |")
    seconds = []
    for m in present:
        values = [by[m]["seconds"] for by in table.values() if m in by]
        seconds.append(f"{statistics.median(values):.1f}")
    lines.append("| seconds (median) | | " + " | ".join(seconds) + " | | | | |")
    lines.append("\nPSNR in dB against the clean crop; DIP cells: auto-stopped PSNR (oracle PSNR of the same run, "
                 "evaluation only).\n")

    def diffs(a: str, b: str) -> list[float]:
        return [by[a]["psnr"] - by[b]["psnr"] for by in table.values() if a in by and b in by]

    for a, b, target in (("estimated", "bayes", "target: at least +1 dB"),
                         ("estimated", "bayes-est", "BayesShrink with the estimated count too"),
                         ("known", "estimated", "target: within 0.3 dB"),
                         ("estimated", "held-out", "gain over the old fallback")):
        d = diffs(a, b)
        if not d:
            continue
        line = (f"- `{a} − {b}` ({target}): mean {statistics.mean(d):+.2f} dB, min {min(d):+.2f}, "
                f"max {max(d):+.2f} over {len(d)} images")
        if (a, b) == ("known", "estimated"):
            line += f"; within 0.3 dB on {sum(abs(x) <= 0.3 for x in d)}/{len(d)}"
        if (a, b) == ("estimated", "bayes"):
            line += f"; at least +1 dB on {sum(x >= 1 for x in d)}/{len(d)}"
        lines.append(line)
    errors = [by["estimated"]["photons_used"] / by["estimated"]["photons"] - 1 for by in table.values()
              if "estimated" in by and by["estimated"].get("photons_used")]
    fallbacks = sum(by["estimated"].get("sigma_source") != "photons-estimated" for by in table.values()
                    if "estimated" in by)
    if errors:
        lines.append(f"- photon estimate (estimated runs): mean |error| "
                     f"{100 * statistics.mean(map(abs, errors)):.1f}%, "
                     f"largest {100 * max(map(abs, errors)):.1f}%, mean signed {100 * statistics.mean(errors):+.1f}%; "
                     f"{fallbacks} run(s) fell back to held-out")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, help="folder written by benchmarks/export_heldout.py")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--photons", type=float, default=12.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--resume", action="store_true", help="skip the (image, method) already in --out")
    parser.add_argument("--report", type=Path, nargs="+", metavar="FILE", help="print the markdown table")
    args = parser.parse_args()
    if args.report:
        print(report([r for path in args.report for r in read_records(path) if "image" in r]))
        return
    if not (args.images and args.out):
        parser.error("--images and --out are needed (or --report)")
    measure(args)


if __name__ == "__main__":
    main()
