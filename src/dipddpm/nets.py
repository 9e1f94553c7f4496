"""The Deep Image Prior generator: an encoder-decoder with skip connections.

The architecture follows the "skip" network described in the supplementary material of
Ulyanov, Vedaldi & Lempitsky, *Deep Image Prior* (CVPR 2018 / IJCV 2020): at every scale a
strided 3x3 convolution halves the resolution, a 1x1 convolution feeds a thin skip branch,
and the decoder upsamples, concatenates the skip branch and mixes with 3x3 and 1x1
convolutions. Batch normalisation and LeakyReLU(0.2) follow every convolution; a sigmoid maps
the output to [0, 1].

Any image size is accepted: :func:`padded_size` gives the size the network runs at, and the
caller crops the output back (the padded border is simply unconstrained).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["NetConfig", "SkipUNet", "padded_size"]


@dataclass(frozen=True)
class NetConfig:
    """Shape of the skip U-Net.

    Attributes
    ----------
    input_channels : int
        Channels of the fixed random input ``u``.
    channels : int
        Feature channels at every scale (the DIP paper uses 128).
    depth : int
        Number of scales; the image is padded to a multiple of ``2**depth``.
    skip_channels : int
        Channels of each skip branch (0 disables skips).
    padding_mode : str
        ``"zeros"`` or ``"reflect"`` (the paper's choice, markedly slower on CPU).
    upsample : str
        ``"nearest"`` or ``"bilinear"``.
    """

    input_channels: int = 32
    channels: int = 32
    depth: int = 5
    skip_channels: int = 4
    padding_mode: str = "zeros"
    upsample: str = "bilinear"

    def __post_init__(self):
        if self.input_channels < 1 or self.channels < 1 or self.depth < 1 or self.skip_channels < 0:
            raise ValueError(
                "network sizes must be positive (input_channels, channels, depth >= 1; "
                "skip_channels >= 0)"
            )
        if self.padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"unknown padding_mode {self.padding_mode!r}")
        if self.upsample not in ("nearest", "bilinear"):
            raise ValueError(f"unknown upsample mode {self.upsample!r}")


def padded_size(height: int, width: int, depth: int) -> tuple[int, int]:
    """Smallest size the network can run at that contains a ``height x width`` image.

    Each side is rounded up to a multiple of ``2**depth`` and to at least ``2**(depth+1)``,
    so that the coarsest scale keeps at least 2x2 pixels (batch normalisation needs more
    than one value per channel).

    Parameters
    ----------
    height, width : int
        Image size in pixels.
    depth : int
        Number of down-sampling scales.

    Returns
    -------
    tuple of int
        ``(padded_height, padded_width)``.
    """
    step = 2**depth

    def up(n: int) -> int:
        return max(-(-n // step) * step, 2 * step)

    return up(height), up(width)


def _conv_norm_act(cin: int, cout: int, kernel: int, stride: int, padding_mode: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2,
                  padding_mode=padding_mode, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2, inplace=True),
    )


class _Scale(nn.Module):
    """One scale: skip branch, down path, the coarser scales, up path."""

    def __init__(self, in_channels: int, cfg: NetConfig, inner: nn.Module | None):
        super().__init__()
        c, pad = cfg.channels, cfg.padding_mode
        self.skip = _conv_norm_act(in_channels, cfg.skip_channels, 1, 1, pad) if cfg.skip_channels else None
        self.down = nn.Sequential(_conv_norm_act(in_channels, c, 3, 2, pad), _conv_norm_act(c, c, 3, 1, pad))
        self.inner = inner
        self.upsample = nn.Upsample(scale_factor=2, mode=cfg.upsample,
                                    align_corners=False if cfg.upsample == "bilinear" else None)
        merged = c + cfg.skip_channels
        self.merge_norm = nn.BatchNorm2d(merged)
        self.decode = nn.Sequential(_conv_norm_act(merged, c, 3, 1, pad), _conv_norm_act(c, c, 1, 1, pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = self.down(x)
        if self.inner is not None:
            deep = self.inner(deep)
        deep = self.upsample(deep)
        if self.skip is not None:
            deep = torch.cat([self.skip(x), deep], dim=1)
        return self.decode(self.merge_norm(deep))


class SkipUNet(nn.Module):
    """DIP skip encoder-decoder mapping a fixed code ``u`` to an image in [0, 1].

    Parameters
    ----------
    out_channels : int
        Channels of the restored image (1 for grey, 3 for colour).
    config : NetConfig, optional
        Widths, depth, padding and upsampling.
    """

    def __init__(self, out_channels: int, config: NetConfig | None = None):
        super().__init__()
        cfg = config or NetConfig()
        self.config = cfg
        inner: nn.Module | None = None
        for level in reversed(range(cfg.depth)):
            in_ch = cfg.input_channels if level == 0 else cfg.channels
            inner = _Scale(in_ch, cfg, inner)
        self.body = inner
        self.head = nn.Conv2d(cfg.channels, out_channels, 1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Image of shape ``(B, out_channels, H, W)`` for an input of shape ``(B, C_in, H, W)``."""
        return torch.sigmoid(self.head(self.body(u)))
