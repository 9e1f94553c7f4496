"""Large images: restore overlapping tiles, each with its own network and its own stop, and blend them.

Tiles are ``tile x tile`` squares (clipped to the image) whose neighbours overlap by ``overlap``
pixels; the last tile of a row or column is flush with the image border. Each pixel of the result
is the weighted mean of the tiles that cover it, with separable weights that ramp linearly over
the overlap (:func:`blend_window`), so seams fade over ``overlap`` pixels.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from .errors import InputError
from .executors import run_in_order
from .memory import estimate_memory
from .metrics import tensor_psnr
from .nets import NetConfig
from .restore import estimate_withheld
from .result import TiledRestoration, versions

__all__ = ["RUN_TIME_EXPONENT", "blend_window", "choose_tile", "restore_tiled", "tile_boxes", "tile_starts",
           "time_tile"]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Offsets of the tiles along one axis.

    ``0, s, 2s, ...`` with stride ``s = tile - overlap``, the last one moved to ``length - tile`` so
    the tiles end at the border; a single tile at 0 when ``length <= tile``.

    Parameters
    ----------
    length : int
        Image size along the axis.
    tile : int
        Tile size.
    overlap : int
        Overlap of neighbouring tiles, ``0 <= overlap < tile``.

    Returns
    -------
    list of int
    """
    if not 0 <= overlap < tile:
        raise ValueError("need 0 <= overlap < tile")
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((length - tile) / stride) + 1
    return [min(i * stride, length - tile) for i in range(count)]


RUN_TIME_EXPONENT = 1.75
"""How the time of one run grows with its pixels: the steps to the stop as their power 0.7-0.8 (``benchmarks/
results/tuning/README.md``, "Optimiser"), the cost of a step linearly."""


def time_tile(height: int, width: int, smallest: int, overlap: int) -> int:
    """The tile of at least ``smallest`` pixels that restores the image soonest.

    A run on ``t x t`` pixels takes about ``t^(2 e)`` (``e`` = :data:`RUN_TIME_EXPONENT`), so the tiles of size
    ``t`` take about ``N(t) t^(2 e)``, ``N(t)`` the number of tiles (:func:`tile_boxes`). Larger tiles than
    ``smallest`` can be sooner when they need fewer tiles (a 512-pixel side: four 152-pixel tiles instead of five
    of 144, the last of them mostly overlap). The tile minimising that cost, from ``smallest`` up to twice that
    (larger tiles at most quarter the count while the cost of each grows more than tenfold) or the image's larger
    side (ties: the smaller tile); ``smallest`` sets the context a tile needs.

    Parameters
    ----------
    height, width : int
        Image size.
    smallest : int
        Smallest tile, ``> overlap``.
    overlap : int
        Overlap of neighbouring tiles.

    Returns
    -------
    int
    """
    if not 0 <= overlap < smallest:
        raise ValueError("need 0 <= overlap < smallest")

    def cost(tile: int) -> float:
        count = len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))
        return count * float(tile) ** (2 * RUN_TIME_EXPONENT)

    return min(range(smallest, max(smallest, min(2 * smallest, max(height, width))) + 1), key=cost)


