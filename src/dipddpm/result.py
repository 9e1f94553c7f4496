"""The result of a restoration and its JSON form."""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .io import atomic_write

__all__ = ["Restoration", "TiledRestoration", "versions"]


def versions() -> dict[str, str]:
    """Versions of dipddpm, its main dependencies and Python."""
    import skimage
    import torch

    from . import __version__

    return {"dipddpm": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "scikit-image": skimage.__version__, "python": platform.python_version()}


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_json(data: dict, path: str | os.PathLike | None) -> str:
    text = json.dumps(data, indent=1)
    if path is not None:
        atomic_write(path, (text + "\n").encode())
    return text


def describe_colour_stops(stops: dict[str, int] | None) -> str:
    """``" (chrominance from iterations 480 and 420)"`` for :meth:`Restoration.colour_stops`, ``""`` for None."""
    return "" if stops is None else f" (chrominance from iterations {stops['C1']} and {stops['C2']})"


def _no_estimate(withheld: str | None) -> str:
    """What a run without a PSNR estimate prints: ``n/a``, with the reason when one was withheld."""
    return "n/a" if withheld is None else f"n/a ({withheld})"


@dataclass
class Restoration:
    """What a restoration produced, how it stopped, and with what settings.

    Attributes
    ----------
    image : numpy.ndarray or torch.Tensor
        The restored image (numpy, the input's shape, for :func:`dipddpm.denoise`; a tensor for
        the torch restorer).
    stop_iteration : int
        Iteration of the returned iterate (an ensemble: the latest of its members'; a result split by colour: the
        latest its components were taken from, :meth:`colour_stops`).
    stopper : str
        The stopper that chose it.
    stopped_by : str
        The stopper's name if it fired, ``"max-iter"`` if the iteration budget ended the run (an
        ensemble: any of its runs).
    iterations_run : int
        Iterations trained (an ensemble: by all its runs).
    estimated_psnr : float or None
        The recorruption stopper's PSNR estimate of the result (no clean image used), in dB; None when
        sigma was estimated (the estimate needs sigma to about 1 %, ``docs/method.md`` 4c).
    estimated_psnr_range : tuple or None
        About a 95% range of that estimate, ``(low, high)``; ``high`` is None when unbounded. It
        allows for the unknown noise-times-``z`` cross term and, for an estimated sigma, a 10% error.
    sigma_used : float or None
        Noise standard deviation used, image units in [0, 1]; None when the run had none (not
        Gaussian denoising and none given). For Poisson data with known photons, the level of the
        Anscombe-stabilised measurement (:class:`~dipddpm.physics.AnscombeStabilised`).
    sigma_source : str
        ``"given"``, ``"estimated"`` (from the image), ``"photons"`` (from the given Poisson photon count),
        ``"photons-estimated"`` (from the photon count estimated from the image) or ``"none"``.
    seed : int
        Seed of the run.
    device : str
        Torch device.
    seconds : float
        Wall time of the whole restoration.
    seconds_training : float
        Wall time of the training loop.
    history : dict of str to list
        Per-iteration ``loss``, ``stage``, ``lr`` and each stopper's criterion. The ``oracle``
        column (PSNR against the reference) exists only when a reference was given.
    stage_starts : list of int
        Iteration at which each reached stage began.
    stage_scales : list of float
        ``s_k`` of every stage.
    events : list of str
        Stage changes and recoveries.
    stoppers : dict
        Where every watching stopper stopped (or would have) and what it returned.
    evaluation : dict or None
        Only with a reference (EVALUATION ONLY): ``ref_psnr`` of the result, ``oracle_psnr`` and
        ``oracle_iteration`` of the run, and each stopper's PSNR.
    config : dict
        The settings, with ``train`` as the run used it (after ``low_noise``, for Gaussian denoising).
    outputs : dict
        The iterate each watching stopper returns (tensors; not serialised).
    versions : dict
        Package versions.
    noise : str
        The noise model (:data:`dipddpm.noise_models.NOISE_MODELS`).
    physics : str
        The forward operator, described (:func:`dipddpm.physics.describe`).
    members : list of dict
        For an ensemble (:mod:`dipddpm.ensemble`), one entry per run averaged: ``index``, ``seed``,
        ``pair``, ``sign``, ``stop_iteration``, ``stopped_by``, ``iterations_run``, ``estimated_psnr``,
        ``seconds``, ``colour_stops`` for a result split by colour (:meth:`colour_stops`), and with a reference
        ``ref_psnr``, ``oracle_psnr``, ``oracle_iteration``; empty for a single run.
    noise_fit : dict or None
        Poisson denoising without a given photon count: the noise model fitted to the image
        (:func:`dipddpm.restore.photon_count`: ``a``, ``b``, ``photons``, ``kind``, ..., ``used``, and
        ``reason`` when it was not used); None otherwise.
    estimate_withheld : str or None
        Why no PSNR estimate is given (:func:`dipddpm.restore.no_estimate_reason`): another stopper decided, the
        data were Poisson or the operator not the identity, sigma was estimated (the estimate needs sigma to about
        1 %, ``docs/method.md`` 4c), or the image is clipped and sigma above
        :data:`dipddpm.restore.ESTIMATE_CLIPPED_SIGMA_MAX` (4e); None when one is given.
    """

    image: Any
    stop_iteration: int
    stopper: str
    stopped_by: str
    iterations_run: int
    estimated_psnr: float | None
    estimated_psnr_range: tuple | None
    sigma_used: float | None
    sigma_source: str
    seed: int
    device: str
    seconds: float
    seconds_training: float
    history: dict[str, list]
    stage_starts: list[int]
    stage_scales: list[float]
    events: list[str]
    stoppers: dict[str, dict]
    evaluation: dict | None
    config: dict
    outputs: dict = field(default_factory=dict, repr=False)
    versions: dict = field(default_factory=versions)
    noise: str = "gaussian"
    physics: str = "identity"
    members: list = field(default_factory=list)
    noise_fit: dict | None = None
    estimate_withheld: str | None = None

    def colour_stops(self, stopper: str | None = None) -> dict[str, int] | None:
        """The iterate each opponent colour component of ``stopper``'s result (default: the deciding stopper's) was
        taken from, ``{"Y": ..., "C1": ..., "C2": ...}``, when that result is split by colour
        (:class:`~dipddpm.stopping.ComponentMinima`); None otherwise."""
        components = self.stoppers.get(stopper or self.stopper, {}).get("components")
        return None if components is None else {name: c["kept_iteration"] for name, c in components.items()}

    def describe_estimate(self) -> str:
        """The PSNR estimate with its range, e.g. ``"29.90 dB (range 28.7 to 31.6 dB)"``, or ``"n/a"`` (with the
        reason when it was withheld, :attr:`estimate_withheld`)."""
        if self.estimated_psnr is None:
            return _no_estimate(self.estimate_withheld)
        low, high = self.estimated_psnr_range or (None, None)
        span = f"{'?' if low is None else f'{low:.1f}'} to {'unbounded' if high is None else f'{high:.1f} dB'}"
        return f"{self.estimated_psnr:.2f} dB (range {span})"

    def to_dict(self, history: bool = True) -> dict:
        """JSON-ready dictionary of everything but the image.

        The flat keys ``stop_iteration``, ``sigma_used``, ``sigma_source``, ``estimated_psnr``,
        ``iterations_run``, ``seconds``, ``noise``, ``physics`` are always present; ``ref_psnr``, ``oracle_psnr`` and
        ``oracle_iteration`` when a reference was given.

        Parameters
        ----------
        history : bool
            Include the per-iteration history.
        """
        out = {
            "stop_iteration": self.stop_iteration, "stopper": self.stopper, "stopped_by": self.stopped_by,
            "iterations_run": self.iterations_run, "estimated_psnr": self.estimated_psnr,
            "estimated_psnr_range": self.estimated_psnr_range,
            "sigma_used": self.sigma_used, "sigma_source": self.sigma_source, "noise": self.noise,
            "physics": self.physics, "seed": self.seed, "device": self.device, "seconds": self.seconds,
            "seconds_training": self.seconds_training,
            "stage_starts": self.stage_starts, "stage_scales": self.stage_scales, "events": self.events,
            "stoppers": self.stoppers,
        }
        if self.estimate_withheld is not None:
            out["estimate_withheld"] = self.estimate_withheld
        if self.members:
            out["members"] = self.members
        if self.noise_fit is not None:
            out["noise_fit"] = self.noise_fit
        if self.evaluation is not None:
            out.update({key: self.evaluation[key] for key in ("ref_psnr", "oracle_psnr", "oracle_iteration")})
            out["evaluation"] = self.evaluation
        out["config"] = self.config
        out["versions"] = self.versions
        if history:
            out["history"] = self.history
        return _clean(out)

    def to_json(self, path: str | os.PathLike | None = None, history: bool = True) -> str:
        """Serialise to JSON; written atomically to ``path`` when given.

        Parameters
        ----------
        path : str or path-like, optional
            File to write.
        history : bool
            Include the per-iteration history.

        Returns
        -------
        str
            The JSON text.
        """
        return _write_json(self.to_dict(history=history), path)


