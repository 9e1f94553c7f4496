"""How much memory a DIP run needs, estimated before it starts, and the budget it may use."""

from __future__ import annotations

import functools
import os

import torch

from .nets import NetConfig, SkipUNet, padded_size

__all__ = ["activation_floats_per_pixel", "default_budget", "estimate_memory"]

_BYTES = 4  # float32
_ALLOCATOR_MARGIN = 1.35


@functools.lru_cache(maxsize=32)
def activation_floats_per_pixel(colour: int, net: NetConfig) -> float:
    """Floats the generator's layers output per input pixel (what autograd keeps for the backward pass).

    Counted exactly by running the network on the ``meta`` device (no memory, no compute) with a
    hook on every layer, at a size where every scale is whole, and dividing by the pixel count.

    Parameters
    ----------
    colour : int
        Output channels (1 or 3).
    net : NetConfig
        The generator's shape.

    Returns
    -------
    float
    """
    side = 2 ** (net.depth + 2)
    model = SkipUNet(colour, net).to("meta")
    total = 0

    def count(module, inputs, output):
        nonlocal total
        total += output.numel()

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.zeros(1, net.input_channels, side, side, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return total / side**2


@functools.lru_cache(maxsize=32)
def _parameter_count(colour: int, net: NetConfig) -> int:
    return sum(p.numel() for p in SkipUNet(colour, net).to("meta").parameters())


def estimate_memory(height: int, width: int, colour: int, net: NetConfig) -> int:
    """Bytes one training run on a ``height x width`` image needs beyond the process's baseline.

    ``bytes = 1.35 * 4 * (A + 3 C_in + 12 C) * P + 16 W``, with ``P`` the padded pixel count, ``A``
    the activation floats per pixel (:func:`activation_floats_per_pixel`), ``C_in`` the input code's
    channels (code, jitter, their sum), ``C`` the image channels (observation, ``z``, targets, EMA,
    raw output and the iterates the stoppers keep) and ``W`` the parameters (weights, gradients and
    Adam's two moments). The factor 1.35 covers the allocator. Measured peaks on CPU (torch 2.13,
    ``python benchmarks/speed.py steps``, ``benchmarks/results/speed/steps.md``) ranged from 1% above
    to 27% below the estimate for the default network at 128^2-512^2 and the paper's 128-channel
    network at 128^2 and 256^2; the same measurement varies by up to 20% from run to run.

    Parameters
    ----------
    height, width : int
        Image size.
    colour : int
        Image channels.
    net : NetConfig
        The generator's shape.

    Returns
    -------
    int
    """
    ph, pw = padded_size(height, width, net.depth)
    pixels = ph * pw
    per_pixel = activation_floats_per_pixel(colour, net) + 3 * net.input_channels + 12 * colour
    return int(_BYTES * (_ALLOCATOR_MARGIN * per_pixel * pixels + 4 * _parameter_count(colour, net)))


def default_budget(device: torch.device) -> int:
    """Memory one run may use before the image is tiled: on CUDA half the free memory, on CPU a quarter
    of the physical memory, at most 4 GiB (the estimate for a 1024^2 RGB image with the default network is
    3.0 GiB).

    Parameters
    ----------
    device : torch.device

    Returns
    -------
    int
        Bytes.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free // 2)
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 16 * 2**30
    return int(min(physical // 4, 4 * 2**30))
