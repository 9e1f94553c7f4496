"""Figures of a run: the schedule and staged targets, training curves with stage bands and stop marks,
snapshots, image comparisons, and where every stopper would have ended the run.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state, no GUI backend).
Colours are the Okabe-Ito palette, which stays distinguishable with colour-blindness; lines also
differ in style.
"""

from __future__ import annotations

import io as _io
import math
import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .io import atomic_write
from .result import Restoration, describe_colour_stops
from .schedule import alphas_cumprod, beta_schedule, x0_noise_scale

__all__ = ["COLORS", "save_figure", "plot_schedule", "plot_targets", "plot_run", "plot_snapshots",
           "plot_comparison", "plot_stoppers", "centre_zoom"]

COLORS = {"loss": "#0072B2", "floor": "#000000", "estimate": "#D55E00", "truth": "#009E73",
          "stop": "#CC79A7", "oracle": "#E69F00", "band": "#56B4E9"}
_CYCLE = ["#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
_STYLES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1))]


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 120) -> None:
    """Save a figure atomically (PNG, PDF or SVG by suffix)."""
    buffer = _io.BytesIO()
    figure.savefig(buffer, format=os.path.splitext(str(path))[1].lstrip(".").lower() or "png", dpi=dpi,
                   bbox_inches="tight")
    atomic_write(path, buffer.getvalue())


