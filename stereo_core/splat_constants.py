"""What the torch warp (warp.py) and its compiled CPU kernel (warp_cpu.py) share: the z-buffer's base,
the smallest splat weight a colour is divided by, and writing a result into a given tensor.

A leaf module (it imports no other module of the package), so that the two warps need not import
each other.
"""

from __future__ import annotations

import math

import torch

Z_BUFFER_BASE = 1.414
LOG2_BASE = math.log2(Z_BUFFER_BASE)
DENOMINATOR_EPS = 1e-6


def copy_into(out: torch.Tensor | None, result: torch.Tensor) -> torch.Tensor:
    """result written into out when given (converting dtype and device), else result."""
    return result if out is None else out.copy_(result)
