"""16-bit PNG encoding and decoding in numpy (Pillow truncates 16-bit colour PNGs to 8 bits).

Implements the parts of the PNG specification (ISO/IEC 15948) that 16-bit, non-interlaced images
use: the IHDR/IDAT/IEND chunks, zlib, and the five scanline filters. Decoding reverses the
filters along anti-diagonals of the (row, pixel) grid: a reconstructed pixel depends only on its
left, upper and upper-left neighbours, so every pixel on one anti-diagonal can be computed at
once.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

__all__ = ["is_png16", "read_png16", "write_png16"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def _chunks(data: bytes):
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG file")
    pos = len(_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, data[pos + 8:pos + 8 + length]
        pos += 12 + length


def _header(data: bytes) -> tuple[int, int, int, int, int]:
    kind, body = next(_chunks(data), (None, b""))
    if kind != b"IHDR" or len(body) != 13:
        raise ValueError("PNG without a valid IHDR chunk")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
    return width, height, depth, colour, interlace


def is_png16(data: bytes) -> bool:
    """Whether ``data`` (the file's bytes) is a PNG with 16 bits per sample."""
    try:
        return _header(data)[2] == 16
    except (ValueError, struct.error):
        return False


def _unfilter(filtered: np.ndarray, filters: np.ndarray, bpp: int) -> np.ndarray:
    """Reverse PNG scanline filters; ``filtered`` has shape (rows, pixels, bpp) of uint8."""
    rows, pixels, _ = filtered.shape
    if filters.size and filters.max() > 4:
        raise ValueError("PNG with an unknown scanline filter")
    out = np.zeros((rows + 1, pixels + 1, bpp), dtype=np.int32)  # a zero row and column as borders
    f = filtered.astype(np.int32)
    for d in range(rows + pixels - 1):
        r = np.arange(max(0, d - pixels + 1), min(rows, d + 1))
        p = d - r
        a = out[r + 1, p]          # left
        b = out[r, p + 1]          # up
        c = out[r, p]              # up-left
        kind = filters[r][:, None]
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.select([kind == 1, kind == 2, kind == 3, kind == 4], [a, b, (a + b) // 2, paeth], 0)
        out[r + 1, p + 1] = (f[r, p] + pred) & 0xFF
    return out[1:, 1:].astype(np.uint8)


def read_png16(data: bytes) -> np.ndarray:
    """Decode a 16-bit PNG.

    Parameters
    ----------
    data : bytes
        The file's bytes.

    Returns
    -------
    numpy.ndarray
        uint16 array of shape (H, W) for grey or (H, W, C) for grey+alpha, RGB and RGBA.
    """
    width, height, depth, colour, interlace = _header(data)
    if depth != 16 or colour not in _CHANNELS:
        raise ValueError("not a 16-bit grey or colour PNG")
    if interlace:
        raise ValueError("interlaced 16-bit PNG is not supported; save it without interlacing or as TIFF")
    channels = _CHANNELS[colour]
    bpp = 2 * channels
    raw = zlib.decompress(b"".join(body for kind, body in _chunks(data) if kind == b"IDAT"))
    stride = 1 + width * bpp
    if len(raw) < stride * height:
        raise ValueError("truncated PNG data")
    rows = np.frombuffer(raw, dtype=np.uint8, count=stride * height).reshape(height, stride)
    pixels = _unfilter(rows[:, 1:].reshape(height, width, bpp), rows[:, 0], bpp)
    image = pixels.reshape(height, width * channels, 2).view(">u2").reshape(height, width, channels)
    image = image.astype(np.uint16)
    return image[..., 0] if channels == 1 else image


def write_png16(image: np.ndarray) -> bytes:
    """Encode a uint16 array (H, W) or (H, W, C) with C in 1..4 as a 16-bit PNG.

    Parameters
    ----------
    image : numpy.ndarray
        uint16 image.

    Returns
    -------
    bytes
        The PNG file's bytes (rows stored with the "Up" filter).
    """
    image = np.asarray(image)
    if image.dtype != np.uint16:
        raise ValueError("write_png16 needs a uint16 array")
    if image.ndim == 2:
        image = image[..., None]
    height, width, channels = image.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    samples = image.astype(">u2").view(np.uint8).reshape(height, width * channels * 2)
    up = samples.copy()
    up[1:] = samples[1:] - samples[:-1]  # uint8 arithmetic wraps modulo 256, as the filter requires
    rows = np.concatenate([np.full((height, 1), 2, dtype=np.uint8), up], axis=1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    return (_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))