def _show(ax, image: np.ndarray, title: str | None = None) -> None:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype.kind in "ui":
        scale = np.iinfo(image.dtype).max
    else:
        scale = max(1.0, float(np.max(image))) if image.size else 1.0
    ax.imshow(np.clip(image / scale, 0, 1), cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1,
              interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def plot_schedule(stages, schedule: str = "linear", num_timesteps: int = 1000, sigma: float | None = None) -> Figure:
    """The DDPM schedule (beta, abar, x0-space noise scale s_t) with the chosen stages marked.

    Parameters
    ----------
    stages : list of Stage
        From :func:`dipddpm.restore.build_stages`.
    schedule : str
        Beta schedule name.
    num_timesteps : int
        ``T``.
    sigma : float, optional
        Noise level of the observation, drawn as a reference line on the ``s_t`` panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    betas = beta_schedule(schedule, num_timesteps)
    abar = alphas_cumprod(betas)
    scale = x0_noise_scale(abar)
    t = np.arange(num_timesteps)
    fig = Figure(figsize=(11, 3.2), layout="constrained")
    ax_b, ax_a, ax_s = fig.subplots(1, 3)
    ax_b.plot(t, betas, color=COLORS["loss"])
    ax_b.set_title(rf"$\beta_t$ ({schedule})", fontsize=10)
    ax_a.plot(t, abar, color=COLORS["loss"])
    ax_a.set_title(r"$\bar\alpha_t = \prod_{s \leq t}(1-\beta_s)$", fontsize=10)
    ax_s.semilogy(t, scale, color=COLORS["loss"], label=r"$s_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$")
    for k, stage in enumerate(stages):
        ax_s.axhline(stage.scale, color=_CYCLE[k % len(_CYCLE)], ls=_STYLES[k % len(_STYLES)], lw=1,
                     label=f"stage {k + 1}: $s_k$ = {stage.scale:.3g} (t = {stage.timestep})" if stage.scale > 0
                     else f"stage {k + 1}: target y")
        for ax in (ax_b, ax_a):
            ax.axvline(stage.timestep, color=_CYCLE[k % len(_CYCLE)], ls=_STYLES[k % len(_STYLES)], lw=1)
    if sigma:
        ax_s.axhline(sigma, color=COLORS["floor"], lw=0.8, ls=(0, (2, 2)), label=rf"$\sigma$ = {sigma:.3g}")
    ax_s.set_title("x0-space noise scale (log)", fontsize=10)
    ax_s.legend(fontsize=7, loc="lower right")
    for ax in (ax_b, ax_a, ax_s):
        ax.set_xlabel("timestep t")
        ax.grid(True, alpha=0.3)
    return fig


def plot_targets(observation: np.ndarray, noise: np.ndarray, stages, sigma: float) -> Figure:
    """Thumbnails of the staged targets ``y + s_k z`` (shown clipped to [0, 1]) next to ``y``.

    Parameters
    ----------
    observation, noise : numpy.ndarray
        ``y`` and ``z`` as (H, W) or (H, W, C).
    stages : list of Stage
    sigma : float
        Noise level of ``y`` (for the titles' ``sigma_k``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = len(stages) + 1
    fig = Figure(figsize=(2.6 * n, 2.9), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for k, stage in enumerate(stages):
        _show(axes[k], observation + stage.scale * noise,
              f"stage {k + 1}: y + {stage.scale:.3g} z\n" + rf"$\sigma_k$ = {math.hypot(sigma, stage.scale):.3g}")
    _show(axes[-1], observation, f"observation y\n$\\sigma$ = {sigma:.3g}")
    return fig


_UNBOUNDED_DB = 100.0  # drawn for an unbounded upper end of the estimate's range (off the axis)


def _stage_bands(ax, result: Restoration, last: int) -> None:
    edges = [*result.stage_starts, last]
    for k, (a, b) in enumerate(zip(edges, edges[1:], strict=False)):
        if k % 2 == 0:
            ax.axvspan(a, b, color=COLORS["band"], alpha=0.15, lw=0)


def estimated_psnr_curve(result: Restoration, shift: float = 0.0) -> np.ndarray | None:
    """``PSNR_hat = -10 log10(MSE_hat + (v_t - v - shift) g)`` at every iteration from the recorruption criterion.

    ``MSE_hat`` is the estimate at the returned iterate, ``v`` the criterion there, ``g`` the stopper's
    ``error_gain`` (1 unless the result is declipped; then the criterion's changes are taken as the fit's error
    changing evenly over the image). Without declipping this is ``-10 log10(v_t - offset - shift)``.

    Parameters
    ----------
    result : Restoration
        A run the recorruption stopper watched (its offset is that of the returned iterate).
    shift : float
        Added to the offset; ``+/- 2 * offset_uncertainty`` gives the ends of the about-95% range.

    Returns
    -------
    numpy.ndarray or None
        NaN where ``v_t - offset - shift <= 0`` (unbounded); None when the run has no PSNR estimate
        (``result.estimated_psnr``: without the recorruption stopper, or behind an operator, where the
        criterion measures ``A xbar``, not the image).
    """
    values = result.history.get("recorruption")
    summary = result.stoppers.get("recorruption", {})
    if values is None or summary.get("estimated_mse") is None or result.estimated_psnr is None:
        return None
    gain = summary.get("error_gain") or 1.0  # a declipped result's error per fit error
    criterion = np.array([np.nan if v is None else v for v in values], dtype=float)
    excess = summary["estimated_mse"] + (criterion - summary["validation_mse"] - shift) * gain
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
    staged = len(result.stage_starts) > 1
    if staged:
        _stage_bands(ax_loss, result, last)
        _stage_bands(ax_psnr, result, last)

    stabilised = result.sigma_source in ("photons", "photons-estimated")  # Poisson fitted in Anscombe units
    gaussian = result.noise == "gaussian" or stabilised
    units = ", Anscombe-stabilised units" if stabilised else ""
    ax_loss.semilogy(it, h["loss"], color=COLORS["loss"], lw=0.8,
                     label=f"training MSE (vs. the stage's target{units})" if gaussian else
                     f"training loss ({result.noise} noise model)")
    if gaussian and result.sigma_used is not None:
        floors = [result.sigma_used**2 + result.stage_scales[k] ** 2 for k in h["stage"]]
        ax_loss.semilogy(it, floors, color=COLORS["floor"], lw=1.2, ls="--",
                         label=r"noise floor $\sigma^2 + s_k^2$ of the stage")
    estimate = estimated_psnr_curve(result)
    validation = {"held-out": "loss on the held-out values (never trained; its minimum is the held-out stop)"}
    if estimate is None:
        validation["recorruption"] = r"MSE against $y - (\sigma/a) z$ (its minimum is the recorruption stop)"
    for name, label in validation.items():
        if name not in h:
            continue
        values = np.array([np.nan if v is None else v for v in h[name]], dtype=float)
        ax_loss.semilogy(it, values, color=COLORS["estimate"], lw=1.0, label=label)
        best = result.stoppers[name].get("best_iteration")
        if best is not None and best in set(it.tolist()):
            ax_loss.plot([best], [values[it.tolist().index(best)]], "o", color=COLORS["stop"], ms=4)
    ax_loss.set_ylabel(("MSE (stabilised [0, 1])" if stabilised else "MSE (image range [0, 1])") if gaussian
                       else "loss")
    ax_loss.legend(loc="upper right", fontsize=8)
    ax_loss.grid(True, which="major", alpha=0.3)

    if estimate is not None:
        ax_psnr.plot(it, estimate, color=COLORS["estimate"], lw=1.2,
                     label="estimated PSNR (recorruption, no clean image)")
        spread = 2 * (result.stoppers["recorruption"].get("offset_uncertainty") or 0.0)
        if spread > 0:
            low = estimated_psnr_curve(result, -spread)  # a larger offset leaves a smaller error: higher PSNR
            high = np.nan_to_num(estimated_psnr_curve(result, spread), nan=_UNBOUNDED_DB)
            ax_psnr.fill_between(it, low, high, where=~np.isnan(low), color=COLORS["estimate"], alpha=0.12, lw=0,
                                 label="its ~95% range (sigma and validation noise uncertain)")
    if "oracle" in h:
        ax_psnr.plot(it, h["oracle"], color=COLORS["truth"], lw=1.2, ls=(0, (4, 2)),
                     label="true PSNR (evaluation only)")
    ax_psnr.axvline(result.stop_iteration, color=COLORS["stop"], lw=1.5,
                    label=f"auto stop ({result.stopper}) @ {result.stop_iteration}"
                          f"{describe_colour_stops(result.colour_stops())}")
    if result.evaluation is not None:
        ev = result.evaluation
        oracle_stops = describe_colour_stops(result.colour_stops("oracle"))
        ax_psnr.axvline(ev["oracle_iteration"], color=COLORS["oracle"], lw=1.5, ls=":",
                        label=f"oracle peak @ {ev['oracle_iteration']}{oracle_stops} ({ev['oracle_psnr']:.2f} dB, "
                              f"evaluation only)")
        if result.colour_stops() is not None:  # the composed result lies off the whole-iterate curve
            ax_psnr.plot([result.stop_iteration], [ev["ref_psnr"]], "o", color=COLORS["stop"], ms=5,
                         label=f"the result, each colour component at its own stop ({ev['ref_psnr']:.2f} dB)")
    finite = [v for v in ([] if estimate is None else estimate.tolist()) + list(h.get("oracle", []))
              if v is not None and math.isfinite(v)]
    if finite:
        top = max(finite)
        ax_psnr.set_ylim(max(min(finite), top - 15), top + 1.5)
    ax_psnr.set_xlabel("iteration (shaded bands: curriculum stages)" if staged else "iteration")
    ax_psnr.set_ylabel("PSNR (dB)")
    ax_psnr.legend(loc="lower right", fontsize=8)
    ax_psnr.grid(True, alpha=0.3)
    ax_psnr.set_xlim(0, last)
    if title:
        fig.suptitle(title)
    return fig


def plot_snapshots(snapshots: dict[int, np.ndarray], stages: dict[int, int] | None = None,
                   reference: np.ndarray | None = None, columns: int = 4) -> Figure:
    """A grid of outputs at chosen iterations (from :class:`~dipddpm.callbacks.SnapshotRecorder`).

    Parameters
    ----------
    snapshots : dict of int to numpy.ndarray
        Iteration -> image.
    stages : dict of int to int, optional
        Iteration -> stage, shown in the titles.
    reference : numpy.ndarray, optional
        Clean image: adds the PSNR of each snapshot (evaluation only).
    columns : int
        Grid width.

    Returns
    -------
    matplotlib.figure.Figure
    """
    items = sorted(snapshots.items())
    rows = max(1, math.ceil(len(items) / columns))
    fig = Figure(figsize=(2.6 * columns, 2.7 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (iteration, image) in zip(axes, items, strict=False):
        title = f"iteration {iteration}"
        if stages and iteration in stages:
            title += f", stage {stages[iteration] + 1}"
        if reference is not None:
            ref = reference.reshape(image.shape)
            title += f"\n{-10 * np.log10(np.mean((image - ref) ** 2)):.2f} dB"
        _show(ax, image, title)
    for ax in axes[len(items):]:
        ax.set_axis_off()
    return fig


def centre_zoom(shape: tuple[int, int], fraction: float = 0.25) -> tuple[int, int, int] | None:
    """The ``(top, left, size)`` of a centred square crop whose side is ``fraction`` of the shorter side.

    Parameters
    ----------
    shape : (int, int)
        Image height and width.
    fraction : float
        Side of the crop relative to ``min(height, width)``.

    Returns
    -------
    tuple of int, or None
        None when the crop would be under 8 pixels (no zoom is worth showing).
    """
    height, width = shape
    size = int(min(height, width) * fraction)
    if size < 8:
        return None
    return (height - size) // 2, (width - size) // 2, size


def plot_comparison(images: dict[str, np.ndarray], zoom: tuple[int, int, int] | None = None) -> Figure:
    """Images side by side (e.g. noisy / restored / clean), optionally with a zoomed crop row.

    Parameters
    ----------
    images : dict of str to numpy.ndarray
        Title -> image (H, W) or (H, W, C), floats in [0, 1] or integers.
    zoom : (top, left, size), optional
        Square crop shown enlarged below each image and outlined on it.

    Returns
    -------
    matplotlib.figure.Figure
    """
    first = np.asarray(next(iter(images.values())))
    aspect = first.shape[0] / first.shape[1]
    rows = 2 if zoom else 1
    width = 3.2
    heights = [width * aspect] + ([width] if zoom else [])
    fig = Figure(figsize=(width * len(images), sum(heights) + 0.5 * rows), layout="constrained")
    axes = fig.subplots(rows, len(images), squeeze=False, gridspec_kw={"height_ratios": heights})
    for j, (name, image) in enumerate(images.items()):
        _show(axes[0, j], image, name)
        if zoom:
            top, left, size = zoom
            _show(axes[1, j], np.asarray(image)[top:top + size, left:left + size],
                  f"zoom: {size}x{size} px at row {top}, column {left}")
            axes[0, j].add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False,
                                           edgecolor=COLORS["oracle"], lw=1.5))
    return fig


def plot_stoppers(result: Restoration, reference: np.ndarray | None = None) -> Figure:
    """Where every watching stopper ended (or would have ended) the one trajectory, and what it returned.

    Top: the PSNR curve (true PSNR when a reference was given -- evaluation only -- else the
    recorruption estimate) with each stopper's returned iteration. Bottom: each stopper's image.

    Parameters
    ----------
    result : Restoration
        Its ``outputs`` hold each stopper's iterate.
    reference : numpy.ndarray, optional
        Clean image (H, W, C) in [0, 1], for the PSNR in the titles.

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = [n for n in result.outputs if n != "oracle"] + (["oracle"] if "oracle" in result.outputs else [])
    fig = Figure(figsize=(max(8, 2.6 * len(names)), 6.5), layout="constrained")
    grid = fig.add_gridspec(2, len(names), height_ratios=[1.1, 1])
    ax = fig.add_subplot(grid[0, :])
    it = result.history["iteration"]
    if "oracle" in result.history:
        ax.plot(it, result.history["oracle"], color=COLORS["truth"], lw=1.3, label="true PSNR (evaluation only)")
    estimate = estimated_psnr_curve(result)
    if estimate is not None:
        ax.plot(it, estimate, color=COLORS["estimate"], lw=1.0, alpha=0.8, label="estimated PSNR (recorruption)")
    for k, name in enumerate(names):
        s = result.stoppers[name]
        if s.get("evaluation_only"):
            label, fired = f"{name} (best iterate, evaluation only): {s['best_iteration']}", ""
        else:
            label = f"{name}: returns {s['best_iteration']}"
            fired = "" if s["fired_at"] else ", not fired by the end"
        ax.axvline(s["best_iteration"], color=_CYCLE[k % len(_CYCLE)], ls=_STYLES[k % len(_STYLES)], lw=1.4,
                   label=label + fired)
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    for k, name in enumerate(names):
        image = result.outputs[name][0].permute(1, 2, 0).double().cpu().numpy()
        title = f"{name} @ {result.stoppers[name]['best_iteration']}"
        if reference is not None:
            ref = np.asarray(reference, dtype=np.float64).reshape(image.shape)
            title += f"\n{-10 * np.log10(np.mean((image - ref) ** 2)):.2f} dB"
        _show(fig.add_subplot(grid[1, k]), image, title)
    return fig
