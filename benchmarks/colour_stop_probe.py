"""A stop per colour component, and averaging late iterates: what would they gain? (issue 13, a probe)

One run returns one iterate for all three colour channels, at the minimum of its validation error. In an
orthonormal opponent basis (luminance ``Y = (R + G + B)/sqrt 3`` and the two chrominances ``C1 = (R - B)/sqrt 2``,
``C2 = (R - 2G + B)/sqrt 6``) the validation error splits exactly into three parts,
``v = (v_Y + v_C1 + v_C2) / 3``, and each part is still its component's true error plus a constant (the
basis is orthonormal, so the training and validation noises stay uncorrelated component by component). Each
component can therefore have its own minimum: the result's luminance from one iterate, its chrominance from
another, each chosen without the clean image.

This probe runs single runs (package defaults, σ estimated) with a long patience (``--run-patience``) and records,
per iteration of the final stage, each component's validation error and (evaluation only) its true error against
the clean crop, and keeps the returned (EMA) iterate every ``--every`` iterations. ``--report`` replays:

- ``one stop``: the package's stop (patience 150) on the whole validation error — what a run returns today;
- ``per component, in the run``: each component at its own validation minimum, searched up to where the package's
  run ends (its stop + 150), so no longer a run;
- ``per component, own patience``: each component's minimum with patience 150 of its own (the run goes on until
  the last one fires);
- ``oracle per component``: each component at its true best (evaluation only: the bound);
- ``window w``: the average of the kept iterates from the stop to ``w`` iterations after it.

PSNRs are of the fit (not declipped). Rows: one per crop and σ.

Usage:
    python benchmarks/colour_stop_probe.py --images DIR [--images DIR] [--limit 4] [--crop 128] [--sigma 15,25,50]
        [--seed 0] [--run-patience 400] [--every 10] [--threads 2] --out FILE.jsonl [--resume]
    python benchmarks/colour_stop_probe.py --report FILE.jsonl [FILE.jsonl ...]
"""

import argparse
import json
import math
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dipddpm.bench.data import list_images, load_crop, make_noisy
from dipddpm.bench.report import read_records, replay_minimum
from dipddpm.bench.scripts import open_rows
from dipddpm.colour import component_mse
from dipddpm.config import DenoiserConfig
from dipddpm.metrics import tensor_psnr
from dipddpm.restore import restore_tensor

STOP_PATIENCE = 150
WINDOWS = (50, 100, 200)

class ComponentCurves:
    """Per iteration of the final stage: the components' validation and true errors; every ``every``-th iterate."""

    def __init__(self, clean: torch.Tensor, every: int):
        self.clean = clean
        self.every = every
        self.validation: list[list[float]] = []
        self.truth: list[list[float]] = []
        self.kept: dict[int, torch.Tensor] = {}

    def __call__(self, info) -> None:
        stopper = info.stoppers["recorruption"]
        self.validation.append(component_mse(info.output, stopper.validation))
        self.truth.append(component_mse(info.output, self.clean))
        if info.iteration % self.every == 0:
            self.kept[info.iteration] = info.output.detach().double().clone()


def psnr(mse: float) -> float:
    return -10.0 * math.log10(mse)


def window_psnrs(curves: ComponentCurves, stop: int, clean: torch.Tensor) -> dict[str, float]:
    """PSNR of the average of the kept iterates in ``[stop, stop + w]`` for each window ``w`` (evaluation only)."""
    out = {}
    for w in WINDOWS:
        kept = [image for t, image in curves.kept.items() if stop <= t <= stop + w]
        if kept and max(curves.kept) >= stop + w:
            out[str(w)] = tensor_psnr(torch.stack(kept).mean(dim=0), clean)
    return out


