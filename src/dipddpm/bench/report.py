"""Benchmark reports: results.csv, results.json, summary.md and plots, all rebuilt from rows.jsonl."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..io import atomic_write
from ..metrics import PSNR_CONVENTION, SSIM_CONVENTION
from ..plots import COLORS, save_figure
from ..stopping import patience_exhausted

__all__ = ["write_reports", "summarise", "read_records", "replay_minimum", "COLUMNS"]

COLUMNS = ["image", "sigma", "seed", "method", "family", "stopper", "psnr", "ssim", "oracle_psnr", "gap",
           "stop_iteration", "fired_at", "peak_iteration", "iterations_run", "noisy_psnr", "sigma_used",
           "sigma_source", "estimated_psnr", "estimated_psnr_low", "estimated_psnr_high", "seconds", "error"]
# Okabe-Ito without green (the PSNR curve) and black (the oracle peak); one marker shape per stopper.
_STOPPER_COLORS = ["#E69F00", "#0072B2", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"]
_STOPPER_MARKERS = ["o", "s", "D", "^", "v", "P", "X"]


def read_records(path: Path) -> list[dict]:
    """The records of a JSON-lines file (``rows.jsonl``, ``curves.jsonl``); empty if it does not exist."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def replay_minimum(validation, patience: int, stage=None, every: int = 1) -> tuple[int, int | None]:
    """Replay the minimum-with-patience rule of the stoppers on a recorded criterion.

    The rule (:func:`dipddpm.stopping.patience_exhausted`) sees the values of iterations ``every,
    2 every, ...`` only (None values are skipped); patience counts from the first iteration of the last
    stage in ``stage`` (from the first iteration when ``stage`` is None).

    Parameters
    ----------
    validation : sequence of float or None
        The criterion per iteration (iteration ``i + 1`` at index ``i``).
    patience : int
    stage : sequence of int, optional
        The stage per iteration.
    every : int
        Check interval.

    Returns
    -------
    tuple
        0-based ``(index of the returned minimum, index at which the rule fired)``; the second is None
        when the recording ended first.
    """
    final = None if stage is None else max(stage)
    best, best_i, start = math.inf, 0, None
    for i, value in enumerate(validation):
        if (i + 1) % every:
            continue
        if value is not None and value < best:
            best, best_i = value, i
        if start is None and (stage is None or stage[i] == final):
            start = i
        if start is not None and patience_exhausted(i + 1, best_i + 1, start + 1, patience):
            return best_i, i
    return best_i, None


def nearest_rank(values, fraction: float) -> float:
    """The nearest-rank ``fraction`` quantile of ``values`` (an element of them, so ``inf`` stays ``inf``).

    Parameters
    ----------
    values : iterable of float
        At least one value.
    fraction : float
        In (0, 1], e.g. 0.9 for the 90th percentile.

    Returns
    -------
    float
    """
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _mean(values) -> float:
    values = _finite(values)
    return float(np.mean(values)) if values else math.nan


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{round(value, digits) + 0.0:.{digits}f}"


def summarise(rows: list[dict]) -> dict:
    """Means per (method, stopper, sigma) and gap statistics per (method, stopper).

    Returns
    -------
    dict
        ``means[(method, stopper)][sigma] = {psnr, ssim, oracle, gap, gap_max, seconds, n}`` and
        ``gaps[(method, stopper)] = {median, p90, max, within_1db, fired, n}``.
    """
    ok = [r for r in rows if r.get("error") is None]
    groups: dict = defaultdict(lambda: defaultdict(list))
    for r in ok:
        groups[(r["method"], r["stopper"])][r["sigma"]].append(r)
    means, gaps = {}, {}
    for key, by_sigma in groups.items():
        means[key] = {s: {"psnr": _mean(r["psnr"] for r in rs), "ssim": _mean(r["ssim"] for r in rs),
                          "oracle": _mean(r["oracle_psnr"] for r in rs), "gap": _mean(r["gap"] for r in rs),
                          "gap_max": max(_finite(r["gap"] for r in rs), default=math.nan),
                          "seconds": _mean(r["seconds"] for r in rs), "n": len(rs)} for s, rs in by_sigma.items()}
        all_rows = [r for rs in by_sigma.values() for r in rs]
        g = _finite(r["gap"] for r in all_rows)
        if g:
            gaps[key] = {"median": float(np.median(g)), "p90": float(np.percentile(g, 90)), "max": float(max(g)),
                         "within_1db": float(np.mean(np.array(g) <= 1.0)),
                         "fired": float(np.mean([r["fired_at"] is not None for r in all_rows])), "n": len(g)}
    return {"means": means, "gaps": gaps}


