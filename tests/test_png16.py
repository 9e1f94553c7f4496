import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from dipddpm.png16 import is_png16, read_png16, write_png16


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _encode_with_filters(image: np.ndarray, filters: list[int]) -> bytes:
    """Reference PNG encoder (straight from the specification) using the given filter per row."""
    h, w, c = image.shape
    data = image.astype(">u2").view(np.uint8).reshape(h, w * c * 2).astype(int)
    bpp = 2 * c
    out = bytearray()
    for r in range(h):
        ftype = filters[r]
        out.append(ftype)
        for i in range(w * bpp):
            a = data[r, i - bpp] if i >= bpp else 0
            b = data[r - 1, i] if r > 0 else 0
            cc = data[r - 1, i - bpp] if r > 0 and i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, cc)][ftype]
            out.append((data[r, i] - pred) % 256)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    colour = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_decoder_undoes_all_five_filters(channels, rng):
    image = rng.integers(0, 65536, size=(7, 9, channels), dtype=np.uint16)
    data = _encode_with_filters(image, [0, 1, 2, 3, 4, 4, 3])
    decoded = read_png16(data)
    assert decoded.dtype == np.uint16
    assert np.array_equal(decoded.reshape(7, 9, channels), image)


@pytest.mark.parametrize("shape", [(5, 7), (1, 50), (3, 5, 3), (6, 4, 4), (4, 6, 2)])
def test_round_trip(shape, rng):
    image = rng.integers(0, 65536, size=shape, dtype=np.uint16)
    data = write_png16(image)
    assert is_png16(data)
    assert np.array_equal(read_png16(data), image)


def test_reads_what_pillow_writes_for_16_bit_grey(rng):
    image = (np.add.outer(np.arange(40), np.arange(30)) * 700 + rng.integers(0, 50, (40, 30))).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    assert np.array_equal(read_png16(buffer.getvalue()), image)


def test_rejects_other_data():
    assert not is_png16(b"not a png")
    with pytest.raises(ValueError):
        read_png16(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError):
        write_png16(np.zeros((3, 3), np.uint8))
