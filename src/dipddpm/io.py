"""Reading and writing images: PNG, JPEG, TIFF; grey, RGB, RGBA; 8/16-bit and float.

Files are read in their own dtype and written back in it. Writes are atomic: the image goes to a
temporary file in the target folder, which then replaces the target, so a failed write never
leaves a partial file or destroys an existing one.

A TIFF may hold many 2-D images (a time series, a z-stack, ImageJ channels): :func:`read_pages`
returns them as pages with the file's :class:`TiffLayout`, and :func:`write_pages` writes restored
pages back in that layout. tifffile's axes tell a planar RGB image (``SYX``: one page of three
samples) from a stack of three grey pages (``QYX``, ``IYX``, ``ZYX``, ``CYX``, ...).
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile

from .errors import InputError
from .png16 import is_png16, read_png16, write_png16

__all__ = ["READ_SUFFIXES", "WRITE_SUFFIXES", "TiffLayout", "atomic_write", "check_writable", "read_image",
           "read_pages", "write_image", "write_pages"]

READ_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
WRITE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_TIFF = (".tif", ".tiff")
_JPEG = (".jpg", ".jpeg")


@dataclass(frozen=True)
class TiffLayout:
    """How a TIFF file holds its pages, so that restored pages are written back the same way.

    Attributes
    ----------
    axes : str
        tifffile's axes of the stored array, e.g. ``"YX"``, ``"YXS"`` (RGB), ``"SYX"`` (planar RGB),
        ``"QYX"`` or ``"ZYX"`` (a stack of grey pages), ``"QYXS"`` (a stack of RGB pages).
    shape : tuple of int
        Shape of the stored array.
    photometric : str
        ``"minisblack"`` or ``"rgb"``.
    imagej : bool
        An ImageJ hyperstack (written back with its axes in ImageJ's metadata).
    series : int
        1 for one shaped array; N for N pages stored as N separate images of one shape.
    """

    axes: str
    shape: tuple[int, ...]
    photometric: str
    imagej: bool = False
    series: int = 1

    @property
    def order(self) -> list[int]:
        """Permutation of the stored axes into (page axes..., Y, X[, S])."""
        pages = [i for i, a in enumerate(self.axes) if a not in "YXS"]
        tail = [self.axes.index(a) for a in "YXS" if a in self.axes]
        return pages + tail

    @property
    def pages(self) -> int:
        """Number of 2-D images in the file."""
        return int(np.prod([n for n, a in zip(self.shape, self.axes, strict=True) if a not in "YXS"], dtype=int))


def _read_tiff(path: Path) -> tuple[np.ndarray, TiffLayout]:
    """All pages of a TIFF as ``(N, H, W[, S])`` and the file's layout."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series
        first = series[0]
        photometric = "rgb" if first.keyframe.photometric == tifffile.PHOTOMETRIC.RGB else "minisblack"
        if len(series) > 1:
            if any(s.shape != first.shape or s.axes != first.axes or s.dtype != first.dtype for s in series):
                raise InputError(f"{path}: its {len(series)} images differ in size or type; save them as separate "
                                 f"files")
            data = np.stack([s.asarray() for s in series])
            layout = TiffLayout("Q" + first.axes, data.shape, photometric, series=len(series))
        else:
            data = first.asarray()
            layout = TiffLayout(first.axes, tuple(data.shape), photometric, imagej=tif.is_imagej)
    if "Y" not in layout.axes or "X" not in layout.axes:
        raise InputError(f"{path}: a TIFF with axes {layout.axes!r} is not an image")
    data = np.transpose(data, layout.order)
    spatial = 3 if "S" in layout.axes else 2
    return data.reshape((layout.pages, *data.shape[data.ndim - spatial:])), layout


def _check_page(image: np.ndarray, name: str) -> np.ndarray:
    """A 2-D image with at most 4 channels, finite if float; a single channel squeezed."""
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] > 4):
        raise InputError(f"{name}: expected a grey, grey+alpha, RGB or RGBA image, got an array of shape "
                         f"{image.shape}")
    if min(image.shape[:2]) < 1:
        raise InputError(f"{name}: the image is empty")
    if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
        raise InputError(f"{name}: the image has NaN or infinite pixels")
    return image


