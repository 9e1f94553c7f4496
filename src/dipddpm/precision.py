"""Which floating-point type the generator's forward pass runs in.

``"auto"`` picks bfloat16 only where it was measured to pay: on a CPU whose instruction set has native
bfloat16 arithmetic (x86 ``avx512_bf16``; AMX CPUs have it too). There the forward pass under bfloat16
autocast took 0.73x the time of float32 at 256² (AMD EPYC, 2 threads) for no loss of PSNR on the tuning
crops (``benchmarks/results/speed/README.md``). Without native support torch emulates bfloat16 and the step
was 1.1x *slower* (an Intel Xeon VM), so ``auto`` means float32 there; it also means float32 on CUDA and on
ARM until someone measures them. The loss, the outputs and every stopper stay in float32 whatever is chosen.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

__all__ = ["PRECISIONS", "forward_precision", "native_bfloat16"]

PRECISIONS = ("auto", "float32", "bfloat16")


def native_bfloat16(cpu_flags: str) -> bool:
    """Whether a CPU with these ``/proc/cpuinfo`` flags computes in bfloat16 natively.

    Parameters
    ----------
    cpu_flags : str
        The text of ``/proc/cpuinfo`` (or just its ``flags`` line).

    Returns
    -------
    bool
        True when the word ``avx512_bf16`` is among the flags (every x86 CPU with AMX has it as well).
    """
    return any("avx512_bf16" in line.split() for line in cpu_flags.splitlines() if line.startswith("flags"))


@functools.lru_cache(maxsize=1)
def _this_cpu_has_bfloat16() -> bool:
    try:
        return native_bfloat16(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


def forward_precision(precision: str, device: torch.device) -> str:
    """The precision a run on ``device`` uses when asked for ``precision``.

    Parameters
    ----------
    precision : {"auto", "float32", "bfloat16"}
        ``"float32"`` and ``"bfloat16"`` are returned as they are; ``"auto"`` becomes ``"bfloat16"`` on a CPU
        with native bfloat16 arithmetic (:func:`native_bfloat16` of ``/proc/cpuinfo``) and ``"float32"``
        everywhere else (CUDA included: not measured yet).
    device : torch.device
        Where the network runs.

    Returns
    -------
    str
        ``"float32"`` or ``"bfloat16"``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bfloat16" if device.type == "cpu" and _this_cpu_has_bfloat16() else "float32"
