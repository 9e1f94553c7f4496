"""Command line: ``dipddpm demo``, ``denoise``, ``batch``, ``inpaint``, ``upscale``, ``estimate-sigma``,
``estimate-noise``, ``bench``.

A thin skin over the Python API. Every error is one line on stderr with a non-zero exit status;
outputs are checked for writability before any work and written atomically.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import click
import numpy as np

from .api import denoise, mask_operator, plan_tiling, restored_channels, to_unit_range
from .batch import RunSettings, restore_files
from .engine import TrainingDiverged
from .errors import InputError
from .io import TiffLayout, atomic_write, check_writable, read_image, read_pages, write_pages
from .memory import estimate_memory
from .noise import SIGMA_METHODS, estimate_sigma
from .noise_fit import NoiseFit, fit_noise_model
from .noise_models import NOISE_MODELS
from .physics import Downsample
from .presets import PRESETS, get_preset
from .restore import PHOTONS_OFF, STOPPERS, check_stopper_name, resolve_device
from .result import TiledRestoration, describe_colour_stops

__all__ = ["cli", "main", "parse_photons", "parse_sigma"]

_FRACTION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*/\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")


def parse_sigma(text: str) -> float:
    """Parse a noise level: ``0.098`` or ``25/255`` (image units, in (0, 1)).

    Parameters
    ----------
    text : str

    Returns
    -------
    float

    Raises
    ------
    InputError
        Not a number, not positive, or not below 1 (a hint suggests ``N/255``).
    """
    match = _FRACTION.match(text)
    try:
        value = float(match.group(1)) / float(match.group(2)) if match else float(text)
    except (ValueError, ZeroDivisionError):
        raise InputError(f"--sigma {text!r} is not a number; write it like 0.098 or 25/255") from None
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"--sigma must be positive, got {text}")
    if value >= 1:
        raise InputError(f"--sigma is in image units (0..1); did you mean {text}/255?")
    return value


def _channel_axis(image: np.ndarray) -> int | None:
    return None if image.ndim == 2 else -1


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        click.echo(text)


def _parse_tile(text: str) -> int | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else text
    if not text.isdigit():
        raise InputError(f"--tile takes auto, none or a size in pixels, got {text!r}")
    return int(text)


def _sigma_text(info) -> str:
    if info.sigma_source == "photons":
        return f"sigma {info.sigma_used:.4f} in Anscombe-stabilised units (from the photon count)"
    if info.sigma_source == "photons-estimated":
        fit = info.noise_fit
        read = f" and read noise {fit['read_noise']:.3g}" if fit["read_noise"] else ""
        return (f"sigma {info.sigma_used:.4f} in Anscombe-stabilised units (from {fit['photons']:.3g} photons at "
                f"white{read}, estimated from the image)")
    if info.noise_fit is not None:
        return f"photon count not estimated ({info.noise_fit['reason']}): fitting the image with the Poisson loss"
    if info.sigma_used is None:
        return "sigma not used (none given, and it is estimated only for Gaussian denoising)"
    return f"sigma {info.sigma_used:.4f} (= {info.sigma_used * 255:.1f}/255, {info.sigma_source})"


def _report(info, quiet: bool) -> None:
    est = info.describe_estimate()
    _say(quiet, _sigma_text(info))
    if hasattr(info, "tiles"):
        stops = sorted(info.stop_iterations)
        _say(quiet, f"{len(info.tiles)} tiles of {info.tile} px (overlap {info.overlap}); stops from iteration "
                    f"{stops[0]} to {stops[-1]} (median {stops[len(stops) // 2]}); estimated PSNR {est}; "
                    f"{info.seconds:.1f} s")
        if info.evaluation is not None:
            ev = info.evaluation
            _say(quiet, f"[evaluation only, with the reference] noisy {ev['noisy_psnr']:.2f} dB, restored "
                        f"{ev['ref_psnr']:.2f} dB, every tile at its own oracle peak {ev['oracle_psnr']:.2f} dB "
                        f"(gap {ev['oracle_psnr'] - ev['ref_psnr']:.2f} dB)")
        return
    if info.physics != "identity" or info.noise != "gaussian":
        _say(quiet, f"operator: {info.physics}; noise model: {info.noise}")
    if info.members:
        stops = ", ".join(str(m["stop_iteration"]) for m in info.members)
        _say(quiet, f"ensemble of {len(info.members)} runs in antithetic pairs, stopped at iterations {stops} "
                    f"({info.iterations_run} iterations in all); estimated PSNR {est}; {info.seconds:.1f} s")
    else:
        _say(quiet, f"stopped at iteration {info.stop_iteration}{describe_colour_stops(info.colour_stops())} of "
                    f"{info.iterations_run} by {info.stopped_by}; estimated PSNR {est}; {info.seconds:.1f} s")
    if info.evaluation is not None:
        ev = info.evaluation
        noisy = "" if ev["noisy_psnr"] is None else f"noisy {ev['noisy_psnr']:.2f} dB, "
        peak = (f"every run's own oracle iterate averaged {ev['oracle_psnr']:.2f} dB" if info.members
                else f"oracle peak {ev['oracle_psnr']:.2f} dB at iteration {ev['oracle_iteration']}"
                     f"{describe_colour_stops(info.colour_stops('oracle'))}")
        _say(quiet, f"[evaluation only, with the reference] {noisy}restored "
                    f"{ev['ref_psnr']:.2f} dB, {peak} (gap {ev['oracle_psnr'] - ev['ref_psnr']:.2f} dB)")


@dataclass(frozen=True)
class _Outputs:
    """The files a restoring command writes: checked before any work, each written atomically."""

    image: Path
    json: Path | None = None
    plot: Path | None = None
    compare: Path | None = None

    def check(self) -> None:
        """Fail, before any work, on an output that cannot be written."""
        check_writable(self.image)
        if self.json is not None:
            check_writable(self.json, suffixes=(".json",))
        for figure in (self.plot, self.compare):
            if figure is not None:
                check_writable(figure, suffixes=(".png", ".pdf", ".svg"))

    def write(self, info, input_path: Path, shown: dict | None = None, layout: TiffLayout | None = None) -> list[str]:
        """Write the image (a TIFF in the input's ``layout``), then the JSON, the curves and the comparison
        (``shown``) that were asked for."""
        write_pages(self.image, [info.image], layout)
        written = [str(self.image)]
        if self.json is not None:
            info.to_json(self.json)
            written.append(str(self.json))
        if self.plot is not None:
            from .plots import plot_run, save_figure

            save_figure(plot_run(info, title=_title(input_path, info)), self.plot)
            written.append(str(self.plot))
        if self.compare is not None:
            from .plots import centre_zoom, plot_comparison, save_figure

            first = next(iter(shown.values()))
            save_figure(plot_comparison(shown, zoom=centre_zoom(first.shape[:2])), self.compare)
            written.append(str(self.compare))
        return written


def _write_and_report(outputs: _Outputs, info, input_path: Path, quiet: bool, shown: dict | None = None,
                      notes: Sequence[str] = (), layout: TiffLayout | None = None) -> None:
    """Write the outputs, then print the summary, any further ``notes`` and what was written."""
    written = outputs.write(info, input_path, shown, layout)
    _report(info, quiet)
    for note in notes:
        _say(quiet, note)
    _say(quiet, "wrote " + ", ".join(written))


def _restore(image: np.ndarray, quiet: bool, **kwargs):
    """Run :func:`~dipddpm.api.denoise` on an image as read from a file; return its Restoration."""
    return denoise(image, channel_axis=_channel_axis(image), preserve_dtype=True, progress=False if quiet else None,
                   return_info=True, **kwargs)


def _optional_sigma(text: str | None) -> float | None:
    return None if text is None else parse_sigma(text)


def _optional_image(path: Path | None) -> np.ndarray | None:
    return None if path is None else read_image(path)


def _apply(func, options):
    for option in reversed(options):
        func = option(func)
    return func


def _method_options(func):
    """How an image is restored: the options every restoring command takes, ``batch`` included."""
    return _apply(func, [
        click.option("--sigma", help="Gaussian noise level in image units, e.g. 0.098 or 25/255 (estimated if "
                                     "omitted, for Gaussian denoising only)."),
        click.option("--noise", type=click.Choice(list(NOISE_MODELS)), default="gaussian", show_default=True,
                     help="Noise model of IN: sets the training loss (and the automatic stopper)."),
        click.option("--photons",
                     help="With --noise poisson: expected count of a white pixel. Given, or estimated from IN when "
                          "omitted (see estimate-noise), IN is Anscombe-stabilised and restored like Gaussian noise "
                          "(staged targets, recorruption stop); 'off', or an estimate that finds no signal-dependent "
                          "noise: IN is fitted with the Poisson loss and a held-out stop."),
        click.option("--stopper", help=f"auto (recorruption for Gaussian noise with a known or estimated sigma "
                                       f"and for Poisson noise with a known or estimated photon count, else "
                                       f"held-out) or one of: "
                                       f"{', '.join(STOPPERS)} (oracle needs --ref and is evaluation only)."),
        click.option("--max-iter", type=click.IntRange(min=1), help="Iteration budget."),
        click.option("--seed", type=int, default=0, show_default=True, help="Random seed."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N."),
    ])


def _run_options(func):
    """The options of a command that restores one file: its outputs and how it is restored."""
    return _apply(func, [
        click.option("-o", "--output", "output_path", required=True, type=click.Path(path_type=Path),
                     help="Output image (.png, .jpg, .tif, .bmp); same dtype as the input (a TIFF stack stays a "
                          "stack)."),
        _method_options,
        click.option("--ref", "ref_path", type=click.Path(path_type=Path),
                     help="Clean reference of the restored image's size, for EVALUATION ONLY (PSNR numbers; the "
                          "run is unchanged)."),
        click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the run's details as JSON."),
        click.option("--plot", "plot_path", type=click.Path(path_type=Path),
                     help="Write the training curves figure (.png, .pdf or .svg)."),
        click.option("--quiet", is_flag=True, help="No progress bar, no summary."),
    ])


def _denoise_options(func):
    """Settings of plain denoising (``denoise`` and ``batch``): the preset and tiling."""
    return _apply(func, [
        click.option("--preset", default="default", show_default=True,
                     help=f"Settings: {', '.join(PRESETS)} (default: a faster optimiser at sigma <= 18/255, 28/255 in "
                          "tiles, whose network is 4 scales deep; fast: that optimiser at every sigma, up to 2x "
                          "sooner at sigma 25 but worse at sigma 50; quality: 4 runs averaged, about +0.6 dB for 4x "
                          "the time; paper: the original DIP recipe, slow on CPU)."),
        click.option("--ensemble", type=click.IntRange(min=1),
                     help="Average this many runs, in antithetic pairs (z, -z), each with its own initialisation and "
                          "stop: better results for K times the time (default: the preset's; 1 for default and "
                          "fast)."),
        click.option("--tile", default="auto", show_default=True,
                     help="Restore in overlapping tiles of this many pixels; auto: tiles of 144 px or more on a CPU at "
                          "sigma <= 35/255 when a side has room for two (sooner and better), and whenever the "
                          "image would not fit the memory budget; none: never."),
        click.option("--overlap", type=click.IntRange(min=0), default=32, show_default=True,
                     help="Overlap of neighbouring tiles in pixels."),
    ])


def parse_photons(text: str | None) -> float | str | None:
    """Parse ``--photons``: a positive number, ``off``, or None (not given: estimated for Poisson denoising).

    Raises
    ------
    InputError
        Anything else.
    """
    if text is None or text.strip() == PHOTONS_OFF:
        return None if text is None else PHOTONS_OFF
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--photons takes a positive number or {PHOTONS_OFF}, got {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise InputError(f"--photons must be a positive number (or {PHOTONS_OFF}), got {text}")
    return value


def _settings(preset: str, max_iter: int | None, stopper: str | None, sigma: str | None, noise: str,
              photons: str | None, seed: int, device: str, tile: str, overlap: int,
              ensemble: int | None) -> RunSettings:
    """The options of ``denoise`` and ``batch`` as the settings every image is restored with."""
    chosen = get_preset(preset, max_iter)
    config = chosen.config if ensemble is None else replace(chosen.config, ensemble=ensemble)
    return RunSettings(config=config, stopper=check_stopper_name(stopper or chosen.stopper),
                       sigma=_optional_sigma(sigma), noise=noise, photons=parse_photons(photons), seed=seed,
                       device=device, tile=_parse_tile(tile), overlap=overlap)


def _parse_workers(text: str) -> int | None:
    """``--workers``: ``auto`` (None) or a number of processes of at least 1."""
    if text == "auto":
        return None
    if not (text.isdigit() and int(text) >= 1):
        raise InputError(f"--workers takes auto or a number of processes of at least 1, got {text!r}")
    return int(text)


def _title(input_path: Path, info) -> str:
    what = "" if info.physics == "identity" and info.noise == "gaussian" else f"{info.physics}, {info.noise} noise, "
    return f"{input_path.name}: {what}{_sigma_text(info)}"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dipddpm")
def cli():
    """Deep Image Prior restoration (denoising, inpainting, upscaling) with an automatic stop."""


def _watch_notes(info, watched: Sequence[str]) -> list[str]:
    return [f"  {name} would have stopped at iteration {info.stoppers[name]['fired_at'] or '- (not by the end)'} "
            f"and returned iteration {info.stoppers[name]['best_iteration']}" for name in watched]


def _denoise_stack(pages: list[np.ndarray], layout, settings: RunSettings, references: list, watched: list[str],
                   outputs: _Outputs, quiet: bool) -> None:
    """Restore every page of a stack on its own (its own run and stop); write the stack and one JSON."""
    infos = []
    for number, (page, reference) in enumerate(zip(pages, references, strict=True), start=1):
        _say(quiet, f"page {number}/{len(pages)}:")
        info = settings.restore(page, reference=reference, watch=watched, progress=False if quiet else None)
        _report(info, quiet)
        for note in _watch_notes(info, watched):
            _say(quiet, note)
        infos.append(info)
    write_pages(outputs.image, [info.image for info in infos], layout)
    written = [str(outputs.image)]
    if outputs.json is not None:
        text = json.dumps({"pages": [info.to_dict() for info in infos]}, indent=1)
        atomic_write(outputs.json, (text + "\n").encode())
        written.append(str(outputs.json))
    _say(quiet, "wrote " + ", ".join(written))


@cli.command("denoise")
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@_run_options
@_denoise_options
@click.option("--watch", default="", help="Extra stoppers to record alongside, comma-separated (e.g. es-wmv,fixed); "
                                         "held-out changes the run, as it keeps its values out of training.")
@click.option("--compare", "compare_path", type=click.Path(path_type=Path),
              help="Write noisy / restored (/ reference) side by side with a zoomed centre crop.")
@click.option("--workers", default="auto", show_default=True,
              help="Processes that restore the independent runs of the image (tiles, ensemble members) at once, "
                   "torch threads split so that workers x threads <= cores; auto: one per core on the CPU, one on "
                   "a GPU.")
def denoise_command(input_path, output_path, sigma, noise, photons, stopper, max_iter, seed, device, ref_path,
                    json_path, plot_path, quiet, preset, ensemble, tile, overlap, watch, compare_path, workers):
    """Denoise the image IN and write it to OUT; a TIFF stack page by page, each page its own run and stop."""
    settings = _settings(preset, max_iter, stopper, sigma, noise, photons, seed, device, tile, overlap, ensemble)
    settings = replace(settings, config=replace(settings.config, workers=_parse_workers(workers)))
    pages, layout = read_pages(input_path)
    image = pages[0]
    colour = restored_channels(1 if image.ndim == 2 else image.shape[-1])
    tile_size = plan_tiling(image.shape[0], image.shape[1], colour, settings.tile, overlap, config=settings.config,
                            device=device)  # for memory; "auto" may still tile for time (the API knows sigma)
    if tile_size is not None or settings.tile != "auto" or plot_path is not None:  # --plot: one run if it fits
        settings = replace(settings, tile=tile_size)
    stack = len(pages) > 1
    if stack and (plot_path is not None or compare_path is not None):
        raise InputError(f"{input_path} is a stack of {len(pages)} images; --plot and --compare show one run "
                         f"(use --json for every page's run)")
    if stack and output_path.suffix.lower() not in (".tif", ".tiff"):
        raise InputError(f"{input_path} is a stack of {len(pages)} images; write it to a .tif file")
    if settings.config.ensemble > 1 and plot_path is not None:
        raise InputError(f"--plot draws one run's training curves; an ensemble has {settings.config.ensemble} "
                         f"(use --json for every member's stop)")
    if tile_size is not None and plot_path is not None:
        raise InputError("--plot draws one run's training curves; this image is restored in tiles "
                         "(use --tile none, or --json for every tile's stop)")
    outputs = _Outputs(output_path, json_path, plot_path, compare_path)
    outputs.check()
    watched = [check_stopper_name(name.strip()) for name in watch.split(",") if name.strip()]
    references = [None] * len(pages) if ref_path is None else read_pages(ref_path)[0]
    if len(references) != len(pages):
        raise InputError(f"{ref_path} holds {len(references)} images and {input_path} {len(pages)}; the reference "
                         f"needs one per page")
    if tile_size is not None:
        need = estimate_memory(tile_size, tile_size, colour, settings.config.train.net)
        _say(quiet, f"restoring in tiles of {tile_size} px with {overlap} px overlap (about {need / 2**20:.0f} MiB "
                    f"each)")
    if stack:
        _denoise_stack(pages, layout, settings, references, watched, outputs, quiet)
        return
    info = settings.restore(image, reference=references[0], watch=watched, progress=False if quiet else None)
    tiled = isinstance(info, TiledRestoration)  # tiled for memory (above), or for time (decided with sigma)
    label = "restored" + ("" if tiled else f" ({len(info.members)} runs averaged)" if info.members
                          else f" (iteration {info.stop_iteration})")
    shown = {"noisy": image, label: info.image}
    if references[0] is not None:
        shown["reference (evaluation only)"] = references[0]
    _write_and_report(outputs, info, input_path, quiet, shown, _watch_notes(info, watched), layout=layout)


@cli.command("batch")
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option("-o", "--out-dir", required=True, type=click.Path(path_type=Path),
              help="Output folder: each output at its input's relative path, same name, format and dtype, with a "
                   "JSON sidecar (NAME.json), and summary.csv.")
@_method_options
@_denoise_options
@click.option("--recursive", is_flag=True, help="Include the subfolders of input folders (and ** in patterns).")
@click.option("--force", is_flag=True, help="Redo inputs already restored with the same settings.")
@click.option("--workers", default="auto", show_default=True,
              help="Local worker processes (torch threads are split so that workers x threads <= cores); auto: "
                   "one per core on the CPU, one on a GPU.")
@click.option("--ray", "use_ray", is_flag=True,
              help='Run each image (each stack page) as a Ray task (pip install "dipddpm[ray]").')
@click.option("--ray-address", help="With --ray: an existing cluster (e.g. auto, ray://HOST:10001); default: a new "
                                    "local instance.")
@click.option("--cpus-per-task", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="With --ray: CPUs per task (its torch threads).")
@click.option("--gpus-per-task", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="With --ray: GPUs per task; a fraction (e.g. 0.25) lets runs share a GPU.")
@click.option("--quiet", is_flag=True, help="No progress bar, no summary line.")
def batch_command(inputs, out_dir, sigma, noise, photons, stopper, max_iter, seed, device, preset, ensemble, tile,
                  overlap, recursive, force, workers, use_ray, ray_address, cpus_per_task, gpus_per_task, quiet):
    """Denoise many images (files, folders, glob patterns; TIFF stacks page by page) into OUT_DIR.

    Failures are reported in OUT_DIR/summary.csv and do not stop the batch; a second run skips what is
    done. Exit status 1 when any input failed.
    """
    from .executors import RayTasks, local_executor

    settings = _settings(preset, max_iter, stopper, sigma, noise, photons, seed, device, tile, overlap, ensemble)
    count = _parse_workers(workers)
    ray_only = {"--ray-address": ray_address is not None, "--cpus-per-task": cpus_per_task != 1.0,
                "--gpus-per-task": gpus_per_task != 0.0}
    misplaced = [name for name, given in ray_only.items() if given and not use_ray]
    if misplaced:
        raise InputError(f"{', '.join(misplaced)} applies with --ray only")
    if use_ray and workers != "auto":
        raise InputError("choose --workers (local processes) or --ray, not both")
    if use_ray:
        executor = RayTasks(ray_address, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task)
    else:
        executor = local_executor(count, str(resolve_device(device)))
    records = restore_files(inputs, out_dir, settings, executor=executor, recursive=recursive, force=force,
                            progress=False if quiet else None)
    counts = {status: sum(r.status == status for r in records) for status in ("done", "skipped", "failed")}
    for record in records:
        if record.status == "failed":
            click.echo(f"dipddpm: failed: {record.input}: {record.error}", err=True)
    _say(quiet, f"{counts['done']} restored, {counts['skipped']} skipped (done before), {counts['failed']} failed, "
                f"of {len(records)}; summary in {Path(out_dir) / 'summary.csv'}")
    return 1 if counts["failed"] else 0


@cli.command("inpaint")
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.option("--mask", "mask_path", required=True, type=click.Path(path_type=Path),
              help="Mask image of IN's size, grey or with IN's channels: nonzero = observed, 0 = to fill in.")
@_run_options
def inpaint_command(input_path, mask_path, output_path, sigma, noise, photons, stopper, max_iter, seed, device,
                    ref_path, json_path, plot_path, quiet):
    """Fill in the pixels of IN that MASK marks missing (and denoise the rest); write the result to OUT."""
    image = read_image(input_path)
    mask = read_image(mask_path)
    outputs = _Outputs(output_path, json_path, plot_path)
    outputs.check()
    sigma_value = _optional_sigma(sigma)
    physics = mask_operator(mask, image, _channel_axis(image), resolve_device(device))
    info = _restore(image, quiet, sigma=sigma_value, stopper=check_stopper_name(stopper or "auto"),
                    max_iter=max_iter, seed=seed, device=device, reference=_optional_image(ref_path), tile=None,
                    noise=noise, physics=physics, photons=parse_photons(photons))
    _write_and_report(outputs, info, input_path, quiet)


def _parse_scale(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 2:
        raise InputError(f"--scale must be an integer of at least 2, got {text!r}")
    return int(text)


@cli.command("upscale")
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.option("--scale", required=True, help="Integer factor >= 2: OUT is this many times wider and taller than IN.")
@_run_options
def upscale_command(input_path, scale, output_path, sigma, noise, photons, stopper, max_iter, seed, device, ref_path,
                    json_path, plot_path, quiet):
    """Upscale IN by an integer factor (super-resolution; IN is taken as box-averaged) and write it to OUT."""
    factor = _parse_scale(scale)
    image = read_image(input_path)
    outputs = _Outputs(output_path, json_path, plot_path)
    outputs.check()
    info = _restore(image, quiet, sigma=_optional_sigma(sigma), stopper=check_stopper_name(stopper or "auto"),
                    max_iter=max_iter, seed=seed, device=device, reference=_optional_image(ref_path), tile=None,
                    noise=noise, physics=Downsample(factor), photons=parse_photons(photons))
    _write_and_report(outputs, info, input_path, quiet)


@cli.command("estimate-sigma")
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.option("--method", type=click.Choice(list(SIGMA_METHODS)), default="weak-texture", show_default=True,
              help="weak-texture: low-gradient patches (Liu et al. 2013); pca: patch covariance (Chen et al. 2015); "
                   "wavelet: MAD of the finest diagonal band (the estimator before).")
def estimate_sigma_command(input_path, method):
    """Print the estimated Gaussian noise level of IN, in image units and in 8-bit units."""
    colour = _restored_planes(read_image(input_path))
    value = estimate_sigma(colour, channel_axis=_channel_axis(colour), method=method)
    click.echo(f"{value:.5f}  (= {value * 255:.2f}/255)")


def _restored_planes(image: np.ndarray) -> np.ndarray:
    """The channels of a file's image that are restored (no alpha), in [0, 1]: (H, W) or (H, W, 3)."""
    unit = to_unit_range(image)[0]
    if unit.ndim == 3 and unit.shape[-1] in (3, 4):
        return unit[..., :3]
    return unit[..., 0] if unit.ndim == 3 else unit


def _noise_fit_lines(fit: NoiseFit) -> list[str]:
    """The fitted model in two lines: what it is, then the variance parameters behind it."""
    read = f"read noise {fit.read_noise:.4f} ± {fit.read_noise_sd:.4f} (= {fit.read_noise * 255:.2f}/255)"
    if fit.kind == "gaussian":
        first = f"gaussian: sigma {fit.read_noise:.4f} ± {fit.read_noise_sd:.4f} (= {fit.read_noise * 255:.2f}/255)"
    else:
        first = f"{fit.kind}: {fit.photons:.3g} ± {fit.photons_sd:.2g} photons at white, {read}"
    return [first, f"var(y | x) = a x + b, a = {fit.a:.4g} ± {fit.a_sd:.2g}, b = {fit.b:.4g} ± {fit.b_sd:.2g} "
                   f"({fit.blocks} smooth 3x3 blocks, {len(fit.levels)} levels)"]


@cli.command("estimate-noise")
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write the fitted model as JSON.")
def estimate_noise_command(input_path, json_path):
    """Fit the noise model var(y | x) = a x + b to IN (Poisson-Gaussian, after Foi et al. 2008) and print it.

    Poisson noise y = Poisson(lam x) / lam has a = 1 / lam (lam photons at white) and b = 0; Gaussian noise
    a = 0 and b = sigma^2. The kind (gaussian, poisson or poisson-gaussian) is the simplest model the data
    allow.
    """
    if json_path is not None:
        check_writable(json_path, suffixes=(".json",))
    fit = fit_noise_model(colour := _restored_planes(read_image(input_path)), channel_axis=_channel_axis(colour))
    for line in _noise_fit_lines(fit):
        click.echo(line)
    if json_path is not None:
        text = json.dumps({"image": str(input_path), **fit.to_dict()}, indent=1)
        atomic_write(json_path, (text + "\n").encode())


@cli.command("demo")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("dipddpm-demo"), show_default=True,
              help="Folder for the images and the plot.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the restoration.")
