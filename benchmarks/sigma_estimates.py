"""How well is sigma estimated on clipped, 8-bit noisy images? scikit-image's wavelet MAD vs ours.

Tuning images only (first 4 of Kodak24 and of CBSD68, 128x128 and 256x256 centre crops), the same
noise as the benchmark. Writes benchmarks/results/sigma_estimates.md.

Usage: python benchmarks/sigma_estimates.py [DATA_DIR]   (default ../shared/data)
"""

import sys
from pathlib import Path

import numpy as np
from skimage.restoration import estimate_sigma as skimage_sigma

from dipddpm.bench.data import list_images, load_clean, make_noisy
from dipddpm.noise import estimate_sigma

DATA = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
OUT = Path(__file__).parent / "results" / "sigma_estimates.md"


def main() -> None:
    lines = ["# Noise-level estimates on clipped 8-bit images", "",
             f"Command: `python benchmarks/sigma_estimates.py {DATA}`", "",
             "Relative error sigma_hat / sigma - 1 over the 8 tuning images (first 4 of kodak24 and cbsd68), "
             "seed 0, benchmark noise (clipped to [0, 1], 8-bit).", "",
             "| crop | sigma | scikit-image mean | scikit-image max abs | dipddpm mean | dipddpm max abs |",
             "|---|---|---|---|---|---|"]
    paths = [(f"{folder}/{p.stem}", p) for folder in ("kodak24", "cbsd68") for p in list_images(DATA / folder, 4)]
    for crop in (128, 256):
        for sigma in (15, 25, 50):
            ours, theirs = [], []
            for name, path in paths:
                clean = load_clean(path, crop)
                noisy = make_noisy(clean, name, sigma, 0)
                ours.append(estimate_sigma(noisy, channel_axis=-1) * 255 / sigma - 1)
                theirs.append(skimage_sigma(noisy, channel_axis=-1, average_sigmas=True) * 255 / sigma - 1)
            ours, theirs = np.array(ours), np.array(theirs)
            lines.append(f"| {crop} | {sigma} | {100 * theirs.mean():+.1f}% | {100 * np.abs(theirs).max():.1f}% "
                         f"| {100 * ours.mean():+.1f}% | {100 * np.abs(ours).max():.1f}% |")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
