import numpy as np
import pytest
import torch


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def smooth_image(height: int = 32, width: int = 32, channels: int = 3) -> np.ndarray:
    """A small clean test image in [0, 1]: gradients plus a disc, no randomness."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    disc = ((yy - 0.5) ** 2 + (xx - 0.5) ** 2 < 0.08).astype(float)
    planes = [0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.15 + 0.7 * disc][:channels]
    image = np.stack(planes, axis=-1)
    return image[..., 0] if channels == 1 else image


@pytest.fixture
def clean_rgb():
    return smooth_image()


@pytest.fixture(autouse=True)
def _torch_threads():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    yield
