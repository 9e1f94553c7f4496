"""Speed of dipddpm: per-step cost of each preset and knob, time to the auto-stopped result, and quality.

Three measurements, each printed as a markdown table and saved as JSON under --out:

  steps    ms per training step (forward, backward, Adam, EMA and the stoppers, i.e. the real loop)
           for every preset at 128^2, 256^2 and 512^2, with the memory estimate beside the measured peak.
  knobs    ms per step at one size for one change at a time from the default network (input channels,
           width, skips, upsampling, padding, channels_last, bf16 autocast, threads).
  quality  on noisy crops (AWGN, clipped, 8-bit): the default preset's time to its auto-stopped result
           and its PSNR; the paper preset's oracle peak (its run ends 300 iterations after the peak or at
           its 3000 iterations) on a crop it can afford, and ours on that crop; ZS-N2N's time and PSNR. The
           clean image is used only for the scores and the oracle.

Timings interleave the configurations in rounds and report the median, because this machine's step
times drift by 30% from minute to minute. Run nothing else meanwhile.

Usage:
  python benchmarks/speed.py steps   [--sizes 128,256,512] [--out DIR]
  python benchmarks/speed.py knobs   [--size 256] [--out DIR]
  python benchmarks/speed.py quality --images DIR [--limit N] [--crop 256] [--paper-crop 128] [--sigma 25]
                                     [--paper-budget 3000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dipddpm.bench.data import list_images, load_clean, make_noisy
from dipddpm.bench.methods import to_tensor
from dipddpm.bench.scripts import script_meta, write_script_results
from dipddpm.bench.zsn2n import zsn2n_denoise
from dipddpm.config import DenoiserConfig
from dipddpm.memory import estimate_memory
from dipddpm.metrics import psnr
from dipddpm.presets import PRESETS
from dipddpm.restore import restore_tensor


class _StepClock:
    """Callback recording the wall time of every iteration."""

    def __init__(self):
        self.times: list[float] = []

    def __call__(self, info) -> None:
        if info.output.is_cuda:
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())


def _step_times(config: DenoiserConfig, stopper: str, size: int, steps: int, device: str,
                bf16: bool = False) -> list[float]:
    """Per-step seconds of the real training loop on a random ``size``^2 RGB image (first 2 dropped)."""
    rng = np.random.default_rng(0)
    y = to_tensor(rng.random((size, size, 3)), device)
    clock = _StepClock()
    config = replace(config, train=replace(config.train, max_iter=steps + 2))
    with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
        restore_tensor(y, 25 / 255, config=config, stopper=stopper, callbacks=(clock,))
    return list(np.diff(clock.times[1:]))


def _interleaved(cases: dict, size: int, rounds: int, steps: int, device: str) -> dict[str, float]:
    """Median ms per step of each case, measured round-robin."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (config, stopper, bf16) in cases.items():
            samples[name] += _step_times(config, stopper, size, steps, device, bf16)
    return {name: 1000 * statistics.median(s) for name, s in samples.items()}