def _summary_markdown(rows: list[dict], meta: dict) -> str:
    stats = summarise(rows)
    sigmas = sorted({r["sigma"] for r in rows if r.get("error") is None})
    errors = [r for r in rows if r.get("error") is not None]
    spec = meta.get("spec", {})
    lines = [
        "# Benchmark summary", "",
        f"Command: `{meta.get('command', '')}`", "",
        f"Date: {meta.get('date')}; machine: {meta.get('machine')}; versions: {meta.get('versions')}", "",
        f"Images: {', '.join(spec.get('folders', []))} (first {spec.get('limit') or 'all'} of each), "
        f"centre crop {spec.get('crop') or 'none (full size)'}; sigmas {spec.get('sigmas')}; seeds {spec.get('seeds')};"
        f" DIP budget {spec.get('max_iter')} iterations.", "",
        f"Noise: {meta.get('noise')}.", "",
        f"Metrics: {PSNR_CONVENTION}; {SSIM_CONVENTION}.", "",
        "The oracle is the best iterate of the SAME trajectory against the clean image (evaluation only); the gap is "
        "oracle PSNR minus the PSNR of what the stopper returned. A DIP trajectory ends early once every attached "
        "stopper has fired and the oracle has not improved for 300 iterations; a stopper that had not fired by the "
        "end of the budget returns its best iterate so far (column 'fired' < 100%).", "",
        "Fixed-step stoppers (`fixed:1800`, `fixed:3000`: the DIP paper's step counts) are not rescaled for crops: "
        "where the PSNR of a DIP fit peaks depends on σ and the network far more than on the image size (on the "
        "128² tuning crops the peaks lay at 600-3000 iterations for σ=15, 270-1320 for σ=25, 260-530 for σ=50, "
        "see benchmarks/results/tuning/).", "",
    ]
    if meta.get("skipped_methods"):
        lines += [f"Skipped (not installed): {', '.join(meta['skipped_methods'])}.", ""]
    lines += ["## Mean PSNR / SSIM at the stop, oracle PSNR of the same run, and mean gap", "",
              "| method | stopper | " + " | ".join(f"σ={s:g}: PSNR / SSIM / oracle / gap" for s in sigmas)
              + " | mean seconds |",
              "|---|---|" + "---|" * len(sigmas) + "---|"]
    for (method, stopper), by_sigma in sorted(stats["means"].items()):
        cells = []
        for s in sigmas:
            m = by_sigma.get(s)
            cells.append("–" if m is None else f"{_fmt(m['psnr'])} / {_fmt(m['ssim'], 3)} / {_fmt(m['oracle'])} / "
                                               f"{_fmt(m['gap'])}")
        secs = _mean(m["seconds"] for m in by_sigma.values())
        lines.append(f"| {method} | {stopper} | " + " | ".join(cells) + f" | {_fmt(secs, 1)} |")
    lines += ["", "## Stop gap per stopper (dB; all images, sigmas and seeds)", "",
              "| method | stopper | n | median | p90 | max | within 1 dB | fired |",
              "|---|---|---|---|---|---|---|---|"]
    for (method, stopper), g in sorted(stats["gaps"].items()):
        lines.append(f"| {method} | {stopper} | {g['n']} | {_fmt(g['median'])} | {_fmt(g['p90'])} | {_fmt(g['max'])} "
                     f"| {100 * g['within_1db']:.0f}% | {100 * g['fired']:.0f}% |")
    if errors:
        lines += ["", f"## Failed rows ({len(errors)})", ""]
        lines += [f"- {r['image']} σ={r['sigma']:g} seed {r['seed']} {r['method']}: {r['error']}" for r in errors]
    return "\n".join(lines) + "\n"


