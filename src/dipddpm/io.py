"""Reading and writing images: PNG, JPEG, TIFF; grey, RGB, RGBA; 8/16-bit and float.

Files are read in their own dtype and written back in it. Writes are atomic: the image goes to a
temporary file in the target folder, which then replaces the target, so a failed write never
leaves a partial file or destroys an existing one.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile

from .errors import InputError
from .png16 import is_png16, read_png16, write_png16

__all__ = ["READ_SUFFIXES", "WRITE_SUFFIXES", "atomic_write", "check_writable", "read_image", "write_image"]

READ_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
WRITE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_TIFF = (".tif", ".tiff")
_JPEG = (".jpg", ".jpeg")


def _squeeze_channels(image: np.ndarray, name: str) -> np.ndarray:
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[0] in (1, 2, 3, 4) and image.shape[-1] > 4:
        image = np.moveaxis(image, 0, -1)  # planar TIFF: channels first
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] > 4):
        raise InputError(f"{name}: expected a grey, grey+alpha, RGB or RGBA image, got an array of shape "
                         f"{image.shape}")
    if min(image.shape[:2]) < 1:
        raise InputError(f"{name}: the image is empty")
    return image


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file in its own dtype.

    Parameters
    ----------
    path : str or path-like
        PNG, JPEG, TIFF or BMP file.

    Returns
    -------
    numpy.ndarray
        (H, W) or (H, W, C) with C in {2, 3, 4}; uint8, uint16 or float.

    Raises
    ------
    InputError
        Missing, empty, unreadable or non-image file; non-finite pixels.
    """
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise InputError(f"{name}: no such file")
    if path.is_dir():
        raise InputError(f"{name}: is a folder, not an image")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{name}: cannot read ({err.strerror or err})") from None
    if not data:
        raise InputError(f"{name}: the file is empty")
    try:
        if path.suffix.lower() in _TIFF or data[:4] in (b"II*\x00", b"MM\x00*"):
            image = tifffile.imread(path)
        elif is_png16(data):
            image = read_png16(data)
        else:
            image = iio.imread(data, plugin="pillow")
    except Exception as err:  # decoders raise many types; all mean "not an image we can read"
        raise InputError(f"{name}: not a readable image ({type(err).__name__}: {err})".splitlines()[0]) from None
    image = _squeeze_channels(np.asarray(image), name)
    if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
        raise InputError(f"{name}: the image has NaN or infinite pixels")
    return image


def check_writable(path: str | os.PathLike, suffixes: tuple[str, ...] = WRITE_SUFFIXES) -> Path:
    """Check, before any work, that ``path`` can be written: known suffix, existing writable folder.

    Parameters
    ----------
    path : str or path-like
        Output file.
    suffixes : tuple of str
        Accepted suffixes (lower case, with the dot).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputError
        Unknown suffix, missing or unwritable folder, or a folder in the file's place.
    """
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise InputError(f"{path}: unknown output format {path.suffix!r}; use one of {', '.join(suffixes)}")
    folder = path.parent
    if not folder.is_dir():
        raise InputError(f"{path}: the folder {folder} does not exist")
    if path.is_dir():
        raise InputError(f"{path}: is a folder")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{path}: not writable")
    return path


def _encode(image: np.ndarray, suffix: str) -> bytes:
    if suffix in _TIFF:
        buffer = io.BytesIO()
        colour = image.ndim == 3 and image.shape[-1] >= 3
        tifffile.imwrite(buffer, image, photometric="rgb" if colour else "minisblack")
        return buffer.getvalue()
    if suffix == ".png" and image.dtype == np.uint16:
        return write_png16(image)
    if image.dtype != np.uint8:
        raise InputError(f"{suffix} files hold 8-bit images; use .tif for {image.dtype} data")
    if suffix in _JPEG and image.ndim == 3 and image.shape[-1] in (2, 4):
        raise InputError("JPEG cannot store an alpha channel; use .png or .tif")
    options = {"quality": 95} if suffix in _JPEG else {}
    return iio.imwrite("<bytes>", image, extension=suffix, plugin="pillow", **options)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    An existing file keeps its permissions; on any failure the target is left as it was.

    Parameters
    ----------
    path : str or path-like
        Target file.
    data : bytes
        Content.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an image atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : str or path-like
        Target file; the suffix picks the format.
    image : numpy.ndarray
        (H, W) or (H, W, C). PNG takes uint8 and uint16, JPEG uint8, TIFF any dtype.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = check_writable(path)
    suffix = path.suffix.lower()
    image = np.asarray(image)
    data = _encode(image, suffix)
    atomic_write(path, data)
    return path
