"""Benchmark images and their noisy versions, each reproducible on its own."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..api import to_unit_range
from ..errors import InputError
from ..io import READ_SUFFIXES, read_image
from ..noise import add_gaussian_noise

__all__ = ["centre_crop", "list_images", "load_clean", "noise_seed", "make_noisy"]


def list_images(folder: str | Path, limit: int | None = None) -> list[Path]:
    """Image files of ``folder`` in sorted order (the first ``limit`` of them).

    Parameters
    ----------
    folder : str or Path
    limit : int, optional

    Returns
    -------
    list of Path
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in READ_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no images ({', '.join(READ_SUFFIXES)})")
    return files[:limit] if limit else files


def load_clean(path: Path, crop: int | None = None) -> np.ndarray:
    """A clean image in [0, 1] (grey (H, W) or RGB (H, W, 3); alpha dropped), centre-cropped to ``crop``.

    The crop is ``image[(H - c) // 2 : (H - c) // 2 + c, (W - c) // 2 : (W - c) // 2 + c]``;
    a side shorter than ``crop`` is kept whole.
    """
    image = to_unit_range(read_image(path))[0]
    if image.ndim == 3:
        image = image[..., :3] if image.shape[-1] >= 3 else image[..., 0]
    return np.ascontiguousarray(centre_crop(image, crop) if crop else image)


def load_crop(path: Path, crop: int | None = None) -> tuple[str, np.ndarray]:
    """The row name ``folder/stem`` of an image (the ``name`` of :func:`make_noisy`) and its clean crop
    (:func:`load_clean`) with a channel axis: (H, W, 3), or (H, W, 1) for a grey image."""
    clean = load_clean(path, crop)
    return f"{path.parent.name}/{path.stem}", clean[..., None] if clean.ndim == 2 else clean


def centre_crop(image: np.ndarray, crop: int) -> np.ndarray:
    """``image[(H - c) // 2 : (H - c) // 2 + c, (W - c) // 2 : (W - c) // 2 + c]``; a side shorter than ``crop``
    is kept whole."""
    h, w = image.shape[:2]
    ch, cw = min(crop, h), min(crop, w)
    return image[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]


def noise_seed(name: str, sigma255: float, seed: int) -> int:
    """Seed of the noise of one row: the first 8 bytes of ``sha256("name|sigma|seed")``."""
    digest = hashlib.sha256(f"{name}|{sigma255:g}|{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def make_noisy(clean: np.ndarray, name: str, sigma255: float, seed: int, quantise: bool = True) -> np.ndarray:
    """AWGN of std ``sigma255 / 255``, clipped to [0, 1] and (by default) quantised to 8 bits."""
    rng = np.random.default_rng(noise_seed(name, sigma255, seed))
    return add_gaussian_noise(clean, sigma255 / 255.0, rng, clip=True, bits=8 if quantise else None)