def _curve_figure(curves: list[dict], count: int = 4) -> Figure | None:
    picked = [c for c in curves if c["method"] == "ours"][:count] or curves[:count]
    if not picked:
        return None
    columns = min(2, len(picked))
    rows = -(-len(picked) // columns)
    fig = Figure(figsize=(6.0 * columns, 4.2 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(picked):]:
        ax.set_axis_off()
    for ax, c in zip(axes, picked, strict=False):
        it, value = (np.asarray(v, float) for v in zip(*c["curve"], strict=True))
        ax.plot(it, value, color=COLORS["truth"], lw=1.3, label="PSNR vs clean (evaluation only)")
        peak = int(np.argmax(value))
        ax.plot(it[peak], value[peak], marker="*", ms=13, color="black", ls="none",
                label=f"oracle peak @ {int(it[peak])} (evaluation only)")
        for k, (stopper, stop) in enumerate(sorted(c["stops"].items())):
            if stop:
                ax.plot(stop, np.interp(stop, it, value), marker=_STOPPER_MARKERS[k % len(_STOPPER_MARKERS)],
                        ms=11 if stopper == "recorruption" else 8, ls="none", mec="black", mew=0.6,
                        color=_STOPPER_COLORS[k % len(_STOPPER_COLORS)], label=f"{stopper} @ {stop}")
        top = float(value.max())
        ax.set_ylim(max(float(value.min()), top - 12), top + 1)
        ax.set_title(f"{c['image']} σ={c['sigma']:g} seed {c['seed']} ({c['method']})", fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return fig


def _gap_figure(rows: list[dict]) -> Figure | None:
    groups = defaultdict(list)
    for r in rows:
        if r.get("error") is None and r.get("gap") is not None and r["stopper"] != "oracle":
            groups[f"{r['method']}\n{r['stopper']}"].append(r["gap"])
    if not groups:
        return None
    names = sorted(groups)
    fig = Figure(figsize=(max(6, 0.9 * len(names)), 4.2), layout="constrained")
    ax = fig.subplots()
    ax.boxplot([groups[n] for n in names], whis=(0, 100), widths=0.5)
    rng = np.random.default_rng(0)
    for i, n in enumerate(names, start=1):
        ax.scatter(i + 0.12 * rng.standard_normal(len(groups[n])), groups[n], s=8, color=COLORS["loss"], alpha=0.6)
    ax.set_xticks(range(1, len(names) + 1), names, fontsize=7, rotation=45, ha="right")
    ax.axhline(1.0, color=COLORS["stop"], ls="--", lw=1, label="1 dB")
    ax.set_ylabel("gap to the same run's oracle (dB)")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def write_reports(out: str | Path) -> dict:
    """(Re)write results.csv, results.json, summary.md, curves.png and gaps.png from rows.jsonl.

    Returns
    -------
    dict
        :func:`summarise` of the rows.
    """
    out = Path(out)
    rows = read_records(out / "rows.jsonl")
    meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / "results.csv", buffer.getvalue().encode())
    atomic_write(out / "results.json", (json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n").encode())
    atomic_write(out / "summary.md", _summary_markdown(rows, meta).encode())
    figure = _curve_figure(read_records(out / "curves.jsonl"))
    if figure is not None:
        save_figure(figure, out / "curves.png")
    figure = _gap_figure(rows)
    if figure is not None:
        save_figure(figure, out / "gaps.png")
    return summarise(rows)