@click.option("--max-iter", type=click.IntRange(min=1), help="Iteration budget (default: the usual one).")
@click.option("--device", default="auto", show_default=True)
@click.option("--quiet", is_flag=True)
def demo_command(out_dir, seed, max_iter, device, quiet):
    """Denoise the bundled image at sigma = 25/255 and compare with the clean original."""
    from .demo import run_demo

    run_demo(out_dir, seed=seed, max_iter=max_iter, device=device, quiet=quiet, echo=click.echo)


def _number_list(text: str, kind: type, option: str) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{option} takes a comma-separated list of numbers, got {text!r}") from None
    if not values:
        raise InputError(f"{option} is empty")
    return values


@cli.command("bench")
@click.option("--images", "folders", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Folder of clean images (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="Use the first N images (by name) of each folder.")
@click.option("--sigma", "sigmas", default="15,25,50", show_default=True, help="Noise levels, 8-bit units.")
@click.option("--seeds", default="0", show_default=True, help="Seeds, e.g. 0,1,2.")
@click.option("--crop", type=click.IntRange(min=0), default=128, show_default=True,
              help="Centre crop size (0: full images).")
@click.option("--methods", help="Comma-separated methods (default: ours, dip, seed and the baselines); "
                                "'list' prints them all.")
@click.option("--max-iter", type=click.IntRange(min=1), default=3000, show_default=True,
              help="Iteration budget of each DIP trajectory.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("bench-results"), show_default=True)
@click.option("--resume/--fresh", default=True, show_default=True, help="Skip rows already done.")
@click.option("--device", default="auto", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def bench_command(folders, limit, sigmas, seeds, crop, methods, max_iter, out_dir, resume, device, quiet):
    """Benchmark stoppers and methods on clean images with synthetic noise; write tables and plots."""
    from .bench import DEFAULT_METHODS, METHODS, BenchSpec, run_bench

    if methods == "list":
        for name, method in METHODS.items():
            click.echo(f"{name:16s} {method.description}")
        return
    spec = BenchSpec(folders=[str(f) for f in folders], limit=limit, sigmas=_number_list(sigmas, float, "--sigma"),
                     seeds=_number_list(seeds, int, "--seeds"), crop=crop or None,
                     methods=[m.strip() for m in methods.split(",")] if methods else list(DEFAULT_METHODS),
                     max_iter=max_iter, device=device,
                     command="dipddpm " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    out = run_bench(spec, out_dir, resume=resume, progress=False if quiet else None)
    _say(quiet, f"wrote {out}/summary.md, results.csv, results.json and plots")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dipddpm`` console script; returns the exit status."""
    try:
        result = cli.main(args=argv, prog_name="dipddpm", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("dipddpm: interrupted", err=True)
        return 130
    except click.ClickException as err:
        click.echo(f"dipddpm: error: {err.format_message()}", err=True)
        return err.exit_code
    except InputError as err:
        click.echo(f"dipddpm: error: {err}", err=True)
        return 2
    except TrainingDiverged as err:
        click.echo(f"dipddpm: error: {err}", err=True)
        return 1
    except OSError as err:
        click.echo(f"dipddpm: error: {err.filename or ''}: {err.strerror or err}".replace(": : ", ": "), err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("dipddpm: interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
