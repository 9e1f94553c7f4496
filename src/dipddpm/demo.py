"""``dipddpm demo``: denoise the bundled image and show how the automatic stop compares with the oracle."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from .api import denoise
from .io import read_image, write_image
from .noise import add_gaussian_noise
from .plots import plot_comparison, plot_run, save_figure
from .result import describe_colour_stops

__all__ = ["DEMO_NOISE_SEED", "DEMO_SIGMA", "demo_image", "run_demo"]

DEMO_SIGMA = 25 / 255
DEMO_NOISE_SEED = 2026


def demo_image() -> np.ndarray:
    """The bundled clean image: Kodak 23 box-downsampled to 192x128, uint8 RGB (see ``data/README.md``)."""
    with resources.as_file(resources.files("dipddpm") / "data" / "kodim23_192x128.png") as path:
        return read_image(path)


def run_demo(out_dir: Path, seed: int = 0, max_iter: int | None = None, device: str = "auto", quiet: bool = False,
             echo: Callable[[str], None] = print) -> dict:
    """Add sigma = 25/255 noise (fixed seed) to the bundled image, restore it with the defaults.

    Writes ``clean.png``, ``noisy.png``, ``restored.png``, ``curves.png``, ``comparison.png`` and
    ``run.json`` into ``out_dir``; prints noisy / restored / oracle-peak PSNR, the gap, the stop
    iteration and the time.

    Parameters
    ----------
    out_dir : pathlib.Path
        Output folder (created).
    seed : int
        Seed of the restoration (the noise has its own fixed seed).
    max_iter : int, optional
        Iteration budget.
    device : str
        Torch device.
    quiet : bool
        No progress bar and no printing.
    echo : callable
        Where lines are printed.

    Returns
    -------
    dict
        The printed numbers.
    """
    clean = demo_image()
    noisy = add_gaussian_noise(clean / 255.0, DEMO_SIGMA, np.random.default_rng(DEMO_NOISE_SEED))
    noisy8 = np.round(noisy * 255).astype(np.uint8)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = denoise(noisy8, channel_axis=-1, seed=seed, max_iter=max_iter, device=device, reference=clean,
                   preserve_dtype=True, progress=False if quiet else None, return_info=True)
    ev = info.evaluation
    numbers = {"noisy_psnr": ev["noisy_psnr"], "restored_psnr": ev["ref_psnr"], "oracle_psnr": ev["oracle_psnr"],
               "gap": ev["oracle_psnr"] - ev["ref_psnr"], "stop_iteration": info.stop_iteration,
               "oracle_iteration": ev["oracle_iteration"], "estimated_psnr": info.estimated_psnr,
               "sigma_used": info.sigma_used, "seconds": info.seconds}
    write_image(out_dir / "clean.png", clean)
    write_image(out_dir / "noisy.png", noisy8)
    write_image(out_dir / "restored.png", info.image)
    info.to_json(out_dir / "run.json")
    save_figure(plot_run(info, title="dipddpm demo: Kodak 23 (192x128), sigma = 25/255"), out_dir / "curves.png")
    save_figure(plot_comparison({f"noisy ({ev['noisy_psnr']:.2f} dB)": noisy8,
                                 f"restored ({ev['ref_psnr']:.2f} dB, auto stop)": info.image,
                                 "clean (evaluation only)": clean}, zoom=(20, 40, 48)), out_dir / "comparison.png")
    if not quiet:
        est = info.describe_estimate()
        echo(f"sigma: true {DEMO_SIGMA:.4f}, used {info.sigma_used:.4f} ({info.sigma_source})")
        echo(f"PSNR noisy      {numbers['noisy_psnr']:6.2f} dB")
        echo(f"PSNR restored   {numbers['restored_psnr']:6.2f} dB   (auto stop at iteration {info.stop_iteration}"
             f"{describe_colour_stops(info.colour_stops())}, by {info.stopped_by}; its own estimate {est})")
        best = "each colour component's best iterate" if info.colour_stops("oracle") else "best iterate"
        echo(f"PSNR oracle     {numbers['oracle_psnr']:6.2f} dB   ({best} of the same run, iteration "
             f"{ev['oracle_iteration']}{describe_colour_stops(info.colour_stops('oracle'))}; evaluation only)")
        echo(f"stop gap        {numbers['gap']:6.2f} dB")
        echo(f"time            {info.seconds:6.1f} s for {info.iterations_run} iterations on {info.device}")
        echo(f"wrote {out_dir}/: clean.png noisy.png restored.png curves.png comparison.png run.json")
    return numbers
