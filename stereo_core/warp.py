"""Forward warp ("splatting") of one view into the other along image rows.

Semantics follow the published reference (see ALGORITHM.md, stage 1b): every source
pixel moves to x - disparity, is splatted bilinearly onto its two horizontal
neighbours, and a soft z-buffer weight 1.414 ** (d - d_min) lets near pixels win
collisions; colour is the weighted sum divided by the summed weights, and the
occlusion mask is 1 - clamp(splat(ones)). Two deliberate fixes:

* a sample is dropped per neighbour, not whole, so no frame gets the reference's
  black last row / last column;
* when the disparity range would overflow float32 (~254 px and more), weights are
  normalised per target pixel instead of per clip, which is exact and finite.

Speed: on the CPU the splat runs as a kernel compiled with numba (warp_cpu.py).
Elsewhere, and where numba is missing, it runs as torch scatters (splat_rows): both
bilinear halves of a value travel in one complex64 element (value * ((1 - f) + i f)),
so one scatter of C + 2 complex channels does the work of 2 (C + 2) real ones; rows
are processed in blocks that stay in cache.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
from typing import Callable

import torch

from .splat_constants import DENOMINATOR_EPS, LOG2_BASE, copy_into

log = logging.getLogger(__name__)

# Fast path while the largest weight stays below 2**100: sums of many such weights
# still fit float32 (max ~2**128).
_MAX_FAST_EXPONENT = 100.0
# Rows per block are chosen so a block holds about this many pixels.
_BLOCK_PIXELS = 1 << 16
# The compiled kernel keeps its scratch in cache by itself; blocks only bound the
# float32 copies it may need. Without copies, blocks are far larger: each call is one
# parallel region, and on a busy machine every region's start and end cost time.
_COMPILED_BLOCK_PIXELS = 1 << 20
_COMPILED_BLOCK_PIXELS_IN_PLACE = 1 << 24
# Set to 1 to keep the CPU warp on torch (e.g. if numba misbehaves in an environment).
NO_NUMBA_ENV = "STEREOCRAFTER_NO_NUMBA"
_compiled_cpu_splat = None
_compiled_cpu_depth = None


def needs_stable_weights(disp_min: float, disp_max: float) -> bool:
    """Whether clip-relative weights 1.414 ** (d - d_min) would overflow float32 sums."""
    return (disp_max - disp_min) * LOG2_BASE > _MAX_FAST_EXPONENT


def splat_rows(
    rows: torch.Tensor,
    disparity: torch.Tensor,
    disp_min: float,
    stable: bool = False,
    out: torch.Tensor | None = None,
    out_occlusion: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp a block of rows.

    rows: [R, W, C] float, disparity: [R, W] in pixels (a pixel moves to x - d).
    disp_min: the smallest disparity of the clip (the z-buffer reference).
    stable: normalise weights per target pixel (needed for huge disparity ranges).
    Returns (warped [R, W, C], occlusion [R, W]): in float32, or written into out /
    out_occlusion (any dtype) when given.
    """
    num_rows, width, channels = rows.shape
    device = rows.device
    rows = rows.float()
    disparity = disparity.float()

    target_x = torch.arange(width, device=device, dtype=torch.float32) - disparity
    left = torch.floor(target_x)
    frac = target_x - left
    # Slot s holds target position s - 2; slots 0 and width + 2 collect samples that
    # fall entirely outside the row, and are never read back.
    slot = left.clamp_(-2, width).long().add_(2)

    bilinear = torch.stack((1.0 - frac, frac), dim=-1)  # [R, W, 2]: (left share, right share)
    if stable:
        weighted = bilinear * _per_target_weights(disparity, slot, width)
    else:
        weight = torch.exp2((disparity - disp_min) * LOG2_BASE)
        weighted = bilinear * weight.unsqueeze(-1)

    packed = torch.empty((channels + 2, num_rows, width, 2), device=device, dtype=torch.float32)
    torch.mul(rows.permute(2, 0, 1).unsqueeze(-1), weighted, out=packed[:channels])
    packed[channels] = weighted
    packed[channels + 1] = bilinear

    sums = _scatter_pairs(packed, slot, width + 3)
    # A source whose left neighbour is slot s gave its left share to position s - 2
    # and its right share to position s - 1.
    totals = sums[..., 2 : width + 2, 0] + sums[..., 1 : width + 1, 1]

    warped = totals[:channels] / totals[channels].clamp_min(DENOMINATOR_EPS)
    occlusion = 1.0 - totals[channels + 1].clamp_(0.0, 1.0)
    return copy_into(out, warped.permute(1, 2, 0)), copy_into(out_occlusion, occlusion)


def _scatter_pairs(pairs: torch.Tensor, slot: torch.Tensor, num_slots: int, as_complex: bool | None = None) -> torch.Tensor:
    """Sum pairs [K, R, W, 2] into [K, R, num_slots, 2] at slot [R, W] along rows.

    On the CPU a pair travels as one complex64 element (half the scatter work); other
    devices scatter the two floats separately, which their atomics handle natively.
    """
    channels, num_rows, width, _ = pairs.shape
    if as_complex is None:
        as_complex = pairs.device.type == "cpu"
    if as_complex:
        sums = torch.zeros((channels, num_rows, num_slots), device=pairs.device, dtype=torch.complex64)
        sums.scatter_add_(2, slot.expand(channels, num_rows, width), torch.view_as_complex(pairs))
        return torch.view_as_real(sums)
    pair_slot = torch.stack((slot * 2, slot * 2 + 1), dim=-1).view(num_rows, width * 2)
    sums = torch.zeros((channels, num_rows, num_slots * 2), device=pairs.device, dtype=torch.float32)
    sums.scatter_add_(2, pair_slot.expand(channels, num_rows, width * 2), pairs.reshape(channels, num_rows, width * 2))
    return sums.view(channels, num_rows, num_slots, 2)


