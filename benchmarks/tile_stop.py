"""Tiles: each with its own stop, or one stop shared by all? (issue 4)

Each tile of a noisy crop is restored by the default preset to a fixed budget with the recorruption
stopper watching, and every iterate is kept. Then, from the same trajectories:

- **own stop**: every tile returns what its own recorruption stopper returned (what `restore_tiled` does);
- **shared stop**: the tiles' validation errors pooled, ``v(t) = sum_k N_k v_k(t) / sum_k N_k`` (``N_k``
  the tile's values), stopped by the package's own rule (minimum, patience) — one iteration for all tiles;
- their oracles (evaluation only): every tile at its own best iterate, and the best single iteration
  for all tiles, both blended.

The whole crop is also restored once (the default, its own stop, the same budget) for comparison. Small
tiles are the hard case for the own stop (fewer values, a noisier validation error); the product's tiles
are 512².
The clean image only scores. One JSON line per image.

Usage: python benchmarks/tile_stop.py --images DIR [--images DIR] [--limit 2] [--crop 128] [--tile 80]
                                      [--overlap 16] [--sigma 25] [--seed 0] [--budget 2000]
"""

import argparse
import json
import time
from dataclasses import replace

import torch

from dipddpm.bench.data import list_images, load_clean, make_noisy
from dipddpm.bench.methods import to_tensor
from dipddpm.bench.report import replay_minimum
from dipddpm.bench.scripts import script_meta
from dipddpm.config import DenoiserConfig
from dipddpm.metrics import tensor_psnr
from dipddpm.noise import estimate_sigma
from dipddpm.restore import restore_tensor
from dipddpm.tiling import blend_window, tile_boxes


def pooled_stop(curves: list[list[float]], counts: list[int], patience: int) -> tuple[int, int | None]:
    """``(best iteration, fired_at)`` (1-based) of the minimum-with-patience rule on the pooled validation error."""
    pooled = [sum(n * c[t] for n, c in zip(counts, curves, strict=True)) / sum(counts)
              for t in range(min(len(c) for c in curves))]
    best, fired = replay_minimum(pooled, patience)
    return best + 1, None if fired is None else fired + 1


def blend(tiles: list[dict], weights: torch.Tensor, pick) -> torch.Tensor:
    """The tiles' images ``pick(tile)`` blended with their windows, normalised by the summed ``weights``."""
    image = torch.zeros(1, tiles[0]["frames"][0].shape[1], *weights.shape[2:])
    for tile in tiles:
        image[tile["window"]] += tile["w"] * pick(tile)
    return image / weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", action="append", required=True)
    parser.add_argument("--limit", type=int, default=2)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--tile", type=int, default=80)
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=2000)
    args = parser.parse_args()
    patience = DenoiserConfig().stopping.patience
    print(json.dumps({**script_meta("benchmarks/tile_stop.py"), "patience": patience}), flush=True)
    for path in [p for folder in args.images for p in list_images(folder, args.limit)]:
        name = f"{path.parent.name}/{path.stem}"
        clean = load_clean(path, args.crop)
        noisy = make_noisy(clean, name, args.sigma, args.seed)
        y, ref = to_tensor(noisy), to_tensor(clean)
        sigma = estimate_sigma(noisy, channel_axis=-1)
        config = DenoiserConfig()
        config = replace(config, train=replace(config.train, max_iter=args.budget))
        whole = restore_tensor(y, sigma, config=config, reference=ref, seed=args.seed)
        boxes = tile_boxes(y.shape[2], y.shape[3], args.tile, args.overlap)
        weights = torch.zeros(1, 1, *y.shape[2:])
        tiles = []
        start = time.perf_counter()
        for top, left, th, tw in boxes:
            window = (slice(None), slice(None), slice(top, top + th), slice(left, left + tw))
            frames = []

            def keep(info, frames=frames):
                frames.append(info.output.detach().clone())
                return False

            run = restore_tensor(y[window], sigma, stopper=f"fixed:{args.budget}", watch=("recorruption",),
                                 reference=ref[window], seed=args.seed, callbacks=(keep,))
            own = run.stoppers["recorruption"]
            w = blend_window(th, tw, args.overlap)[None, None]
            weights[window] += w
            tiles.append({"window": window, "w": w, "frames": frames, "curve": run.history["recorruption"],
                          "count": y[window].numel(), "own": (own["best_iteration"], own["fired_at"]),
                          "own_image": run.outputs["recorruption"]})
        seconds = time.perf_counter() - start

        shared_best, shared_fired = pooled_stop([t["curve"] for t in tiles], [t["count"] for t in tiles], patience)
        common = [tensor_psnr(blend(tiles, weights, lambda tile, t=t: tile["frames"][t - 1]), ref)
                  for t in range(1, args.budget + 1)]
        own_oracle = blend(tiles, weights, lambda tile, ref=ref: max(
            tile["frames"], key=lambda f: tensor_psnr(f, ref[tile["window"]])))
        row = {"image": name, "crop": args.crop, "tile": args.tile, "overlap": args.overlap, "tiles": len(tiles),
               "sigma": args.sigma, "seed": args.seed, "sigma_used": round(sigma * 255, 2),
               "whole_psnr": round(whole.evaluation["ref_psnr"], 3),
               "whole_oracle": round(whole.evaluation["oracle_psnr"], 3), "whole_stop": whole.stop_iteration,
               "whole_fired": whole.iterations_run,
               "own_psnr": round(tensor_psnr(blend(tiles, weights, lambda t: t["own_image"]), ref), 3),
               "own_oracle": round(tensor_psnr(own_oracle, ref), 3),
               "own_stops": [t["own"][0] for t in tiles], "own_fired": [t["own"][1] for t in tiles],
               "shared_psnr": round(common[shared_best - 1], 3), "shared_stop": shared_best,
               "shared_fired": shared_fired,
               "shared_oracle": round(max(common), 3), "shared_oracle_iteration": 1 + common.index(max(common)),
               "tile_seconds": round(seconds, 1)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