def _peak_memory(preset: str, size: int) -> float:
    """Peak resident memory (bytes) of 3 steps of ``preset`` at ``size``^2 above the resident memory before
    them, in a fresh interpreter (Linux: the peak counter is reset through /proc/self/clear_refs after a
    warm-up run at 32^2, so imports do not count)."""
    code = ("import torch\n"
            "from dataclasses import replace\n"
            "from dipddpm.presets import PRESETS\n"
            "from dipddpm.restore import restore_tensor\n"
            f"c = PRESETS[{preset!r}].config\n"
            "def status(key):\n"
            "    line = [x for x in open('/proc/self/status') if x.startswith(key)][0]\n"
            "    return int(line.split()[1]) * 1024\n"
            "def go(n):\n"
            "    restore_tensor(torch.rand(1, 3, n, n), 0.1, config=replace(c, train=replace(c.train, max_iter=3)),\n"
            "                   stopper='fixed')\n"
            "go(32)\n"
            "before = status('VmRSS')\n"
            "open('/proc/self/clear_refs', 'w').write('5')\n"
            f"go({size})\n"
            "print(status('VmHWM') - before)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure_steps(sizes: list[int], rounds: int, steps: int, device: str) -> list[dict]:
    """ms per step of every preset at every size, and memory estimate vs measured peak (CPU only)."""
    rows = []
    for size in sizes:
        cases = {name: (p.config, p.stopper, False) for name, p in PRESETS.items()}
        paper_steps = 2 if size >= 512 else 3
        ms = _interleaved({k: v for k, v in cases.items() if k != "paper"}, size, rounds, steps, device)
        ms.update(_interleaved({"paper": cases["paper"]}, size, 1, paper_steps, device))
        for name, preset in PRESETS.items():
            row = {"preset": name, "size": size, "ms_per_step": ms[name],
                   "estimated_bytes": estimate_memory(size, size, 3, preset.config.train.net)}
            if device == "cpu" and not (name == "paper" and size > 256):
                row["measured_peak_bytes"] = _peak_memory(name, size)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def _knob_cases() -> dict:
    base = DenoiserConfig()
    net = base.train.net

    def with_net(**changes) -> DenoiserConfig:
        return replace(base, train=replace(base.train, net=replace(net, **changes)))

    cases = {"default": (base, "recorruption", False),
             "bf16 autocast": (base, "recorruption", True)}
    for channels in sorted({8, 16, 32} - {net.input_channels}):
        cases[f"input channels {channels}"] = (with_net(input_channels=channels), "recorruption", False)
    for width in sorted({16, 24, 32, 48} - {net.channels}):
        cases[f"width {width}"] = (with_net(channels=width), "recorruption", False)
    cases["no skips"] = (with_net(skip_channels=0), "recorruption", False)
    cases["depth 4"] = (with_net(depth=4), "recorruption", False)
    cases["nearest upsampling" if net.upsample == "bilinear" else "bilinear upsampling"] = (
        with_net(upsample="nearest" if net.upsample == "bilinear" else "bilinear"), "recorruption", False)
    cases["reflect padding"] = (with_net(padding_mode="reflect"), "recorruption", False)
    return cases


def measure_knobs(size: int, rounds: int, steps: int, device: str) -> list[dict]:
    """ms per step for one change at a time from the default, plus channels_last and one thread."""
    rows = [{"knob": k, "size": size, "ms_per_step": v}
            for k, v in _interleaved(_knob_cases(), size, rounds, steps, device).items()]
    base = DenoiserConfig()
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
        rows.append({"knob": "1 thread", "size": size, "ms_per_step": _interleaved(
            {"1": (base, "recorruption", False)}, size, rounds, steps, device)["1"]})
        torch.set_num_threads(threads)
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def _past_the_peak(info) -> bool:
    """End a run watched only for its oracle peak 300 iterations after the peak (evaluation only)."""
    return info.iteration - (info.stoppers["oracle"].best_iteration or 0) >= 300


def measure_quality(images: list[Path], crop: int, paper_crop: int, sigma255: float, paper_budget: int,
                    seed: int, device: str) -> list[dict]:
    """Default preset (auto stop) vs the paper preset's oracle peak vs ZS-N2N, image by image."""
    rows = []
    default, paper = PRESETS["default"], PRESETS["paper"]
    for path in images:
        name = f"{path.parent.name}/{path.stem}"
        clean = load_clean(path, crop)
        noisy = make_noisy(clean, name, sigma255, seed)
        y, ref = to_tensor(noisy, device), to_tensor(clean, device)
        ours = restore_tensor(y, None, config=default.config, stopper=default.stopper, reference=ref, seed=seed)
        start = time.perf_counter()
        zs = np.clip(zsn2n_denoise(noisy, -1, seed=seed, device=device), 0, 1)
        zs_seconds = time.perf_counter() - start
        row = {"image": name, "crop": crop, "sigma": sigma255, "seed": seed,
               "ours_psnr": ours.evaluation["ref_psnr"], "ours_seconds": ours.seconds,
               "ours_stop": ours.stop_iteration, "ours_iterations": ours.iterations_run,
               "ours_oracle_psnr": ours.evaluation["oracle_psnr"], "zsn2n_psnr": psnr(zs, clean),
               "zsn2n_seconds": zs_seconds}
        small_clean = load_clean(path, paper_crop)
        small_noisy = make_noisy(small_clean, name, sigma255, seed)
        ys, refs = to_tensor(small_noisy, device), to_tensor(small_clean, device)
        config = replace(paper.config, train=replace(paper.config.train, max_iter=paper_budget))
        paper_run = restore_tensor(ys, sigma255 / 255, config=config, stopper="oracle", reference=refs, seed=seed,
                                   callbacks=(_past_the_peak,))
        ours_small = ours if paper_crop == crop else restore_tensor(ys, None, config=default.config,
                                                                    stopper=default.stopper, reference=refs,
                                                                    seed=seed)
        row.update({"paper_crop": paper_crop, "paper_oracle_psnr": paper_run.evaluation["oracle_psnr"],
                    "paper_oracle_iteration": paper_run.evaluation["oracle_iteration"],
                    "paper_iterations": paper_run.iterations_run, "paper_seconds": paper_run.seconds,
                    "ours_small_psnr": ours_small.evaluation["ref_psnr"]})
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _table(rows: list[dict], columns: list[str]) -> str:
    def cell(v):
        return f"{v:.2f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("steps", "knobs", "quality"))
    parser.add_argument("--sizes", default="128,256,512")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--images", action="append", default=[])
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--paper-crop", type=int, default=128)
    parser.add_argument("--paper-budget", type=int, default=3000)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("speed-results"))
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    if args.what == "steps":
        rows = measure_steps([int(s) for s in args.sizes.split(",")], args.rounds, args.steps, args.device)
        for r in rows:
            r["estimated_MiB"] = r["estimated_bytes"] / 2**20
            if "measured_peak_bytes" in r:
                r["measured_MiB"] = r["measured_peak_bytes"] / 2**20
        table = _table(rows, ["preset", "size", "ms_per_step", "estimated_MiB", "measured_MiB"])
    elif args.what == "knobs":
        rows = measure_knobs(args.size, args.rounds, args.steps, args.device)
        table = _table(rows, ["knob", "size", "ms_per_step"])
    else:
        images = [p for folder in args.images for p in list_images(folder, args.limit)]
        if not images:
            parser.error("quality needs --images")
        rows = measure_quality(images, args.crop, args.paper_crop, args.sigma, args.paper_budget, args.seed,
                               args.device)
        table = _table(rows, ["image", "ours_psnr", "ours_oracle_psnr", "ours_seconds", "ours_stop",
                              "zsn2n_psnr", "zsn2n_seconds", "paper_crop", "ours_small_psnr",
                              "paper_oracle_psnr", "paper_oracle_iteration", "paper_seconds"])
    meta = {**script_meta("benchmarks/speed.py", args.device), "started": started,
            "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    write_script_results(args.out / f"{args.what}.json", args.out / f"{args.what}.md", meta, rows, table)
    print(table)


if __name__ == "__main__":
    main()
