"""Where a clipped image's PSNR estimate goes wrong: its error split into terms with the clean image (issue 15).

For each crop the package's single default run is made twice, σ given, with the plain validation copy
``y - (σ/a) z`` and with the clip-aware one ``y - c z`` (``StoppingConfig.clip_aware_sigma_min`` infinite and 0).
With ``e = y - m(x)`` the clipped noise about its mean, ``f`` the returned fit (``m`` of the declipped result), ``d =
f - m(x)``, ``e'`` the copy's noise and ``w`` the estimator's weights ``1 / max(m'(x_hat), 1/2)^2`` at
``x_hat = m^{-1}(f)``, the recorruption estimate (``RecorruptionStopper.estimated_mse``) is exactly

    gain * [ mean_w(d^2) + (mean_w(e^2) - mean_w(v(x_hat))) + cross residual - 2 mean_w(d e') ]

with ``gain = mean(w)``, ``v`` the clipped noise's variance and the cross residual ``-2 mean_w(c e z)`` plus the
pilot's correction. Printed in units of the true MSE of the declipped result (evaluation only): ``fit`` =
``gain mean_w(d^2)`` (what the estimate aims at), ``model`` = the offset's error, split into ``sampling``
(``mean_w(e^2) - mean_w(v(x))``) and ``point`` (``mean_w(v(x)) - mean_w(v(x_hat))``), ``cross`` and ``d e'``;
the estimate is the sum. A negative term makes the estimate optimistic.

Usage:
    python benchmarks/clipped_estimate_terms.py --images DIR [--images DIR] [--limit 4] [--crop 128] [--sigma 50]
        [--seed 1] [--copy both|plain|clip-aware]
"""

import argparse
import math
from dataclasses import replace

import numpy as np
import torch

from dipddpm.bench.data import list_images, load_crop, make_noisy
from dipddpm.bench.methods import to_tensor
from dipddpm.config import DenoiserConfig
from dipddpm.noise import clipped_mean_inverse, clipped_mean_slope, clipped_noise_moments
from dipddpm.pilot import pilot_estimate
from dipddpm.restore import draw_noise, restore_tensor
from dipddpm.stopping import validation_scale


def _variance(x: np.ndarray, sigma: float) -> np.ndarray:
    bias, second = clipped_noise_moments(x, sigma)
    return second - bias**2


def terms(clean: np.ndarray, noisy: np.ndarray, sigma: float, seed: int, aware: bool) -> dict:
    """One run's estimate and its terms, in units of the true MSE."""
    y = to_tensor(noisy)
    x = clean.transpose(2, 0, 1).astype(np.float64)
    config = DenoiserConfig()
    config = replace(config, stopping=replace(config.stopping, clip_aware_sigma_min=0.0 if aware else math.inf))
    result = restore_tensor(y, sigma, config=config, seed=seed)
    stopper = result.stoppers["recorruption"]
    ratio = result.config["staging"]["ratio"]
    image = result.image.double().numpy()[0]
    bias, _ = clipped_noise_moments(x, sigma)
    mean = x + bias
    e = noisy.transpose(2, 0, 1).astype(np.float64) - mean
    fit = image + clipped_noise_moments(image, sigma)[0]
    x_hat = clipped_mean_inverse(np.clip(fit, 0, 1), sigma)
    w = 1 / np.maximum(clipped_mean_slope(x_hat, sigma), 0.5) ** 2
    gain = float(w.mean())

    def weighted(values: np.ndarray) -> float:
        return float((w * values).sum() / w.sum())

    z = draw_noise(y.shape, seed).double().numpy()[0]
    c = (validation_scale(sigma, ratio, pilot_estimate(y, sigma)).double().numpy()[0] if aware
         else np.full_like(x, sigma / ratio))
    d = fit - mean
    true_mse = float(((image - x) ** 2).mean())
    parts = {"fit": weighted(d**2), "sampling": weighted(e**2) - weighted(_variance(x, sigma)),
             "point": weighted(_variance(x, sigma)) - weighted(_variance(x_hat, sigma)),
             "cross": -2 * weighted(c * e * z) + stopper["cross_correction"], "d e'": -2 * weighted(d * (e - c * z))}
    out = {key: gain * value / true_mse for key, value in parts.items()}
    out["sum"] = sum(out.values())
    out["estimate"] = stopper["estimated_mse"] / true_mse
    out["true_psnr"] = -10 * math.log10(true_mse)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", action="append", default=[], required=True)
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma", type=float, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--copy", choices=("both", "plain", "clip-aware"), default="both")
    args = parser.parse_args()
    copies = {"both": (False, True), "plain": (False,), "clip-aware": (True,)}[args.copy]
    torch.set_num_threads(2)
    keys = ("fit", "sampling", "point", "cross", "d e'", "sum", "estimate")
    print(f"σ = {args.sigma:g} (given), seed {args.seed}; terms in units of the true MSE (estimate = sum)\n")
    print("| crop | copy | true PSNR | " + " | ".join(keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    for path in [p for folder in args.images for p in list_images(folder, args.limit)]:
        name, clean = load_crop(path, args.crop)
        noisy = make_noisy(clean, name, args.sigma, args.seed)
        for aware in copies:
            row = terms(clean, noisy, args.sigma / 255, args.seed, aware)
            print(f"| {name} | {'clip-aware' if aware else 'plain'} | {row['true_psnr']:.2f} | "
                  + " | ".join(f"{row[k]:+.2f}" for k in keys) + " |", flush=True)


if __name__ == "__main__":
    main()
