"""The numpy entry point, in scikit-image style: ``denoise(image, sigma=None, *, channel_axis=None, ...)``.

The same function restores through a forward operator (``physics``): :func:`mask_operator` builds
the inpainting one from a mask given like an image; :class:`~dipddpm.physics.Downsample` upscales.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch

from .callbacks import ProgressBar, report_finished_runs
from .config import DenoiserConfig
from .errors import InputError
from .executors import runs_at_once
from .memory import default_budget
from .noise_models import get_noise_model
from .physics import Identity, Operator, PixelMask, image_shape
from .restore import (
    DEFAULT_STOPPER,
    PHOTONS_OFF,
    check_sigma,
    noise_level,
    photon_count,
    photons_estimable,
    resolve_device,
    restore_tensor,
)
from .result import Restoration, TiledRestoration
from .tiling import choose_tile, restore_tiled, tile_boxes, time_tile

__all__ = ["denoise", "from_unit_range", "mask_operator", "plan_tiling", "restored_channels", "to_unit_range"]


def to_unit_range(image: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Map an image to floats in [0, 1]; return it with the offset and scale that undo the map.

    uint8 and uint16 divide by 255 and 65535; floats already in [0, 1] stay; other floats map
    ``[min(0, lo), max(1, hi)]`` affinely onto [0, 1]. Booleans become 0/1.

    Parameters
    ----------
    image : numpy.ndarray

    Returns
    -------
    unit : numpy.ndarray
        float64 in [0, 1].
    offset, scale : float
        ``image ~= offset + scale * unit``.
    """
    image = np.asarray(image)
    if image.dtype == np.bool_:
        return image.astype(np.float64), 0.0, 1.0
    if image.dtype.kind == "u" and image.dtype.itemsize <= 2:
        scale = float(np.iinfo(image.dtype).max)
        return image.astype(np.float64) / scale, 0.0, scale
    if image.dtype.kind != "f":
        raise InputError(f"unsupported pixel type {image.dtype}; use uint8, uint16 or float")
    unit = image.astype(np.float64)
    if not np.all(np.isfinite(unit)):
        raise InputError("the image has NaN or infinite pixels")
    lo, hi = min(0.0, float(unit.min())), max(1.0, float(unit.max()))
    return (unit - lo) / (hi - lo), lo, hi - lo


def from_unit_range(unit: np.ndarray, offset: float, scale: float, dtype: np.dtype) -> np.ndarray:
    """Inverse of :func:`to_unit_range`, rounding and clipping for integer ``dtype``."""
    values = offset + scale * np.asarray(unit, dtype=np.float64)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return values >= 0.5
    if dtype.kind == "u":
        return np.clip(np.round(values), 0, np.iinfo(dtype).max).astype(dtype)
    return values.astype(dtype)


def _channels_last(image: np.ndarray, channel_axis: int | None, name: str) -> np.ndarray:
    image = np.asarray(image)
    if channel_axis is None:
        if image.ndim != 2:
            raise InputError(f"{name} has shape {image.shape}: a grey image is 2-D; for colour pass channel_axis "
                             f"(e.g. channel_axis=-1)")
        return image[..., None]
    if image.ndim != 3:
        raise InputError(f"{name} has shape {image.shape}: with channel_axis it must be 3-D")
    image = np.moveaxis(image, channel_axis, -1)
    if not 1 <= image.shape[-1] <= 4:
        raise InputError(f"{name} has {image.shape[-1]} channels; expected 1 (grey), 2 (grey+alpha), 3 (RGB) "
                         f"or 4 (RGBA)")
    return image


def restored_channels(channels: int) -> int:
    """Channels restored of an image with ``channels`` channels: alpha is passed through, not restored.

    Parameters
    ----------
    channels : int
        1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).

    Returns
    -------
    int
        1 for grey and grey + alpha, 3 for RGB and RGBA.
    """
    return 1 if channels <= 2 else 3


