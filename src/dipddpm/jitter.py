"""The input jitter: the Gaussian perturbation added to the generator's fixed input code each step.

DIP perturbs its fixed input ``u`` every step with ``s · e_t`` ("reg noise", ``s = 1/30``). Two ways to
draw ``e_t``:

- ``"fresh"``: a new i.i.d. standard normal tensor every step (the DIP paper's way);
- ``"window"``: a random window of one fixed i.i.d. standard normal field, larger than the code by a margin
  in each spatial direction, with a random sign per channel. A window of an i.i.d. field is itself i.i.d.
  standard normal, so each step's jitter has exactly the distribution of a fresh draw; consecutive steps
  are dependent (the same numbers in another place), which the net cannot exploit: the window moves
  relative to the fixed code. A window is a strided copy: on a CPU it costs about a third of a fresh
  draw of the same size (drawing normals is most of the cost).

The jitter never depends on ``y``: it changes nothing in the recorruption identity (``docs/method.md`` 4a).
"""

from __future__ import annotations

import torch

__all__ = ["JITTERS", "InputJitter"]

JITTERS = ("fresh", "window")


class InputJitter:
    """Draws the jitter ``s · e_t`` for an input code of a given shape, one tensor per call.

    Parameters
    ----------
    shape : tuple of int
        ``(1, C, H, W)``, the code's shape.
    scale : float
        ``s``, the jitter's standard deviation.
    kind : {"fresh", "window"}
        How ``e_t`` is drawn (module docstring).
    generator : torch.Generator
        Source of every random number (on ``device``).
    device : torch.device
    memory_format : torch.memory_format
        Layout of the returned tensors (the code's).
    margin : int
        ``"window"`` only: the field is ``(C, H + margin, W + margin)``; the window's corner is uniform
        on ``margin + 1`` positions in each direction.
    """

    def __init__(self, shape: tuple[int, ...], scale: float, kind: str, generator: torch.Generator,
                 device: torch.device, memory_format: torch.memory_format = torch.contiguous_format,
                 margin: int = 64):
        if kind not in JITTERS:
            raise ValueError(f"the jitter must be one of {', '.join(JITTERS)}, got {kind!r}")
        if margin < 1:
            raise ValueError(f"the window's margin must be at least 1, got {margin}")
        self.shape, self.scale, self.kind = tuple(shape), scale, kind
        self.generator, self.device, self.memory_format, self.margin = generator, device, memory_format, margin
        self.field = None
        if kind == "window":
            _, channels, height, width = self.shape
            field = torch.randn(1, channels, height + margin, width + margin, generator=generator, device=device)
            self.field = (scale * field).contiguous(memory_format=memory_format)
            # the window's place and signs come from the host: no device-to-host copy per step on a GPU
            self.places = torch.Generator().manual_seed(int(torch.randint(2 ** 62, (1,), generator=generator,
                                                                          device=device)))

    def draw(self) -> torch.Tensor:
        """The next step's jitter, shape ``shape``.

        Returns
        -------
        torch.Tensor
        """
        if self.field is None:
            return self.scale * torch.randn(self.shape, generator=self.generator, device=self.device)
        _, channels, height, width = self.shape
        top, left = torch.randint(0, self.margin + 1, (2,), generator=self.places).tolist()
        signs = torch.randint(0, 2, (1, channels, 1, 1), generator=self.places) * 2.0 - 1.0
        return self.field[:, :, top:top + height, left:left + width] * signs.to(self.device, non_blocking=True)
