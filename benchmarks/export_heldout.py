"""Write the held-out evaluation images (bundled with scikit-image, never used for tuning) to a folder.

Usage: python benchmarks/export_heldout.py OUT_DIR
"""

import sys
from pathlib import Path

import numpy as np
from skimage import data

from dipddpm.io import write_image

HELDOUT = ("astronaut", "camera", "chelsea", "coffee", "coins", "rocket")


def main(out: str) -> None:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name in HELDOUT:
        write_image(folder / f"{name}.png", np.asarray(getattr(data, name)()))
    print(f"wrote {len(HELDOUT)} images to {folder}")


if __name__ == "__main__":
    main(sys.argv[1])
