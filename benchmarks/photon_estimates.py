"""How well is the photon count estimated from one image? dipddpm.noise_fit on Poisson images.

Two sets: the 9 shot-noise images of ES-WMV level 4 (`../shared/data/eswmv/shot_4/`, 512x512 RGB, 5 photons
at white, clipped at 1 and cast to uint8 by truncation, which at 5 photons changes no value: they are
multiples of 51), and 128x128 centre crops of the first ``--crops`` Kodak images with 12 photons drawn here
(`dipddpm.noise_models.sample_poisson`, 8-bit, seed ``noise_seed(name + '|poisson', 12, 0)``). Numpy only,
about a second an image. Prints a markdown table (estimate, its standard deviation, relative error, kind)
and writes it with the rows under ``--out`` (``.md`` and ``.json``).

Usage: python benchmarks/photon_estimates.py [--data ../shared/data] [--crops 4]
                                             [--out benchmarks/results/photon_estimates]
"""

import argparse
import time
from pathlib import Path

import numpy as np

from dipddpm.bench.data import list_images, load_clean, noise_seed
from dipddpm.bench.scripts import script_meta, write_script_results
from dipddpm.io import read_image
from dipddpm.noise_fit import fit_noise_model
from dipddpm.noise_models import sample_poisson


def estimate(name: str, image: np.ndarray, photons: float) -> dict:
    start = time.perf_counter()
    fit = fit_noise_model(image, channel_axis=-1)
    return {"image": name, "true_photons": photons, "photons": fit.photons, "photons_sd": fit.photons_sd,
            "rel_error": fit.photons / photons - 1, "read_noise": fit.read_noise, "kind": fit.kind,
            "blocks": fit.blocks, "seconds": time.perf_counter() - start}


def table(rows: list[dict]) -> str:
    lines = ["| image | true photons | estimate ± sd | error | read noise | kind |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['image']} | {r['true_photons']:g} | {r['photons']:.2f} ± {r['photons_sd']:.2f} | "
                     f"{100 * r['rel_error']:+.1f}% | {r['read_noise']:.3f} | {r['kind']} |")
    for true in sorted({r["true_photons"] for r in rows}):
        errors = [abs(r["rel_error"]) for r in rows if r["true_photons"] == true]
        lines.append(f"\n{true:g} photons: largest |error| {100 * max(errors):.1f}%, mean |error| "
                     f"{100 * np.mean(errors):.1f}% over {len(errors)} images")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--crops", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/photon_estimates"))
    args = parser.parse_args()
    data = Path(args.data)
    rows = [estimate(f"eswmv/{path.stem}", read_image(path) / 255.0, 5.0)
            for path in sorted((data / "eswmv" / "shot_4").glob("*.png"))]
    for path in list_images(data / "kodak24", args.crops):
        clean = load_clean(path, 128)
        noisy = sample_poisson(clean, 12.0, np.random.default_rng(noise_seed(f"{path.stem}|poisson", 12.0, 0)))
        rows.append(estimate(f"kodak24/{path.stem} 128", noisy, 12.0))
    text = table(rows)
    print(text)
    write_script_results(args.out.with_suffix(".json"), args.out.with_suffix(".md"),
                         script_meta("benchmarks/photon_estimates.py"), rows, text)


if __name__ == "__main__":
    main()