@dataclass
class TiledRestoration:
    """What a tiled restoration produced: the blended image and, per tile, how it stopped.

    Attributes
    ----------
    image : numpy.ndarray or torch.Tensor
        The blended result.
    tiles : list of dict
        Per tile: ``top``, ``left``, ``height``, ``width``, ``stop_iteration``, ``stopped_by``,
        ``iterations_run``, ``estimated_psnr``, ``seconds`` (and, with a reference, its
        ``ref_psnr``, ``oracle_psnr`` and ``oracle_iteration``).
    tile, overlap : int
        Tile size and overlap in pixels.
    estimated_psnr : float or None
        The tiles' estimated errors pooled over their pixels (no clean image used), in dB.
    sigma_used : float or None
        Noise level used for every tile, image units (stabilised units for Poisson with photons).
    sigma_source : str
        ``"given"``, ``"estimated"`` (once, on the whole image), ``"photons"``, ``"photons-estimated"`` (the
        photon count estimated once, on the whole image) or ``"none"``.
    seed : int
    device : str
    seconds : float
        Wall time of all tiles.
    evaluation : dict or None
        EVALUATION ONLY: ``ref_psnr`` and ``noisy_psnr`` of the whole image, and ``oracle_psnr``: the
        blend of every tile's own best iterate.
    config : dict
        The settings of every tile's run.
    versions : dict
        Package versions.
    noise_fit : dict or None
        As for :class:`Restoration`, fitted once on the whole image.
    estimate_withheld : str or None
        As for :class:`Restoration` (the first tile's).
    """

    image: Any
    tiles: list[dict]
    tile: int
    overlap: int
    estimated_psnr: float | None
    sigma_used: float
    sigma_source: str
    seed: int
    device: str
    seconds: float
    evaluation: dict | None
    config: dict
    versions: dict = field(default_factory=versions)
    noise_fit: dict | None = None
    estimate_withheld: str | None = None

    @property
    def stop_iterations(self) -> list[int]:
        """Each tile's stop iteration."""
        return [t["stop_iteration"] for t in self.tiles]

    def describe_estimate(self) -> str:
        """The pooled PSNR estimate, e.g. ``"29.90 dB (pooled over 6 tiles)"``, or ``"n/a"`` (with the reason when
        it was withheld, as for one run)."""
        if self.estimated_psnr is None:
            return _no_estimate(self.estimate_withheld)
        return f"{self.estimated_psnr:.2f} dB (pooled over {len(self.tiles)} tiles)"

    def to_dict(self, history: bool = True) -> dict:
        """JSON-ready dictionary of everything but the image (``history`` is accepted for symmetry with
        :meth:`Restoration.to_dict`; tiles keep no per-iteration history)."""
        out = {"tiled": True, "tile": self.tile, "overlap": self.overlap, "tiles": self.tiles,
               "estimated_psnr": self.estimated_psnr, "sigma_used": self.sigma_used,
               "sigma_source": self.sigma_source, "seed": self.seed, "device": self.device,
               "seconds": self.seconds}
        if self.noise_fit is not None:
            out["noise_fit"] = self.noise_fit
        if self.estimate_withheld is not None:
            out["estimate_withheld"] = self.estimate_withheld
        if self.evaluation is not None:
            out.update({key: self.evaluation[key] for key in ("ref_psnr", "oracle_psnr")})
            out["evaluation"] = self.evaluation
        out["config"] = self.config
        out["versions"] = self.versions
        return _clean(out)

    def to_json(self, path: str | os.PathLike | None = None, history: bool = True) -> str:
        """Serialise to JSON; written atomically to ``path`` when given (see :meth:`Restoration.to_json`)."""
        return _write_json(self.to_dict(history=history), path)
