"""Forward operators ``y = A x`` for restoration: identity (denoising), pixel mask (inpainting), downsampling.

Each has deepinv's interface, ``A(x)`` and ``A_adjoint(y)`` on ``(B, C, H, W)`` tensors, plus
``measured_shape(shape)``, the shape of ``A x`` for an image of that shape. Noise is not part of an
operator (see :mod:`dipddpm.noise_models`). :func:`from_deepinv` wraps any object with ``A`` and
``A_adjoint``, such as a deepinv physics; deepinv itself is never imported. :class:`AnscombeStabilised`
wraps any of them for Poisson data: a nonlinear measurement whose noise is nearly Gaussian with a known
level, so the Gaussian machinery (staged targets, recorruption) applies. :func:`image_shape`,
:func:`observed_weights` and :func:`describe` are what the training loop and its record need to know.
"""

from __future__ import annotations

import numbers
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .noise_models import expected_generalised_anscombe, generalised_anscombe

__all__ = ["AnscombeStabilised", "DeepinvOperator", "Downsample", "Identity", "Operator", "PixelMask", "describe",
           "from_deepinv", "image_shape", "observed_weights"]


class Operator(Protocol):
    """What the restoration loop needs from a forward operator."""

    def A(self, x: torch.Tensor) -> torch.Tensor: ...

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor: ...

    def measured_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]: ...


def _batch_shape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    shape = tuple(shape)
    if len(shape) != 4:
        raise InputError(f"operators act on (B, C, H, W) tensors, got shape {shape}")
    return shape


class Identity:
    """``A = A^T = I``: plain denoising."""

    def A(self, x: torch.Tensor) -> torch.Tensor:
        _batch_shape(x.shape)
        return x

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        _batch_shape(y.shape)
        return y

    def measured_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return _batch_shape(shape)


class PixelMask:
    """Inpainting: ``A x = m * x`` with a 0/1 mask ``m``; ``A`` is diagonal, so ``A^T = A`` and ``A A = A``.

    Parameters
    ----------
    mask : torch.Tensor or array-like
        1 where a pixel is observed, 0 where it is missing; ``(H, W)`` for all channels or ``(C, H, W)``
        (``C`` may be 1).
    """

    def __init__(self, mask: torch.Tensor) -> None:
        mask = torch.as_tensor(mask)
        if mask.ndim not in (2, 3):
            raise InputError(f"a mask must have shape (H, W) or (C, H, W), got {tuple(mask.shape)}")
        if not torch.all((mask == 0) | (mask == 1)):
            raise InputError("mask values must be 0 or 1")
        if not torch.any(mask == 1):
            raise InputError("the mask keeps no pixels")
        self.mask = mask.to(torch.float32)

    def _fit(self, shape: tuple[int, ...]) -> None:
        _, channels, height, width = _batch_shape(shape)
        mask_channels = self.mask.shape[0] if self.mask.ndim == 3 else 1
        if tuple(self.mask.shape[-2:]) != (height, width) or mask_channels not in (1, channels):
            raise InputError(f"a mask of shape {tuple(self.mask.shape)} does not fit an image of shape {tuple(shape)}")

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self._fit(x.shape)
        return x * self.mask.to(dtype=x.dtype, device=x.device)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.A(y)

    def measured_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        self._fit(shape)
        return tuple(shape)


class Downsample:
    """Super-resolution: ``A`` averages ``f x f`` blocks (box filter, stride ``f``).

    ``(A x)[i, j] = f^-2 sum_{a, b < f} x[f i + a, f j + b]``; its exact adjoint repeats each value over
    its block and divides by ``f^2`` (nearest-neighbour upsampling / ``f^2``), so ``A A^T = I / f^2``.
    Re-derived here rather than taken from deepinv, whose ``Downsampling`` blurs with a chosen filter
    before decimating; the box filter keeps the adjoint exact and a constant image constant.

    Parameters
    ----------
    factor : int
        Integer scale factor ``f`` >= 2; image height and width must be multiples of it.
    """

    def __init__(self, factor: int) -> None:
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
            raise InputError(f"the downsampling factor must be an integer >= 2, got {factor!r}")
        self.factor = factor

    def measured_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        batch, channels, height, width = _batch_shape(shape)
        f = self.factor
        if height % f or width % f:
            raise InputError(f"a {height}x{width} image is not divisible by the downsampling factor {f}; "
                             f"crop it to {height - height % f}x{width - width % f}")
        return batch, channels, height // f, width // f

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self.measured_shape(x.shape)
        return F.avg_pool2d(x, self.factor)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        _batch_shape(y.shape)
        f = self.factor
        return y.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1) / f**2