def _per_target_weights(disparity: torch.Tensor, slot: torch.Tensor, width: int) -> torch.Tensor:
    """z-buffer weights relative to the nearest sample landing on each target pixel.

    Returns [R, W, 2]: the weight of each source at its left and right neighbour.
    The nearest contributor of every target gets weight 1, so nothing overflows; the
    ratios between contributors of one target are exactly the reference's.
    """
    nearest = torch.full((disparity.shape[0], width + 4), -math.inf, device=disparity.device)
    nearest.scatter_reduce_(1, slot, disparity, "amax")
    nearest.scatter_reduce_(1, slot + 1, disparity, "amax")
    exponents = torch.stack((disparity - nearest.gather(1, slot), disparity - nearest.gather(1, slot + 1)), dim=-1)
    return torch.exp2(exponents * LOG2_BASE)


def _compiled_kernel(name: str, try_it) -> Callable | bool:
    """warp_cpu.<name> once try_it(function) has run (so a numba that imports but cannot
    build the kernel falls back here rather than failing mid-clip), else False."""
    # Numba's OpenMP layer resets the process's OpenMP thread count when it starts, which torch
    # shares: put it back, or every later torch result (and a resumed run's) would depend on
    # whether a compiled pass ran first.
    threads = torch.get_num_threads()
    try:
        function = getattr(importlib.import_module(".warp_cpu", __package__), name)
        try_it(function)
    except Exception as error:  # ImportError, a numba that refuses this numpy, a compile error
        log.warning("numba is not usable (%s); the CPU warp falls back to torch, several times slower", error)
        return False
    finally:
        torch.set_num_threads(threads)
    return function


def compiled_cpu_splat():
    """warp_cpu.splat_rows_compiled, or None where numba is missing, broken or switched off."""
    global _compiled_cpu_splat
    if os.environ.get(NO_NUMBA_ENV, "") not in ("", "0"):
        return None
    if _compiled_cpu_splat is None:
        _compiled_cpu_splat = _compiled_kernel(
            "splat_rows_compiled", lambda splat: splat(torch.zeros(1, 2, 3), torch.zeros(1, 2), 0.0))
    return _compiled_cpu_splat or None


def compiled_cpu_depth():
    """(warp_cpu.depth_extremes_compiled, warp_cpu.depth_disparity_compiled), or None where numba
    is missing, broken or switched off."""
    global _compiled_cpu_depth
    if os.environ.get(NO_NUMBA_ENV, "") not in ("", "0"):
        return None
    if _compiled_cpu_depth is None:
        one = torch.zeros(1, 1, 2, 3)
        extremes = _compiled_kernel("depth_extremes_compiled", lambda kernel: kernel(one))
        no = torch.zeros(1, dtype=torch.bool)
        disparity = _compiled_kernel("depth_disparity_compiled", lambda kernel: kernel(
            one, torch.zeros(1), torch.ones(1), no, no, False, 0.5, 1.0))
        _compiled_cpu_depth = (extremes, disparity) if extremes and disparity else False
    return _compiled_cpu_depth or None


def forward_warp(
    image: torch.Tensor,
    disparity: torch.Tensor,
    disp_min: float | None = None,
    disp_max: float | None = None,
    out_image: torch.Tensor | None = None,
    out_occlusion: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp frames [T, H, W, C] by a disparity [T, H, W] (pixels, a pixel moves to x - d).

    disp_min / disp_max: the clip's disparity range; the z-buffer is relative to the
    clip's minimum as in the reference. Default: the range of this batch.
    Results are written into out_image / out_occlusion when given (any device and
    dtype, e.g. a preallocated CPU tensor for the whole clip) and returned. disparity may
    be out_occlusion itself: each row's disparity is read before its occlusion is written.
    Returns (warped [T, H, W, C], occlusion [T, H, W]) in the image's dtype.
    """
    frames, height, width, channels = image.shape
    if disp_min is None or disp_max is None:
        disp_min, disp_max = (float(value) for value in torch.aminmax(disparity))
    stable = needs_stable_weights(disp_min, disp_max)
    if out_image is None:
        out_image = torch.empty_like(image)
    if out_occlusion is None:
        out_occlusion = torch.empty(image.shape[:3], device=image.device, dtype=image.dtype)

    splat, block_pixels = (splat_rows, _BLOCK_PIXELS)
    if image.device.type == "cpu" and (compiled := compiled_cpu_splat()) is not None:
        in_place = all(t.dtype == torch.float32 and t.is_contiguous() for t in (image, out_image, out_occlusion))
        splat, block_pixels = compiled, _COMPILED_BLOCK_PIXELS_IN_PLACE if in_place else _COMPILED_BLOCK_PIXELS

    rows = image.reshape(frames * height, width, channels)
    disp_rows = disparity.reshape(frames * height, width)
    out_rows = out_image.view(frames * height, width, channels)
    out_occ_rows = out_occlusion.view(frames * height, width)
    block = max(1, block_pixels // width)
    for start in range(0, frames * height, block):
        stop = min(start + block, frames * height)
        splat(rows[start:stop], disp_rows[start:stop], disp_min, stable, out_rows[start:stop], out_occ_rows[start:stop])
    return out_image, out_occlusion
