"""A 4000 x 3000 RGB photograph through the command line: does it finish within the memory budget?

Builds a 4000x3000 noisy RGB PNG (a Kodak image enlarged by pixel repetition and cropped, AWGN sigma 25,
clipped, 8-bit) in a temporary folder, runs `dipddpm denoise` on it under `/usr/bin/time -v` with a small
per-tile iteration budget (--max-iter; the memory of a run does not grow with iterations), and prints the
peak resident memory, the tiles used, the wall time and the seconds per tile.

Usage: python benchmarks/large_image.py --image ../shared/data/kodak24/kodim01.png [--max-iter 3]
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dipddpm.io import read_image, write_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--max-iter", type=int, default=3)
    args = parser.parse_args()
    source = read_image(args.image)[..., :3].astype(np.float64) / 255
    reps = (int(np.ceil(3000 / source.shape[0])), int(np.ceil(4000 / source.shape[1])), 1)
    big = np.kron(source, np.ones(reps))[:3000, :4000]
    noisy = np.clip(big + 25 / 255 * np.random.default_rng(0).standard_normal(big.shape), 0, 1)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        write_image(folder / "big.png", np.round(noisy * 255).astype(np.uint8))
        command = [sys.executable, "-m", "dipddpm", "denoise", str(folder / "big.png"), "-o", str(folder / "out.png"),
                   "--max-iter", str(args.max_iter), "--json", str(folder / "run.json"), "--quiet"]
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"dipddpm failed ({done.returncode}): {done.stderr.strip().splitlines()[-1]}")
        peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
        run = json.loads((folder / "run.json").read_text())
        out = read_image(folder / "out.png")
    print(json.dumps({"image": "4000x3000 RGB", "source": args.image, "max_iter_per_tile": args.max_iter,
                      "output_shape": list(out.shape), "tiles": len(run["tiles"]), "tile": run["tile"],
                      "overlap": run["overlap"], "peak_rss_GiB": round(peak_kib / 2**20, 2),
                      "wall_seconds": round(seconds, 1),
                      "seconds_per_tile": round(run["seconds"] / len(run["tiles"]), 2)}))


if __name__ == "__main__":
    main()