def read_pages(path: str | os.PathLike) -> tuple[list[np.ndarray], TiffLayout | None]:
    """Read every 2-D image of a file in its own dtype: one for PNG, JPEG, BMP; N for a TIFF stack.

    Parameters
    ----------
    path : str or path-like
        PNG, JPEG, TIFF or BMP file.

    Returns
    -------
    pages : list of numpy.ndarray
        Each (H, W) or (H, W, C) with C in {2, 3, 4}; uint8, uint16 or float.
    layout : TiffLayout or None
        How a TIFF stores them (for :func:`write_pages`); None for other formats.

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
    layout = None
    try:
        if path.suffix.lower() in _TIFF or data[:4] in (b"II*\x00", b"MM\x00*"):
            stack, layout = _read_tiff(path)
            pages = list(stack)
        elif is_png16(data):
            pages = [read_png16(data)]
        else:
            pages = [iio.imread(data, plugin="pillow")]
    except InputError:
        raise
    except Exception as err:  # decoders raise many types; all mean "not an image we can read"
        raise InputError(f"{name}: not a readable image ({type(err).__name__}: {err})".splitlines()[0]) from None
    if not pages:
        raise InputError(f"{name}: the file holds no image")
    return [_check_page(np.asarray(page), name) for page in pages], layout


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a file holding one image, in its own dtype.

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
        Missing, empty, unreadable or non-image file; non-finite pixels; a stack of several images
        (read those with :func:`read_pages`).
    """
    pages, _ = read_pages(path)
    if len(pages) > 1:
        raise InputError(f"{path}: is a stack of {len(pages)} images; one image is expected here")
    return pages[0]


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


def _encode_tiff_pages(pages: list[np.ndarray], layout: TiffLayout) -> bytes:
    """The pages as a TIFF in ``layout``: same axes, page order, photometric and planar configuration."""
    order = layout.order
    stored = np.stack(pages).reshape([layout.shape[i] for i in order])
    stored = np.transpose(stored, np.argsort(order))
    buffer = io.BytesIO()
    if layout.series > 1:
        with tifffile.TiffWriter(buffer) as tif:
            for page in stored:
                tif.write(page, photometric=layout.photometric)
        return buffer.getvalue()
    options = {"photometric": layout.photometric, "metadata": {"axes": layout.axes}}
    if "S" in layout.axes:
        options["planarconfig"] = "separate" if layout.axes.index("S") < layout.axes.index("Y") else "contig"
    tifffile.imwrite(buffer, stored, imagej=layout.imagej, **options)
    return buffer.getvalue()


def write_pages(path: str | os.PathLike, pages: list[np.ndarray], layout: TiffLayout | None) -> Path:
    """Write pages as :func:`read_pages` returned them, atomically.

    A TIFF target gets the input's layout (a stack stays a stack, planar RGB stays planar); one page
    may go to any format :func:`write_image` writes.

    Parameters
    ----------
    path : str or path-like
        Target file; the suffix picks the format.
    pages : list of numpy.ndarray
        The pages, each shaped like the page read.
    layout : TiffLayout or None
        The layout :func:`read_pages` returned (None: a single image).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputError
        Several pages to a format that holds one image, or pages that do not fit the layout.
    """
    path = check_writable(path)
    if path.suffix.lower() not in _TIFF or layout is None:
        if len(pages) != 1:
            raise InputError(f"{path}: a stack of {len(pages)} images can only be written as .tif")
        return write_image(path, pages[0])
    if len(pages) != layout.pages:
        raise InputError(f"{path}: {len(pages)} pages for a file laid out for {layout.pages}")
    atomic_write(path, _encode_tiff_pages([np.asarray(page) for page in pages], layout))
    return path
