"""How much of the recorruption estimate's cross term a pilot ``g(y)`` leaves unknown (issue 15, part 3).

A single run's estimate carries ``-2 (σ/a) mean(n z)``; the package estimates ``mean(n z)`` by ``mean((y - g) z)``
(:func:`dipddpm.stopping.noise_cross_estimate`), leaving ``mean((m - g) z)``, whose standard deviation over ``z`` is
``sqrt(mean((m - g)^2) / N)`` against ``sqrt(mean((y - m)^2) / N)`` for the term itself (``m`` the clipped mean of
``y``, :func:`dipddpm.noise.clipped_noise_moments`; evaluation only). This prints their ratio,
``sqrt(mean((m - g)^2) / mean((y - m)^2))``, for four pilots: the package's wavelet BayesShrink
(:func:`dipddpm.pilot.pilot_estimate`), the same averaged over the 16 shifts of up to 3 px in each direction
(scikit-image's ``cycle_spin``, translation-invariant), NL-means (scikit-image, fast mode, ``h = 0.8 σ``) and a
Gaussian blur (1 px). Crops and noise as in ``benchmarks/ensemble.py`` (8-bit clipped noise).

Usage:
    python benchmarks/pilot_error.py --images DIR [--images DIR] [--limit 4] [--crop 128] [--sigma 15,25,50] [--seed 0]
"""

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from skimage.restoration import cycle_spin, denoise_nl_means, denoise_wavelet

from dipddpm.bench.data import list_images, load_crop, make_noisy
from dipddpm.noise import clipped_noise_moments
from dipddpm.pilot import pilot_estimate


def pilots(noisy: np.ndarray, sigma: float) -> dict:
    """Each pilot's estimate of the clipped mean, and its seconds."""
    found = {}
    start = time.perf_counter()
    tensor = torch.from_numpy(np.ascontiguousarray(noisy.transpose(2, 0, 1)))[None]
    found["wavelet (package)"] = (pilot_estimate(tensor, sigma)[0].numpy().transpose(1, 2, 0),
                                  time.perf_counter() - start)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Level value of", category=UserWarning)
        options = {"sigma": sigma, "channel_axis": -1, "mode": "soft", "method": "BayesShrink", "rescale_sigma": True,
                   "convert2ycbcr": noisy.shape[-1] == 3}
        found["wavelet, cycle-spun"] = (cycle_spin(noisy, denoise_wavelet, max_shifts=3, channel_axis=-1, workers=1,
                                                   func_kw=options), time.perf_counter() - start)
    start = time.perf_counter()
    found["NL-means"] = (denoise_nl_means(noisy, h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5,
                                          patch_distance=6, channel_axis=-1), time.perf_counter() - start)
    start = time.perf_counter()
    found["blur 1 px"] = (gaussian_filter(noisy, (1, 1, 0)), time.perf_counter() - start)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", action="append", default=[])
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma", default="15,25,50")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths = [p for folder in args.images for p in list_images(folder, args.limit)]
    print("| σ | pilot | n | ratio: mean | max | seconds (median) |\n|---|---|---|---|---|---|")
    for sigma255 in (float(s) for s in args.sigma.split(",")):
        ratios: dict = {}
        for path in paths:
            row_name, clean = load_crop(path, args.crop)
            noisy = make_noisy(clean, row_name, sigma255, args.seed)
            bias, _ = clipped_noise_moments(clean, sigma255 / 255)
            mean = clean + bias
            noise_energy = float(np.mean((noisy - mean) ** 2))
            for name, (pilot, seconds) in pilots(noisy, sigma255 / 255).items():
                ratio = float(np.sqrt(np.mean((mean - pilot) ** 2) / noise_energy))
                ratios.setdefault(name, []).append((ratio, seconds))
        for name, values in ratios.items():
            r = [v[0] for v in values]
            print(f"| {sigma255:g} | {name} | {len(r)} | {statistics.mean(r):.2f} | {max(r):.2f} | "
                  f"{statistics.median(v[1] for v in values):.3f} |")


if __name__ == "__main__":
    main()