def measure(args) -> None:
    out = Path(args.out)
    done = open_rows(out, args.resume, "benchmarks/colour_stop_probe.py")
    torch.set_num_threads(args.threads)
    base = DenoiserConfig()
    config = replace(base, stopping=replace(base.stopping, patience=args.run_patience))
    for path in [p for folder in args.images for p in list_images(folder, args.limit)]:
        name, clean = load_crop(path, args.crop)
        if clean.shape[-1] != 3:
            continue
        for sigma255 in args.sigma:
            if (name, sigma255, args.seed) in done:
                continue
            noisy = make_noisy(clean, name, sigma255, args.seed)
            y = torch.from_numpy(np.ascontiguousarray(noisy.transpose(2, 0, 1))).float()[None]
            x = torch.from_numpy(np.ascontiguousarray(clean.transpose(2, 0, 1))).float()[None]
            curves = ComponentCurves(x, args.every)
            result = restore_tensor(y, None, config=config, seed=args.seed, callbacks=[curves])
            stop, _ = replay_minimum([sum(v) / 3 for v in curves.validation], STOP_PATIENCE)
            row = {"image": name, "sigma": sigma255, "seed": args.seed, "crop": args.crop,
                   "sigma_used": result.sigma_used, "run_patience": args.run_patience,
                   "validation": curves.validation, "truth": curves.truth,
                   "window_psnr": window_psnrs(curves, stop + 1, x)}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{name} σ={sigma255:g}: {len(curves.validation)} iterations, stop {stop + 1}", flush=True)


def _replayed(row: dict) -> dict[str, float]:
    """The policies of the module docstring, as PSNRs of one row."""
    validation, truth = np.array(row["validation"]), np.array(row["truth"])
    stop, fired = replay_minimum(validation.mean(axis=1).tolist(), STOP_PATIENCE)
    end = len(validation) if fired is None else fired + 1
    own = [replay_minimum(validation[:, c].tolist(), STOP_PATIENCE)[0] for c in range(3)]
    in_run = [int(np.argmin(validation[:end, c])) for c in range(3)]
    return {
        "one stop": psnr(truth[stop].mean()),
        "per component, in the run": psnr(np.mean([truth[t, c] for c, t in enumerate(in_run)])),
        "per component, own patience": psnr(np.mean([truth[t, c] for c, t in enumerate(own)])),
        "oracle per component": psnr(truth.min(axis=0).mean()),
        "oracle one iterate": psnr(truth.mean(axis=1).min()),
        **{f"window {w}": v for w, v in row["window_psnr"].items()},
        "stop": stop + 1, **{f"stop {name}": t + 1 for name, t in zip(("Y", "C1", "C2"), in_run, strict=True)},
    }


def report(rows: list[dict]) -> str:
    policies = ["per component, in the run", "per component, own patience", "oracle per component",
                "oracle one iterate"] + [f"window {w}" for w in WINDOWS]
    groups: dict = {}
    for r in rows:
        groups.setdefault(r["sigma"], []).append(_replayed(r))
    lines = ["| σ | n | one stop (PSNR) | " + " | ".join(policies) + " | stop: one / Y / C1 / C2 (median) |",
             "|---|---|---|" + "---|" * (len(policies) + 1)]
    for sigma, rs in sorted(groups.items()):
        cells = []
        for p in policies:
            values = [r[p] - r["one stop"] for r in rs if p in r]
            cells.append(f"{statistics.mean(values):+.2f} [{min(values):+.2f}, {max(values):+.2f}]" if values else "")
        stops = " / ".join(f"{statistics.median(r[k] for r in rs):.0f}"
                           for k in ("stop", "stop Y", "stop C1", "stop C2"))
        lines.append(f"| {sigma:g} | {len(rs)} | {statistics.mean(r['one stop'] for r in rs):.2f} | "
                     + " | ".join(cells) + f" | {stops} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", action="append", default=[])
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma", default="15,25,50")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-patience", type=int, default=400)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--report", nargs="+", type=Path)
    args = parser.parse_args()
    if args.report:
        print(report([r for path in args.report for r in read_records(path) if "image" in r]))
        return
    args.sigma = [float(s) for s in args.sigma.split(",")]
    measure(args)


if __name__ == "__main__":
    main()