def tile_boxes(height: int, width: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """``(top, left, tile_height, tile_width)`` of every tile, row by row."""
    th, tw = min(tile, height), min(tile, width)
    return [(top, left, th, tw) for top in tile_starts(height, tile, overlap)
            for left in tile_starts(width, tile, overlap)]


def blend_window(height: int, width: int, overlap: int) -> torch.Tensor:
    """Blending weights of one tile, shape ``(height, width)``.

    ``w(i, j) = r_H(i) r_W(j)`` with ``r_n(i) = min(1, (i + 1/2) / m, (n - i - 1/2) / m)`` and
    ``m = max(overlap, 1)``: 1 inside, a linear ramp towards every edge, never 0 (a pixel covered by
    a single tile keeps its value after normalising by the summed weights).
    """
    def ramp(n: int) -> torch.Tensor:
        i = torch.arange(n, dtype=torch.float64) + 0.5
        m = max(overlap, 1)
        return torch.minimum(torch.ones(n, dtype=torch.float64), torch.minimum(i / m, (n - i) / m))

    return (ramp(height)[:, None] * ramp(width)[None, :]).float()


def choose_tile(height: int, width: int, colour: int, net: NetConfig, budget: int, overlap: int) -> int | None:
    """Tile size for an image whose run would exceed ``budget`` bytes, or None when it fits whole.

    Starts at 512 and halves until one tile's :func:`~dipddpm.memory.estimate_memory` fits.

    Raises
    ------
    InputError
        When not even the smallest useful tile (``4 * overlap`` and at least ``2**(depth + 1)``)
        fits the budget.
    """
    if estimate_memory(height, width, colour, net) <= budget:
        return None
    smallest = max(4 * overlap, 2 ** (net.depth + 1))
    tile = 512
    while estimate_memory(tile, tile, colour, net) > budget:
        tile //= 2
        if tile < smallest:
            raise InputError(f"not even a {smallest}x{smallest} tile fits the memory budget of "
                             f"{budget / 2**20:.0f} MiB; raise it or use a smaller network")
    return tile


def restore_tiled(observation: torch.Tensor, sigma: float, tile: int, overlap: int,
                  restore: Callable[..., object], reference: torch.Tensor | None = None,
                  sigma_source: str = "given", workers: int = 1,
                  on_done: Callable[[int, int], None] | None = None) -> TiledRestoration:
    """Restore ``observation`` tile by tile and blend the tiles.

    Parameters
    ----------
    observation : torch.Tensor
        ``(1, C, H, W)`` in [0, 1].
    sigma : float or None
        Noise level of the whole image (estimate it once on the whole image: more pixels, a
        steadier estimate than per tile); None when each tile's run sets its own (Poisson photons)
        or has none.
    tile, overlap : int
        Tile size and overlap in pixels.
    restore : callable
        ``restore(observation=y_tile, sigma=sigma, reference=ref_tile)`` returning a
        :class:`~dipddpm.result.Restoration` with a tensor image (e.g. a partial of
        :func:`~dipddpm.restore.restore_tensor`; it must pickle when ``workers > 1``).
    reference : torch.Tensor, optional
        Clean image, EVALUATION ONLY: per-tile and whole-image PSNR, and the blend of every tile's
        oracle iterate.
    sigma_source : str
        How ``sigma`` was obtained. ``"estimated"`` (once, on the whole image, then given to every tile)
        gives no PSNR estimate, as for a single run (it needs sigma to about 1 %, ``docs/method.md`` 4c).
    workers : int
        Tiles restored at once, in local worker processes (:func:`~dipddpm.executors.run_in_order`).
    on_done : callable, optional
        Called with ``(done, count)`` before the first tile (``done = 0``) and whenever a tile is finished
        (progress reporting).

    Returns
    -------
    TiledRestoration
    """
    start = time.perf_counter()
    _, channels, height, width = observation.shape
    if tile < 1 or not 0 <= overlap < tile:
        raise InputError(f"need a tile of at least 1 pixel and 0 <= overlap < tile (got tile {tile}, overlap "
                         f"{overlap})")
    boxes = tile_boxes(height, width, tile, overlap)
    weights = torch.zeros(1, 1, height, width, device=observation.device)
    blended = torch.zeros_like(observation)
    oracle = torch.zeros_like(observation) if reference is not None else None
    windows = [(slice(None), slice(None), slice(top, top + th), slice(left, left + tw)) for top, left, th, tw in boxes]
    if on_done is not None:
        on_done(0, len(boxes))
    results = run_in_order(restore, [{"observation": observation[window], "sigma": sigma,
                                      "reference": None if reference is None else reference[window]}
                                     for window in windows], workers, on_done)
    tiles, estimated_mse, first = [], [], None
    for (top, left, th, tw), window, result in zip(boxes, windows, results, strict=True):
        tile_estimate = None if sigma_source == "estimated" else result.estimated_psnr
        first = first or result
        w = blend_window(th, tw, overlap).to(observation.device)[None, None]
        weights[window] += w
        blended[window] += w * result.image
        summary = {"top": top, "left": left, "height": th, "width": tw, "stop_iteration": result.stop_iteration,
                   "stopped_by": result.stopped_by, "iterations_run": result.iterations_run,
                   "estimated_psnr": tile_estimate, "seconds": result.seconds}
        if result.evaluation is not None:
            oracle[window] += w * result.outputs["oracle"]
            summary.update({key: result.evaluation[key] for key in ("ref_psnr", "oracle_psnr", "oracle_iteration")})
        tiles.append(summary)
        estimated_mse.append(None if tile_estimate is None else th * tw * 10 ** (-tile_estimate / 10))
    image = blended / weights
    estimate = None
    if all(m is not None for m in estimated_mse):
        estimate = -10 * math.log10(sum(estimated_mse) / sum(t["height"] * t["width"] for t in tiles))
    evaluation = None
    if reference is not None:
        evaluation = {"note": "evaluation only: computed with the clean reference, never used by the run",
                      "ref_psnr": tensor_psnr(image, reference), "noisy_psnr": tensor_psnr(observation, reference),
                      "oracle_psnr": tensor_psnr(oracle / weights, reference),
                      "oracle_note": "every tile's own best iterate, blended"}
    return TiledRestoration(image=image, tiles=tiles, tile=tile, overlap=overlap, estimated_psnr=estimate,
                            sigma_used=first.sigma_used if sigma is None else sigma,
                            sigma_source=sigma_source, seed=first.seed, device=first.device,
                            seconds=time.perf_counter() - start, evaluation=evaluation, config=first.config,
                            versions=versions(),
                            estimate_withheld=estimate_withheld(sigma_source, None, False) or first.estimate_withheld)