class DeepinvOperator:
    """An object with ``A`` and ``A_adjoint`` (e.g. a deepinv physics) seen as an :class:`Operator`."""

    def __init__(self, physics) -> None:
        self.physics = physics

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.physics.A(x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.physics.A_adjoint(y)

    def measured_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Found by applying ``A`` to zeros of ``shape``."""
        return tuple(self.A(torch.zeros(_batch_shape(shape))).shape)


def from_deepinv(physics) -> DeepinvOperator:
    """Wrap a deepinv physics, or any object with callable ``A`` and ``A_adjoint``, as an :class:`Operator`.

    Parameters
    ----------
    physics : object
        Has ``A(x)`` and ``A_adjoint(y)`` on ``(B, C, H, W)`` tensors.

    Returns
    -------
    DeepinvOperator
    """
    missing = [name for name in ("A", "A_adjoint") if not callable(getattr(physics, name, None))]
    if missing:
        raise InputError(f"{type(physics).__name__} is not a forward operator: it has no {' or '.join(missing)}")
    return DeepinvOperator(physics)


class AnscombeStabilised:
    """Poisson data seen through the Anscombe transform: nearly Gaussian noise of a known level.

    With ``y = Poisson(lam B x) / lam`` (``B`` the inner operator, ``lam`` photons at white) and
    ``a(c) = 2 sqrt(c + 3/8)``, the stabilised measurement :meth:`stabilise` is
    ``t = (a(lam y) - a(0)) / (a(lam) - a(0))``, in [0, 1] for ``y`` in [0, 1]; its noise has standard
    deviation close to :attr:`sigma` ``= 1 / (a(lam) - a(0))`` for every ``x`` once ``lam B x`` is above
    about 4 counts, and less below. The forward map is the EXPECTED transform,
    ``A(x) = (g(lam B x) - a(0)) / (a(lam) - a(0))`` with ``g(mu) = E a(Z)``, ``Z ~ Poisson(mu)``
    (:func:`~dipddpm.noise_models.expected_anscombe`), so ``E t = A x`` exactly and a least-squares fit
    of ``t`` has no low-count bias (Makitalo and Foi's exact unbiased inverse, applied forward).
    ``g`` is tabulated on 4097 points of ``[0, lam]`` and interpolated linearly (differentiable almost
    everywhere); ``B x`` must lie in [0, 1], as the network's sigmoid output does for masks and box
    downsampling. ``A`` is not linear: ``A_adjoint`` is the inner operator's, for shapes only.

    With a Gaussian read noise ``r`` (image units; ``y = clip(Poisson(lam B x) / lam + N(0, r^2), 0, 1)``),
    ``a`` is the generalised Anscombe transform ``a(c) = 2 sqrt(c + 3/8 + s^2)``, ``s = lam r`` in counts
    (:func:`~dipddpm.noise_models.generalised_anscombe`), and ``g`` its expected value for counts clipped at 0
    (:func:`~dipddpm.noise_models.expected_generalised_anscombe`); ``r = 0`` is the plain transform.

    Parameters
    ----------
    inner : Operator
        ``B``: identity for denoising, a mask, downsampling.
    photons : float
        ``lam`` > 0, the expected count of a white pixel.
    read_noise : float
        ``r`` >= 0, the standard deviation of Gaussian noise added to ``y``, image units.
    """

    points = 4097

    def __init__(self, inner: Operator, photons: float, read_noise: float = 0.0) -> None:
        if isinstance(photons, bool) or not isinstance(photons, numbers.Real) or not 0 < photons < float("inf"):
            raise InputError(f"photons must be a positive number, got {photons!r}")
        if isinstance(read_noise, bool) or not isinstance(read_noise, numbers.Real) or not 0 <= read_noise < 1:
            raise InputError(f"the read noise must be a number in [0, 1), image units, got {read_noise!r}")
        self.inner, self.photons, self.read_noise = inner, float(photons), float(read_noise)
        self.counts_noise = self.photons * self.read_noise
        self.offset = float(generalised_anscombe(np.float64(0.0), self.counts_noise))
        self.span = float(generalised_anscombe(np.float64(self.photons), self.counts_noise)) - self.offset
        grid = torch.linspace(0.0, self.photons, self.points, dtype=torch.float64)
        expected = expected_generalised_anscombe(grid.numpy(), self.counts_noise)
        self.table = (torch.from_numpy(expected) - self.offset) / self.span

    @property
    def sigma(self) -> float:
        """``1 / (a(lam) - a(0))``: the stabilised noise level (unit variance in Anscombe units)."""
        return 1.0 / self.span

    def stabilise(self, y: torch.Tensor) -> torch.Tensor:
        """``t = (a(lam y) - a(0)) / (a(lam) - a(0))`` for a measurement ``y`` >= 0 in image units
        (:func:`~dipddpm.noise_models.generalised_anscombe` refuses negative counts)."""
        return (generalised_anscombe(self.photons * y, self.counts_noise) - self.offset) / self.span

    def A(self, x: torch.Tensor) -> torch.Tensor:
        position = self.inner.A(x).clamp(0.0, 1.0) * (self.points - 1)
        below = position.detach().floor().clamp(max=self.points - 2)
        table = self.table.to(dtype=x.dtype, device=x.device)
        low, high = table[below.long()], table[below.long() + 1]
        return low + (position - below) * (high - low)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.inner.A_adjoint(y)

    def measured_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.inner.measured_shape(shape)


def image_shape(operator: Operator, measured_shape: tuple[int, ...],
                device: torch.device | str = "cpu") -> tuple[int, ...]:
    """Shape of the image ``x`` behind a measurement ``y = A x`` of ``measured_shape``: that of ``A^T y``.

    Parameters
    ----------
    operator : Operator
    measured_shape : tuple of int
        ``(B, C, H, W)`` of ``y``.
    device : torch.device or str
        Where the operator works.

    Returns
    -------
    tuple of int
    """
    return tuple(operator.A_adjoint(torch.zeros(_batch_shape(measured_shape), device=device)).shape)


def observed_weights(operator: Operator, measured_shape: tuple[int, ...],
                     device: torch.device | str = "cpu") -> torch.Tensor | None:
    """0/1 weights of the measured values that carry data: the mask of a :class:`PixelMask`, else None (all).

    A masked operator measures ``m * x``: its values where ``m = 0`` are 0 whatever ``x`` is, so the
    observation there holds no information and must count neither in training nor in validation.

    Parameters
    ----------
    operator : Operator
    measured_shape : tuple of int
        ``(B, C, H, W)`` of ``y``.
    device : torch.device or str
        Where the weights live.

    Returns
    -------
    torch.Tensor or None
        float32 weights of shape ``measured_shape``; None when every value is measured.
    """
    if isinstance(operator, AnscombeStabilised):
        return observed_weights(operator.inner, measured_shape, device)
    if not isinstance(operator, PixelMask):
        return None
    return operator.A(torch.ones(_batch_shape(measured_shape), device=device))


def describe(operator: Operator) -> str:
    """A short description for the record, e.g. ``"pixel mask (48.8% observed)"`` or ``"downsample x4"``."""
    if isinstance(operator, Identity):
        return "identity"
    if isinstance(operator, PixelMask):
        return f"pixel mask ({100 * float(operator.mask.mean()):.1f}% observed)"
    if isinstance(operator, Downsample):
        return f"downsample x{operator.factor}"
    if isinstance(operator, AnscombeStabilised):
        inner = "" if isinstance(operator.inner, Identity) else f"{describe(operator.inner)}, "
        if operator.read_noise:
            return (f"{inner}generalised-Anscombe-stabilised ({operator.photons:g} photons, read noise "
                    f"{operator.read_noise:.3g})")
        return f"{inner}Anscombe-stabilised ({operator.photons:g} photons)"
    inner = operator.physics if isinstance(operator, DeepinvOperator) else operator
    return f"custom ({type(inner).__name__})"
