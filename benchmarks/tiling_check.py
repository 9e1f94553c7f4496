"""Does restoring in tiles (each with its own network and stop) cost quality against the whole image?

On noisy centre crops (AWGN, clipped, 8-bit, the benchmark's noise) the default preset restores each crop
whole and in overlapping tiles; prints PSNR of both, the oracle of each (whole: the run's best iterate;
tiled: every tile's own best iterate, blended), the tiles' stop iterations and the wall time. The clean
image is used only for the scores.

Usage: python benchmarks/tiling_check.py --images DIR [--limit 2] [--crop 256] [--tile 144] [--overlap 16]
                                         [--sigma 25] [--seed 1] [--tiled-only]

--tiled-only skips the whole-image run (the same run as `speed.py quality`'s "ours" at the same crop,
sigma and seed, whose numbers can be read there).
"""

import argparse
import functools
import json

from dipddpm.bench.data import list_images, load_clean, make_noisy
from dipddpm.bench.methods import to_tensor
from dipddpm.noise import estimate_sigma
from dipddpm.restore import restore_tensor
from dipddpm.tiling import restore_tiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", action="append", required=True)
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--tile", type=int, default=144)
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tiled-only", action="store_true")
    args = parser.parse_args()
    for path in [p for folder in args.images for p in list_images(folder, args.limit)]:
        name = f"{path.parent.name}/{path.stem}"
        clean = load_clean(path, args.crop)
        noisy = make_noisy(clean, name, args.sigma, args.seed)
        y, ref = to_tensor(noisy), to_tensor(clean)
        sigma = estimate_sigma(noisy, channel_axis=-1)
        whole = None if args.tiled_only else restore_tensor(y, sigma, reference=ref, seed=args.seed)

        restore = functools.partial(restore_tensor, seed=args.seed)
        tiled = restore_tiled(y, sigma, args.tile, args.overlap, restore, reference=ref)
        row = {"image": name, "crop": args.crop, "sigma": args.sigma, "seed": args.seed, "tile": args.tile,
               "overlap": args.overlap, "tiles": len(tiled.tiles),
               "tiled_psnr": round(tiled.evaluation["ref_psnr"], 3),
               "tiled_oracle": round(tiled.evaluation["oracle_psnr"], 3),
               "tile_stops": tiled.stop_iterations, "tiled_seconds": round(tiled.seconds, 1)}
        if whole is not None:
            row.update({"whole_psnr": round(whole.evaluation["ref_psnr"], 3),
                        "whole_oracle": round(whole.evaluation["oracle_psnr"], 3),
                        "whole_stop": whole.stop_iteration, "whole_seconds": round(whole.seconds, 1)})
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
