"""Which training settings reach the PSNR peak in fewer iterations (the time to the stop on a CPU is
iterations x ms per step)? One trajectory per setting, watched by the recorruption stopper and the oracle.

Tuning images only (seed 0, 128^2 centre crops, sigma 25): the first 2 of kodak24, the first of cbsd68.
Prints one JSON line per run: oracle peak PSNR and iteration, the auto-stopped PSNR and iterate, where the
stopper fired, ms per step.

Usage: python benchmarks/iteration_sweep.py [VARIANT,VARIANT,...]
"""

import json
import sys
from dataclasses import replace

from dipddpm.bench.data import list_images, load_clean, make_noisy
from dipddpm.bench.methods import end_when_all_fired, to_tensor
from dipddpm.config import DenoiserConfig
from dipddpm.restore import restore_tensor

BASE = DenoiserConfig()


def _variant(net: dict | None = None, **train) -> DenoiserConfig:
    return replace(BASE, train=replace(BASE.train, net=replace(BASE.train.net, **(net or {})), **train))


VARIANTS = {"base": BASE, "lr0.03": _variant(lr=0.03), "jitter0": _variant(input_jitter=0.0),
            "ema0.95": _variant(ema_decay=0.95), "lr0.003": _variant(lr=0.003), "c64": _variant({"channels": 64})}


def main(names: list[str]) -> None:
    images = list_images("../shared/data/kodak24", 2) + list_images("../shared/data/cbsd68", 1)
    for path in images:
        name = f"{path.parent.name}/{path.stem}"
        clean = load_clean(path, 128)
        noisy = make_noisy(clean, name, 25, 0)

        for variant in names:
            config = replace(VARIANTS[variant], train=replace(VARIANTS[variant].train, max_iter=3000))
            run = restore_tensor(to_tensor(noisy), None, config=config, stopper="oracle", watch=("recorruption",),
                                 reference=to_tensor(clean), seed=0, callbacks=(end_when_all_fired,))
            stop = run.stoppers["recorruption"]
            print(json.dumps({"image": name, "variant": variant, "oracle": round(run.evaluation["oracle_psnr"], 2),
                              "peak": run.evaluation["oracle_iteration"], "auto": round(stop["ref_psnr"], 2),
                              "stop": stop["best_iteration"], "fired": stop["fired_at"],
                              "ms_step": round(1000 * run.seconds_training / run.iterations_run, 1)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1].split(",") if len(sys.argv) > 1 else list(VARIANTS))
