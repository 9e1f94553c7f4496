"""Are the recorruption's training and validation noises independent on real (clipped) images? (issues 13, 15)

The final stage trains on ``y + a σ z`` and validates on ``y - (σ/a) z``. With ``y = x + n``, the training noise
``w = n + a σ z`` and the validation noise ``u = n - (σ/a) z`` have ``E[w u] = Var(n) - σ²``: zero when ``n`` is
Gaussian of variance σ² and σ is known, negative when the noise holds less than σ² — where it was clipped at black
or white (8-bit images) and wherever σ is read high. A fit that has taken up a fraction ``c`` of its training
noise then has a validation error ``c² mean(w²) - 2 c mean(w u) + mean(u²)`` (the signal left aside): besides the
true error's rise ``c² mean(w²)`` it rises by ``-2 c mean(w u)``, linearly in ``c``. So past the validation
minimum the validation error rises faster than the true error, and the minimum comes early.

This prints ``r = mean(w u) / σ²`` (σ the true noise level) over the crops of ``benchmarks/ensemble.py`` (same
noise, same ``z`` as the package's run of that seed, ``a`` the package default) for the noise unclipped (Gaussian,
same draw), clipped and quantised as the benchmarks make it, and clipped with the package's own σ estimate in the
recorruption. No network is trained: ``mean(w u)`` is the slope that any fit would feel.

Usage:
    python benchmarks/noise_correlation.py --images DIR [--images DIR] [--limit 4] [--crop 128]
        [--sigma 15,25,50] [--seed 1]
"""

import argparse
import statistics

import numpy as np

from dipddpm.bench.data import list_images, load_crop, make_noisy, noise_seed
from dipddpm.config import StagingConfig
from dipddpm.noise import add_gaussian_noise, estimate_sigma
from dipddpm.restore import draw_noise


def correlation(clean: np.ndarray, noisy: np.ndarray, z: np.ndarray, sigma: float, sigma_used: float,
                ratio: float) -> float:
    """``mean(w u) / sigma²`` for ``w = y - x + a s z`` and ``u = y - x - (s / a) z``, ``s = sigma_used``."""
    noise = noisy - clean
    train = noise + ratio * sigma_used * z
    validation = noise - (sigma_used / ratio) * z
    return float(np.mean(train * validation) / sigma**2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", action="append", default=[])
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma", default="15,25,50")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    ratio = StagingConfig().ratio
    paths = [p for folder in args.images for p in list_images(folder, args.limit)]
    print(f"a = {ratio}; r = mean(w u) / σ², mean [min, max] over {len(paths)} crops, seed {args.seed}\n")
    print("| σ | unclipped, σ given | clipped (8-bit), σ given | clipped, σ estimated | σ estimated / σ: mean |")
    print("|---|---|---|---|---|")
    for sigma255 in (float(s) for s in args.sigma.split(",")):
        sigma = sigma255 / 255
        found: dict = {"unclipped": [], "clipped": [], "estimated": [], "sigma_ratio": []}
        for path in paths:
            name, clean = load_crop(path, args.crop)
            noisy = make_noisy(clean, name, sigma255, args.seed)
            gaussian = add_gaussian_noise(clean, sigma, np.random.default_rng(noise_seed(name, sigma255, args.seed)),
                                          clip=False, bits=None)
            z = draw_noise((1, clean.shape[2], *clean.shape[:2]), args.seed)[0].numpy().transpose(1, 2, 0)
            estimated = estimate_sigma(noisy, channel_axis=-1)
            found["unclipped"].append(correlation(clean, gaussian, z, sigma, sigma, ratio))
            found["clipped"].append(correlation(clean, noisy, z, sigma, sigma, ratio))
            found["estimated"].append(correlation(clean, noisy, z, sigma, estimated, ratio))
            found["sigma_ratio"].append(estimated / sigma)
        cells = [f"{statistics.mean(v):+.3f} [{min(v):+.3f}, {max(v):+.3f}]"
                 for v in (found["unclipped"], found["clipped"], found["estimated"])]
        print(f"| {sigma255:g} | {' | '.join(cells)} | {statistics.mean(found['sigma_ratio']):.3f} |")


if __name__ == "__main__":
    main()
