"""Figures of a run: training curves with stage bands and stop marks; image comparisons.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state, no GUI
backend needed). Colours are the Okabe-Ito palette, distinguishable with colour-blindness.
"""

from __future__ import annotations

import io as _io
import math
import os

import numpy as np
from matplotlib.figure import Figure

from .io import atomic_write
from .result import Restoration

__all__ = ["COLORS", "plot_comparison", "plot_run", "save_figure"]

COLORS = {"loss": "#0072B2", "floor": "#000000", "estimate": "#D55E00", "truth": "#009E73",
          "stop": "#CC79A7", "oracle": "#E69F00", "band": "#56B4E9"}


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 120) -> None:
    """Save a figure atomically (PNG, PDF or SVG by suffix)."""
    buffer = _io.BytesIO()
    figure.savefig(buffer, format=os.path.splitext(str(path))[1].lstrip(".").lower() or "png", dpi=dpi,
                   bbox_inches="tight")
    atomic_write(path, buffer.getvalue())


def _stage_bands(ax, result: Restoration, last: int) -> None:
    edges = [*result.stage_starts, last]
    for k, (a, b) in enumerate(zip(edges, edges[1:], strict=False)):
        if k % 2 == 0:
            ax.axvspan(a, b, color=COLORS["band"], alpha=0.12, lw=0)


def _estimated_psnr_curve(result: Restoration) -> np.ndarray | None:
    values = result.history.get("recorruption")
    offset = result.stoppers.get("recorruption", {}).get("offset")
    if values is None or offset is None:
        return None
    excess = np.array([np.nan if v is None else v for v in values], dtype=float) - offset
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(excess > 0, -10 * np.log10(excess), np.nan)


def plot_run(result: Restoration, title: str | None = None) -> Figure:
    """Two panels: training MSE against each stage's noise floor; PSNR estimate (and truth) with stops.

    Parameters
    ----------
    result : Restoration
        A finished run (its ``history``).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    h = result.history
    it = np.asarray(h["iteration"])
    last = int(it[-1]) if it.size else 1
    fig = Figure(figsize=(8, 6.5), layout="constrained")
    ax_loss, ax_psnr = fig.subplots(2, 1, sharex=True)
    _stage_bands(ax_loss, result, last)
    _stage_bands(ax_psnr, result, last)

    ax_loss.semilogy(it, h["loss"], color=COLORS["loss"], lw=0.8, label="training MSE (vs. stage target)")
    floors = [result.sigma_used**2 + result.stage_scales[k] ** 2 for k in h["stage"]]
    ax_loss.semilogy(it, floors, color=COLORS["floor"], lw=1.2, ls="--",
                     label=r"noise floor $\sigma^2 + s_k^2$ of the stage")
    ax_loss.set_ylabel("MSE (image range [0, 1])")
    ax_loss.legend(loc="upper right", fontsize=8)
    ax_loss.grid(True, which="major", alpha=0.3)

    estimate = _estimated_psnr_curve(result)
    if estimate is not None:
        ax_psnr.plot(it, estimate, color=COLORS["estimate"], lw=1.2,
                     label="estimated PSNR (recorruption, no clean image)")
    if "oracle" in h:
        ax_psnr.plot(it, h["oracle"], color=COLORS["truth"], lw=1.2, ls=(0, (4, 2)),
                     label="true PSNR (evaluation only)")
    ax_psnr.axvline(result.stop_iteration, color=COLORS["stop"], lw=1.5,
                    label=f"auto stop ({result.stopper}) @ {result.stop_iteration}")
    if result.evaluation is not None:
        ev = result.evaluation
        ax_psnr.axvline(ev["oracle_iteration"], color=COLORS["oracle"], lw=1.5, ls=":",
                        label=f"oracle peak @ {ev['oracle_iteration']} ({ev['oracle_psnr']:.2f} dB)")
    finite = [v for v in ([] if estimate is None else estimate.tolist()) + list(h.get("oracle", []))
              if v is not None and math.isfinite(v)]
    if finite:
        top = max(finite)
        ax_psnr.set_ylim(max(min(finite), top - 15), top + 1.5)
    ax_psnr.set_xlabel("iteration (shaded bands: curriculum stages)")
    ax_psnr.set_ylabel("PSNR (dB)")
    ax_psnr.legend(loc="lower right", fontsize=8)
    ax_psnr.grid(True, alpha=0.3)
    ax_psnr.set_xlim(0, last)
    if title:
        fig.suptitle(title)
    return fig


def plot_comparison(images: dict[str, np.ndarray], zoom: tuple[int, int, int] | None = None) -> Figure:
    """Images side by side (e.g. noisy / restored / clean), optionally with a zoomed crop row.

    Parameters
    ----------
    images : dict of str to numpy.ndarray
        Title -> image (H, W) or (H, W, 3), floats in [0, 1] or uint8.
    zoom : (top, left, size), optional
        Square crop shown enlarged below each image.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = 2 if zoom else 1
    n = len(images)
    fig = Figure(figsize=(3.2 * n, 3.3 * rows), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, n, squeeze=False))
    for j, (name, image) in enumerate(images.items()):
        cmap = "gray" if np.ndim(image) == 2 else None
        axes[0, j].imshow(image, cmap=cmap, vmin=0, vmax=1 if np.asarray(image).dtype.kind == "f" else 255)
        axes[0, j].set_title(name, fontsize=9)
        if zoom:
            top, left, size = zoom
            crop = np.asarray(image)[top:top + size, left:left + size]
            axes[1, j].imshow(crop, cmap=cmap, vmin=0, vmax=1 if crop.dtype.kind == "f" else 255,
                              interpolation="nearest")
            axes[1, j].set_title(f"zoom {size}x{size} at ({top}, {left})", fontsize=8)
            from matplotlib.patches import Rectangle

            axes[0, j].add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False,
                                           edgecolor=COLORS["oracle"], lw=1.2))
        for ax in axes[:, j]:
            ax.set_axis_off()
    return fig
