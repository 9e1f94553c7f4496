"""Zero-Shot Noise2Noise (Mansour & Heckel, CVPR 2023), re-derived from the paper.

The noisy image is split into two half-resolution images by the fixed 2x2 filters
``D1 = [[1/2, 0], [0, 1/2]]`` and ``D2 = [[0, 1/2], [1/2, 0]]`` with stride 2: their noises are
independent, so a small network ``f(y) = y - g(y)`` (two 3x3 convolutions with 48 channels and
LeakyReLU, then a 1x1 convolution; ``g`` predicts the noise) is trained to map one to the other:

``L = 1/2 (||D1 y - f(D2 y)||^2 + ||D2 y - f(D1 y)||^2)
     + 1/2 (||f(D1 y) - D1 f(y)||^2 + ||f(D2 y) - D2 f(y)||^2)``

(residual loss plus consistency loss). Adam, learning rate 1e-3 halved after 1500 of 2000 steps.
The full-resolution image is then denoised by ``f(y)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["zsn2n_denoise"]


def _split(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    channels = image.shape[1]
    d1 = torch.tensor([[[[0.5, 0.0], [0.0, 0.5]]]], dtype=image.dtype, device=image.device).repeat(channels, 1, 1, 1)
    d2 = torch.tensor([[[[0.0, 0.5], [0.5, 0.0]]]], dtype=image.dtype, device=image.device).repeat(channels, 1, 1, 1)
    return F.conv2d(image, d1, stride=2, groups=channels), F.conv2d(image, d2, stride=2, groups=channels)


class _NoisePredictor(nn.Module):
    def __init__(self, channels: int, width: int = 48):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(width, channels, 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y - self.body(y)


def zsn2n_denoise(noisy: np.ndarray, channel_axis: int | None = -1, iterations: int = 2000, lr: float = 1e-3,
                  seed: int = 0, device: str = "cpu") -> np.ndarray:
    """Denoise with Zero-Shot Noise2Noise.

    Parameters
    ----------
    noisy : numpy.ndarray
        (H, W) or (H, W, C) in [0, 1]; odd sizes are handled by dropping the last row/column for
        training only.
    channel_axis : int or None
        -1 for colour, None for grey.
    iterations : int
        Training steps.
    lr : float
        Adam learning rate (halved after 75% of the steps).
    seed : int
        Initialisation seed.
    device : str
        Torch device.

    Returns
    -------
    numpy.ndarray
        Denoised image, same shape, clipped to [0, 1].
    """
    hwc = noisy[..., None] if channel_axis is None else noisy
    y = torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1))).float()[None].to(device)
    train = y[..., : y.shape[-2] // 2 * 2, : y.shape[-1] // 2 * 2]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _NoisePredictor(y.shape[1]).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, int(0.75 * iterations)), gamma=0.5)
    a, b = _split(train)
    for _ in range(iterations):
        optimizer.zero_grad(set_to_none=True)
        fa, fb = net(a), net(b)
        residual = 0.5 * (F.mse_loss(fb, a) + F.mse_loss(fa, b))
        sa, sb = _split(net(train))
        consistency = 0.5 * (F.mse_loss(fa, sa) + F.mse_loss(fb, sb))
        (residual + consistency).backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        out = net(y).clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy().astype(np.float64)
    return out[..., 0] if channel_axis is None else out