def mask_operator(mask: np.ndarray, image: np.ndarray, channel_axis: int | None = None,
                  device: str | torch.device = "cpu") -> PixelMask:
    """The inpainting operator for ``image`` from a mask given like an image: nonzero = observed.

    Parameters
    ----------
    mask : numpy.ndarray
        ``(H, W)`` for every channel, or with the image's channels on ``channel_axis`` (one mask per
        channel; an alpha channel is ignored).
    image : numpy.ndarray
        The image to inpaint, as passed to :func:`denoise`.
    channel_axis : int, optional
        Axis of channels of both; None for a grey image.
    device : str or torch.device
        Where the run happens.

    Returns
    -------
    PixelMask

    Raises
    ------
    InputError
        A mask of another size or channel count, or one that keeps no pixels.
    """
    hwc = _channels_last(image, channel_axis, "image")
    mask = np.asarray(mask)
    grey = mask.ndim == 2
    if grey:
        mask_hwc = mask[..., None]
    elif mask.ndim == 3 and channel_axis is not None:
        mask_hwc = np.moveaxis(mask, channel_axis, -1)
    else:
        raise InputError(f"the mask has shape {mask.shape}; give a grey mask or one with the image's channels")
    if mask_hwc.shape[:2] != hwc.shape[:2]:
        raise InputError(f"the mask is {mask_hwc.shape[0]}x{mask_hwc.shape[1]} pixels but the image is "
                         f"{hwc.shape[0]}x{hwc.shape[1]}")
    if not grey and mask_hwc.shape[-1] != hwc.shape[-1]:
        raise InputError(f"the mask has {mask_hwc.shape[-1]} channels, the image {hwc.shape[-1]}; give a grey mask "
                         f"or one with the image's channels")
    observed = mask_hwc[..., :restored_channels(hwc.shape[-1])] != 0
    chw = np.ascontiguousarray(observed.transpose(2, 0, 1))
    return PixelMask(torch.from_numpy(chw[0] if grey else chw).to(resolve_device(device)))


def _nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an ``(H, W, C)`` array (for channels the operator does not restore)."""
    rows = np.arange(height) * image.shape[0] // height
    cols = np.arange(width) * image.shape[1] // width
    return image[rows][:, cols]


TIME_TILE = 144
"""Smallest tile of ``tile="auto"`` for Gaussian denoising on a CPU (:data:`TIME_TILE_SIGMA_MAX`); the tile is
the soonest of at least this size (:func:`~dipddpm.tiling.time_tile`: 144 on a 256-pixel side, 152 on 512).
Smaller tiles lose context: on the smooth kodim02 crop (256², sigma = 25, seed 0) 112² tiles were 0.38 dB and
96² tiles 1.12 dB below 144² tiles (issue 12, ``benchmarks/results/speed/README.md``)."""

TIME_TILE_SIGMA_MAX = 35.0 / 255.0
"""Largest noise level (image units) at which ``tile="auto"`` tiles a large image for time.

