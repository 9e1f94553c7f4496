import os

import numpy as np
import pytest
import tifffile

from dipddpm.errors import InputError
from dipddpm.io import check_writable, read_image, write_image


@pytest.mark.parametrize("suffix,dtype,shape", [
    (".png", np.uint8, (9, 11)), (".png", np.uint8, (9, 11, 3)), (".png", np.uint8, (9, 11, 4)),
    (".png", np.uint16, (9, 11)), (".png", np.uint16, (9, 11, 3)), (".png", np.uint16, (9, 11, 4)),
    (".tif", np.uint8, (9, 11, 3)), (".tif", np.uint16, (9, 11)), (".tif", np.uint16, (9, 11, 3)),
    (".tiff", np.float32, (9, 11)), (".tif", np.float32, (9, 11, 3)), (".tif", np.float64, (3, 5, 4)),
    (".png", np.uint8, (1, 50)), (".png", np.uint8, (3, 5, 3)),
])
def test_lossless_round_trip(tmp_path, rng, suffix, dtype, shape):
    if np.dtype(dtype).kind == "f":
        image = rng.random(shape).astype(dtype)
    else:
        image = rng.integers(0, np.iinfo(dtype).max + 1, size=shape).astype(dtype)
    path = write_image(tmp_path / f"img{suffix}", image)
    back = read_image(path)
    assert back.dtype == image.dtype and back.shape == image.shape
    assert np.array_equal(back, image)


def test_jpeg_round_trip_is_close(tmp_path, rng):
    image = np.clip(np.add.outer(np.arange(32), np.arange(32))[..., None] * [3, 2, 1], 0, 255).astype(np.uint8)
    back = read_image(write_image(tmp_path / "a.jpg", image))
    assert back.shape == image.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - image).mean() < 3


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("hello, I am not an image"), "not a readable image"),
    (lambda p: p.mkdir(), "folder"),
])
def test_bad_files(tmp_path, make, message):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(InputError, match=message):
        read_image(path)


def test_non_finite_pixels_are_rejected(tmp_path):
    image = np.zeros((4, 4), np.float32)
    image[1, 2] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", image)
    with pytest.raises(InputError, match="NaN or infinite"):
        read_image(tmp_path / "nan.tif")
    image[1, 2] = np.inf
    tifffile.imwrite(tmp_path / "inf.tif", image)
    with pytest.raises(InputError, match="NaN or infinite"):
        read_image(tmp_path / "inf.tif")


def test_check_writable(tmp_path):
    assert check_writable(tmp_path / "ok.png") == tmp_path / "ok.png"
    with pytest.raises(InputError, match="does not exist"):
        check_writable(tmp_path / "missing" / "out.png")
    with pytest.raises(InputError, match="unknown output format"):
        check_writable(tmp_path / "out.gif")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        check_writable(tmp_path / "dir.png")


def test_a_failed_write_leaves_the_existing_file_alone(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    with pytest.raises(InputError):
        write_image(target, np.zeros((4, 4), np.float32))  # PNG cannot hold floats
    assert target.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["out.png"]  # no temporary file left behind


def test_write_replaces_atomically_and_keeps_permissions(tmp_path):
    target = tmp_path / "out.png"
    write_image(target, np.zeros((4, 4), np.uint8))
    os.chmod(target, 0o640)
    write_image(target, np.full((4, 4), 7, np.uint8))
    assert read_image(target)[0, 0] == 7
    assert (os.stat(target).st_mode & 0o777) == 0o640
    assert os.listdir(tmp_path) == ["out.png"]
