"""Explicit image priors that can be added to the training loss (as in DIP-TV, Liu et al., ICASSP 2019).

A prior term depends on the network's output alone, so the network still sees nothing of ``y``'s noise beyond
what its training target carries, and the recorruption estimate of the error keeps holding (``docs/method.md``).
"""

from __future__ import annotations

import torch

__all__ = ["total_variation"]


def total_variation(image: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Isotropic total variation per pixel and channel, with forward differences.

    ``TV(x) = mean over (c, i, j) of sqrt((x[c, i, j+1] - x[c, i, j])^2 + (x[c, i+1, j] - x[c, i, j])^2 + eps)``,
    over the pixels that have both a right and a lower neighbour; ``eps`` keeps the gradient finite where the
    image is flat.

    Parameters
    ----------
    image : torch.Tensor
        Shape ``(..., H, W)`` with ``H, W >= 2``.
    eps : float
        Added under the square root.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    if image.shape[-1] < 2 or image.shape[-2] < 2:
        raise ValueError("total variation needs an image of at least 2 x 2 pixels")
    dx = image[..., :-1, 1:] - image[..., :-1, :-1]
    dy = image[..., 1:, :-1] - image[..., :-1, :-1]
    return torch.sqrt(dx**2 + dy**2 + eps).mean()