The steps to the stop grow with the pixels of a run (as their power 0.7-0.8), so one network on a large image
costs more than tiles of it, and tiles can run at once (``DenoiserConfig.workers``). On the 256² tuning crops
(seed 0, issue 12, ``benchmarks/results/speed/README.md``), 144² tiles with 32 px overlap against the whole
image: at sigma = 25, +0.41 dB on average (every crop better) in 0.7x the time (median); at sigma = 35 (kodim01
and kodim02) +0.09 and -0.21 dB in 0.69 and 0.65x the time; at sigma = 50 lower on the smooth kodim02 crop
(-0.50 dB; the other crops -0.03 to +0.07) for little time saved. Hence the threshold at 35, where the tiles
trade a little on smooth images for a third of the time.
"""


def _room_for_time_tiles(height: int, width: int, overlap: int, device: torch.device) -> bool:
    return device.type == "cpu" and max(height, width) >= 2 * TIME_TILE - overlap


def plan_tiling(height: int, width: int, colour: int, tile: int | str | None = "auto", overlap: int = 32,
                memory_budget: int | None = None, config: DenoiserConfig | None = None,
                device: str | torch.device = "cpu", sigma: float | None = None) -> int | None:
    """The tile size :func:`denoise` will use for an image, or None when it runs on the whole image.

    ``tile="auto"``: tiles of at least :data:`TIME_TILE` (:func:`~dipddpm.tiling.time_tile`) on a CPU when
    ``sigma`` is known and at most :data:`TIME_TILE_SIGMA_MAX` and a side has room for two tiles
    (``max(height, width) >= 2 TIME_TILE - overlap``); otherwise tiles only when one run would not fit the memory budget
    (:func:`~dipddpm.tiling.choose_tile`); the smaller of the two when both apply.

    Parameters
    ----------
    height, width, colour : int
        Image size and the channels restored (1 or 3).
    tile, overlap, memory_budget, config
        As for :func:`denoise`.
    device : str or torch.device
        Where the run happens (sets the default memory budget).
    sigma : float, optional
        The Gaussian noise level of the run (given or estimated; image units); None (unknown, not Gaussian, or
        to plot one run's training curves): ``"auto"`` tiles only for memory.

    Returns
    -------
    int or None

    Raises
    ------
    InputError
        A bad ``tile``, ``overlap`` or ``memory_budget``, or a budget too small for any tile.
    """
    if tile is None:
        return None
    config = config or DenoiserConfig()
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise InputError(f"overlap must be a non-negative integer number of pixels, got {overlap!r}")
    smallest = max(2 * overlap + 1, 16)
    if tile == "auto":
        dev = resolve_device(device)
        budget = default_budget(dev) if memory_budget is None else memory_budget
        if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer)) or not budget > 0:
            raise InputError(f"memory_budget must be a positive number of bytes, got {budget!r}")
        for_memory = choose_tile(height, width, colour, config.train.net, int(budget), overlap)
        if sigma is not None and sigma <= TIME_TILE_SIGMA_MAX and _room_for_time_tiles(height, width, overlap, dev):
            timed = time_tile(height, width, TIME_TILE, overlap)
            return timed if for_memory is None else min(for_memory, timed)
        return for_memory
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < smallest:
        raise InputError(f"tile must be 'auto', None or an integer of at least {smallest} pixels "
                         f"(16 and 2 x overlap + 1), got {tile!r}")
    return None if tile >= max(height, width) else int(tile)


def _tile_progress(bar: ProgressBar, callbacks: Sequence, workers: int) -> Callable[[int, int], None]:
    """Progress of a tiled run: a bar per tile when the tiles go one after another; else every callback (the
    bar among them) is told of the tiles finished."""
    if workers > 1:
        bar.description = "tiles"
        return report_finished_runs(callbacks)

    def start_next(done: int, total: int) -> None:
        if done < total:
            bar.start(f"tile {done + 1}/{total}")
    return start_next


def denoise(image: np.ndarray, sigma: float | None = None, *, channel_axis: int | None = None,
            stopper: str = DEFAULT_STOPPER, max_iter: int | None = None, seed: int = 0, device: str = "auto",
            reference: np.ndarray | None = None, watch: Sequence[str] = (), config: DenoiserConfig | None = None,
            preserve_dtype: bool = False, progress: bool | None = False, callbacks: Sequence = (),
            tile: int | str | None = "auto", overlap: int = 32, memory_budget: int | None = None,
            noise: str = "gaussian", physics: Operator | None = None, photons: float | str | None = None,
            return_info: bool = False) -> np.ndarray | Restoration | TiledRestoration:
    """Denoise (or inpaint, or upscale) one image with a Deep Image Prior that stops by itself.

    For Gaussian noise, stage ``k`` fits ``y + s_k z`` (one fixed ``z``, decreasing ``s_k``); the
    final stage fits ``y + a sigma z`` and the run stops at the minimum of
    ``||xbar - (y - sigma/a z)||^2``, which equals the true error plus a known constant. For other
    noise, or without sigma behind an operator, the net fits ``y`` with the noise model's loss and
    stops at the minimum of the loss on held-out values. Poisson noise with known or estimated
    ``photons`` is made Gaussian by the Anscombe transform and then restored like Gaussian noise
    (:class:`~dipddpm.physics.AnscombeStabilised`). No clean image is needed.

    Parameters
    ----------
    image : numpy.ndarray
        Noisy image: (H, W) grey, or with a channel axis of 1-4 channels (grey, grey+alpha, RGB,
        RGBA; alpha is returned unchanged). uint8, uint16 or float (floats in [0, 1] are taken as
        they are; others are mapped affinely).
    sigma : float, optional
        Noise standard deviation: for integer images in units of the [0, 1] range (``25/255``
        for 8-bit sigma 25), for float images in the data's units. Estimated with the wavelet
        MAD estimator when None. ``Restoration.sigma_used`` is always in [0, 1] units.
    channel_axis : int, optional
        Axis of channels; None for a 2-D grey image.
    stopper : str
        ``auto`` (default: ``recorruption`` for Gaussian noise when sigma is known or estimated,
        else ``held-out``; :func:`~dipddpm.restore.resolve_stopper`), ``recorruption`` (Gaussian
        noise only), ``held-out``, ``es-wmv``, ``es-emv``, ``discrepancy``, ``fixed``,
        ``schedule-end`` or ``oracle`` (needs ``reference``; evaluation only).
    max_iter : int, optional
        Iteration budget (default: the config's).
    seed : int
        Random seed; runs with the same seed on the same device repeat exactly on CPU.
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ...
    reference : numpy.ndarray, optional
        Clean image of the restored image's size, EVALUATION ONLY: adds PSNR numbers and the oracle
        to the result; the run and its stop are unchanged.
    watch : sequence of str
        Extra stoppers to record alongside the deciding one.
    config : DenoiserConfig, optional
        Full settings.
    preserve_dtype : bool
        Return the input's dtype and range instead of floats.
    progress : bool or None
        Progress bar on stderr (None: only on a terminal).
    callbacks : sequence of callables
        Called after every iteration with a :class:`~dipddpm.engine.StepInfo` (e.g.
        :class:`~dipddpm.callbacks.SnapshotRecorder`); one that returns True ends the run.
    tile : int, "auto" or None
        Restore in overlapping ``tile x tile`` tiles, each with its own network and stop, blended
        over ``overlap`` pixels (:mod:`dipddpm.tiling`). ``"auto"`` (:func:`plan_tiling`) tiles Gaussian
        denoising on a CPU at sigma <= :data:`TIME_TILE_SIGMA_MAX` (given or estimated) in tiles of at
        least :data:`TIME_TILE` pixels when a side has room for two (sooner and better there), and any run whose
        estimated memory (:func:`~dipddpm.memory.estimate_memory`) exceeds ``memory_budget``; None never
        tiles. The tiles run at once when ``config.workers`` allows.
    overlap : int
        Overlap of neighbouring tiles in pixels.
    memory_budget : int, optional
        Bytes one run may use before ``tile="auto"`` tiles (default:
        :func:`~dipddpm.memory.default_budget`).
    noise : str
        Noise model of ``image``: ``gaussian``, ``poisson``, ``impulse`` or ``speckle``
        (:data:`~dipddpm.noise_models.NOISE_MODELS`); sets the training loss. Sigma is estimated
        only for Gaussian denoising.
    physics : Operator, optional
        Forward operator that produced ``image`` from the image to restore (None: denoising), e.g.
        :func:`mask_operator` for inpainting or ``Downsample(4)`` for 4x upscaling; such runs are
        never tiled.
    photons : float, "off" or None
        Poisson noise only: expected count of a white pixel (``image = Poisson(photons x) / photons``
        in [0, 1] units). Given, the run trains on the Anscombe-stabilised image with staged targets
        and stops by recorruption. None (the default): for Poisson denoising without ``sigma``,
        estimated from the image by fitting ``var(y | x) = a x + b`` (:mod:`dipddpm.noise_fit`,
        ``photons = 1 / a``; once for the whole image when tiled), then the same, with the generalised
        Anscombe transform when the fit finds read noise ``sqrt(b)``; the fit is in
        ``Restoration.noise_fit``. When the fit finds no signal-dependent noise, the image is too
        small to fit, or ``photons="off"``, the run fits ``y`` with the Poisson loss and stops on
        held-out values.
    return_info : bool
        Return a :class:`~dipddpm.result.Restoration` (a
        :class:`~dipddpm.result.TiledRestoration` when tiled) instead of the array.

    Returns
    -------
    numpy.ndarray, Restoration or TiledRestoration
        The restored image, same shape as ``image`` (larger for upscaling); float64 unless
        ``preserve_dtype``.

    Examples
    --------
    >>> from dipddpm import denoise                                   # doctest: +SKIP
    >>> restored = denoise(noisy, channel_axis=-1)                    # doctest: +SKIP
    >>> info = denoise(noisy, 25 / 255, channel_axis=-1, return_info=True)  # doctest: +SKIP
    >>> info.stop_iteration, info.estimated_psnr                      # doctest: +SKIP
    """
    start = time.perf_counter()
    get_noise_model(noise)  # an unknown name fails before any work
    original = np.asarray(image)
    if noise == "poisson" and original.size and np.nanmin(original) < 0:
        raise InputError("Poisson data cannot be negative (counts, or counts / photons, are >= 0)")
    hwc = _channels_last(original, channel_axis, "image")
    unit, offset, scale = to_unit_range(hwc)
    colour = restored_channels(hwc.shape[-1])
    if sigma is not None:
        sigma = check_sigma(sigma) * (1.0 if original.dtype.kind in "ub" else 1.0 / scale)
    config = config or DenoiserConfig()
    if max_iter is not None:
        if max_iter < 1:
            raise InputError("max_iter must be at least 1")
        config = replace(config, train=replace(config.train, max_iter=int(max_iter)))
    dev = resolve_device(device)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a[..., :colour].transpose(2, 0, 1))).float()[None].to(dev)

    y = tensor(unit)
    denoising = physics is None or isinstance(physics, Identity)
    _, channels, height, width = y.shape if denoising else image_shape(physics, y.shape, dev)
    if channels != colour:
        raise InputError(f"the operator turns {colour}-channel measurements into {channels}-channel images; it must "
                         f"keep the channels")
    ref = None
    if reference is not None:
        ref_hwc = _channels_last(reference, channel_axis, "reference")
        if ref_hwc.shape[:2] != (height, width) or ref_hwc.shape[-1] < colour:
            raise InputError(f"the reference has shape {np.shape(reference)}, the image {original.shape}"
                             + ("" if denoising else f" (restored to {height}x{width} pixels)"))
        ref = tensor(to_unit_range(ref_hwc)[0])
    planned = (sigma, "given")  # the noise level tiling is planned for: estimated here only when it can matter
    if (denoising and noise == "gaussian" and sigma is None and tile == "auto"
            and _room_for_time_tiles(height, width, overlap, dev)):
        planned = noise_level(y, None, True)
    if denoising:
        tile_size = plan_tiling(height=height, width=width, colour=colour, tile=tile, overlap=overlap,
                                memory_budget=memory_budget, config=config, device=dev,
                                sigma=planned[0] if noise == "gaussian" else None)
    elif tile in ("auto", None):
        tile_size = None
    else:
        raise InputError("tiling applies to plain denoising only; use tile=None with an operator")
    bar = ProgressBar(progress)
    try:
        if tile_size is None:
            result = restore_tensor(y, planned[0], config=config, stopper=stopper, watch=watch, reference=ref,
                                    seed=seed, callbacks=(bar, *callbacks), physics=physics, noise_model=noise,
                                    photons=photons, sigma_source=planned[1])
        else:
            counted, read_noise, photon_source, noise_fit = photon_count(
                y, photons, 0.0, photons_estimable(noise, photons, sigma, None))
            sigma, source = planned if planned[0] is not None else noise_level(y, None, noise == "gaussian")
            source = photon_source if counted is not None else source
            tile_photons = counted if counted is not None or noise != "poisson" else PHOTONS_OFF  # once, not per tile
            every_step = (bar, *callbacks)
            workers = runs_at_once(len(tile_boxes(height, width, tile_size, overlap)), config.workers, str(dev),
                                   every_step)
            restore = functools.partial(restore_tensor, config=config.for_tiles(), stopper=stopper, watch=watch,
                                        seed=seed, callbacks=every_step if workers == 1 else (), noise_model=noise,
                                        photons=tile_photons, read_noise=read_noise)
            result = restore_tiled(y, sigma, tile_size, overlap, restore, reference=ref, sigma_source=source,
                                   workers=workers, on_done=_tile_progress(bar, every_step, workers))
            result.noise_fit = noise_fit
    finally:
        bar.close()
    restored = unit.copy() if unit.shape[:2] == (height, width) else _nearest(unit, height, width)
    restored[..., :colour] = result.image[0].permute(1, 2, 0).double().cpu().numpy()
    if preserve_dtype:
        restored = from_unit_range(restored, offset, scale, original.dtype)
    else:
        restored = offset + scale * restored
    if channel_axis is None:
        restored = restored[..., 0]
    else:
        restored = np.moveaxis(restored, -1, channel_axis)
    result.image = restored
    result.seconds = time.perf_counter() - start
    return result if return_info else restored
