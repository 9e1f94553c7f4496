"""An orthonormal opponent colour basis: one luminance and two chrominance components of an RGB image.

``T`` maps ``(R, G, B)`` to

- ``Y  = (R + G + B) / sqrt 3`` (luminance),
- ``C1 = (R - B) / sqrt 2`` and ``C2 = (R - 2G + B) / sqrt 6`` (chrominance).

``T`` is orthogonal (``T T^t = I``), so it keeps squared errors pixel by pixel,
``sum_c (T d)_c^2 = sum_rgb d^2``, and maps independent noise of equal variance per channel to independent
noise of the same variance per component. A mean squared error therefore splits exactly into three parts,
``mean(d^2) = (e_Y + e_C1 + e_C2) / 3`` (:func:`component_mse`), and an unbiased validation error splits into
three unbiased ones: what lets each component have its own stop (:class:`dipddpm.stopping.ComponentMinima`).
"""

from __future__ import annotations

import math

import torch

__all__ = ["COMPONENTS", "OPPONENT", "component_mse", "from_opponent", "to_opponent"]

COMPONENTS = ("Y", "C1", "C2")
OPPONENT = torch.tensor([[1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
                         [1 / math.sqrt(2), 0.0, -1 / math.sqrt(2)],
                         [1 / math.sqrt(6), -2 / math.sqrt(6), 1 / math.sqrt(6)]], dtype=torch.float64)


def _apply(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) tensor, got shape {tuple(image.shape)}")
    return torch.einsum("ij,bjhw->bihw", matrix.to(device=image.device, dtype=image.dtype), image)


def to_opponent(image: torch.Tensor) -> torch.Tensor:
    """``T x``: the ``(Y, C1, C2)`` components of an RGB image.

    Parameters
    ----------
    image : torch.Tensor
        Shape ``(B, 3, H, W)``, RGB.

    Returns
    -------
    torch.Tensor
        Same shape: ``Y``, ``C1``, ``C2`` along the channel axis.
    """
    return _apply(OPPONENT, image)


def from_opponent(components: torch.Tensor) -> torch.Tensor:
    """``T^t c``: the RGB image of ``(Y, C1, C2)`` components (the inverse of :func:`to_opponent`).

    Parameters
    ----------
    components : torch.Tensor
        Shape ``(B, 3, H, W)``.

    Returns
    -------
    torch.Tensor
        Same shape, RGB.
    """
    return _apply(OPPONENT.T, components)


def component_mse(image: torch.Tensor, target: torch.Tensor) -> list[float]:
    """``e_c = mean((T (image - target))_c^2)`` for ``c = Y, C1, C2``; their mean is ``mean((image - target)^2)``.

    Parameters
    ----------
    image, target : torch.Tensor
        Shape ``(B, 3, H, W)``, RGB.

    Returns
    -------
    list of float
        ``[e_Y, e_C1, e_C2]``.
    """
    difference = to_opponent(image.double() - target.double())
    return difference.pow(2).mean(dim=(0, 2, 3)).tolist()
