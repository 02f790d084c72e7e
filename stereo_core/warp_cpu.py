"""The forward warp's CPU kernels, compiled with numba: the splat, and the depth passes
before it (a depth IMAGE's extremes, and its disparity).

Same contract and semantics as warp.splat_rows (the torch version, which serves other
devices and CPUs without numba). Each worker thread takes a run of rows; per row:

1. targets, bilinear shares and z-buffer weights for every pixel, in a loop LLVM
   vectorises (hence the polynomial exp2 below: a libm call would stop it);
2. the splat: a pixel adds the 8-lane vector (r w, g w, b w, w, 1, 0, 0, 0), scaled by
   its bilinear share, to each of its two target slots, one vector read-modify-write
   each (numba does not vectorise this by itself, hence the small LLVM intrinsics);
3. normalisation, which also clears each slot for the next row.

The depth passes read a depth IMAGE [T, H, W, 1 or 3] as it is stored, so a grey
clip costs no channel copy, and fold the checks (NaN, infinity) and the normalisation
into the same pass; they compute exactly what the torch path computes (no fast-math).

Imported lazily: numba takes a moment to import and compiles the kernels on first use,
then caches the machine code beside this file (or in the user's cache folder).
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.caching import FunctionCache
from numba.extending import intrinsic

from .splat_constants import DENOMINATOR_EPS, LOG2_BASE, copy_into

_COLOURS = 3  # the kernel splats three colour channels at a time
# A slot's lanes: red, green, blue (weighted), z-buffer weight, coverage, padding.
_LANES = 8
_WEIGHT_LANE, _COVERAGE_LANE = 3, 4
# 2**r on [-0.5, 0.5]: least-squares fit (relative error) at Chebyshev nodes, degree 6;
# evaluated in float32 its relative error stays below 1e-7.
_EXP2_COEFFICIENTS = (
    0.6931472056005105,
    0.2402264660871395,
    0.05550328997517891,
    0.009618519534356787,
    0.0013399860363040444,
    0.00015337576830689627,
)
_KERNEL_OPTIONS = dict(nogil=True, error_model="numpy", boundscheck=False, fastmath={"contract", "arcp"})


def _lane_vector():
    return ir.VectorType(ir.FloatType(), _LANES)


def _slot_pointer(context, builder, array_type, array_value, index_type, index_value):
    """Pointer to array[index, 0] as an 8-lane vector pointer."""
    array = context.make_array(array_type)(context, builder, array_value)
    index = context.cast(builder, index_value, index_type, types.intp)
    item = cgutils.get_item_pointer(context, builder, array_type, array, [index, context.get_constant(types.intp, 0)])
    return builder.bitcast(item, _lane_vector().as_pointer())


def _broadcast(builder, value):
    lanes = ir.VectorType(ir.IntType(32), _LANES)
    single = builder.insert_element(ir.Constant(_lane_vector(), ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(single, ir.Constant(_lane_vector(), ir.Undefined), ir.Constant(lanes, [0] * _LANES))


@intrinsic
def _splat_pixel(typingctx, sums, slot, pixels, x, left_share, left_weight, right_share, right_weight):
    """sums[slot] += left_share * (r, g, b, 1) * left_weight | coverage left_share, and
    sums[slot + 1] likewise with the right share and weight, where (r, g, b) = pixels[x]."""
    signature = types.void(sums, slot, pixels, x, left_share, left_weight, right_share, right_weight)

    def codegen(context, builder, sig, args):
        sums_value, slot_value, pixels_value, x_value, *shares_and_weights = args
        i32 = ir.IntType(32)
        pixels_array = context.make_array(sig.args[2])(context, builder, pixels_value)
        x_index = context.cast(builder, x_value, sig.args[3], types.intp)
        colour = ir.Constant(_lane_vector(), [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
        for channel in range(_COLOURS):
            pointer = cgutils.get_item_pointer(
                context, builder, sig.args[2], pixels_array, [x_index, context.get_constant(types.intp, channel)]
            )
            colour = builder.insert_element(colour, builder.load(pointer), ir.Constant(i32, channel))

        slot_index = context.cast(builder, slot_value, sig.args[1], types.intp)
        next_index = builder.add(slot_index, context.get_constant(types.intp, 1))
        left_share, left_weight, right_share, right_weight = shares_and_weights
        for index, share, weight in ((slot_index, left_share, left_weight), (next_index, right_share, right_weight)):
            lanes = builder.fmul(colour, _broadcast(builder, weight))
            lanes = builder.insert_element(lanes, ir.Constant(ir.FloatType(), 1.0), ir.Constant(i32, _COVERAGE_LANE))
            pointer = _slot_pointer(context, builder, sig.args[0], sums_value, types.intp, index)
            scaled = builder.fmul(lanes, _broadcast(builder, share), flags=("contract",))
            builder.store(builder.fadd(builder.load(pointer, align=4), scaled, flags=("contract",)), pointer, align=4)
        return context.get_dummy_value()

    return signature, codegen


@intrinsic
def _clear_slot(typingctx, sums, slot):
    """sums[slot] = 0, one vector store."""
    signature = types.void(sums, slot)

    def codegen(context, builder, sig, args):
        pointer = _slot_pointer(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        builder.store(ir.Constant(_lane_vector(), [0.0] * _LANES), pointer, align=4)
        return context.get_dummy_value()

    return signature, codegen


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float32 with the IEEE bit pattern of an int32 (vectorises, unlike math.ldexp)."""
    signature = types.float32(types.int32)

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())

    return signature, codegen


@numba.njit(inline="always", **_KERNEL_OPTIONS)
def _exp2(exponent):  # pragma: no cover (compiled)
    """2**exponent in float32 for exponents in [-126, 127] (clamped), in a vectorisable form."""
    exponent = min(max(exponent, np.float32(-126.0)), np.float32(127.0))
    whole = np.floor(exponent + np.float32(0.5))
    r = exponent - whole
    c1, c2, c3, c4, c5, c6 = _EXP2_COEFFICIENTS
    p = np.float32(c6) * r + np.float32(c5)
    p = p * r + np.float32(c4)
    p = p * r + np.float32(c3)
    p = p * r + np.float32(c2)
    p = p * r + np.float32(c1)
    p = p * r + np.float32(1.0)
    return p * _float_from_bits((np.int32(whole) + np.int32(127)) << np.int32(23))


@numba.njit(parallel=True, **_KERNEL_OPTIONS)
def _splat_rgb_rows(colour, disparity, disp_min, log2_base, stable, eps, threads, out, occlusion):  # pragma: no cover
    """colour [R, W, 3], disparity [R, W] float32 -> out [R, W, 3], occlusion [R, W]."""
    rows, width, _ = colour.shape
    one = np.float32(1.0)
    zero = np.float32(0.0)
    rows_per_thread = (rows + threads - 1) // threads
    for thread in numba.prange(threads):
        # Slot s collects target x = s - 2. Slots 0, 1, width + 2 and width + 3 catch
        # shares that land outside the row and are never read back.
        sums = np.zeros((width + 4, _LANES), np.float32)
        slot = np.empty(width, np.int32)
        right_frac = np.empty(width, np.float32)
        left_weight = np.empty(width, np.float32)
        right_weight = np.empty(width, np.float32) if stable else left_weight
        nearest = np.empty(width + 4, np.float32)
        for row in range(thread * rows_per_thread, min(rows, (thread + 1) * rows_per_thread)):
            pixels = colour[row]
            shift = disparity[row]
            for x in range(width):
                target = np.float32(x) - shift[x]
                left = np.floor(target)
                right_frac[x] = target - left
                # clamped as a float (so the conversion is defined) and as an int (so no
                # value whatever can index outside the slots)
                left = min(max(left, np.float32(-4.0)), np.float32(width + 4))
                slot[x] = min(max(np.int32(left) + 2, 0), width + 2)
                left_weight[x] = _exp2((shift[x] - disp_min) * log2_base)
            if stable:
                # weights relative to the nearest sample on each target: exact ratios, no overflow
                nearest[:] = -np.inf
                for x in range(width):
                    s = slot[x]
                    nearest[s] = max(nearest[s], shift[x])
                    nearest[s + 1] = max(nearest[s + 1], shift[x])
                for x in range(width):
                    s = slot[x]
                    left_weight[x] = _exp2((shift[x] - nearest[s]) * log2_base)
                    right_weight[x] = _exp2((shift[x] - nearest[s + 1]) * log2_base)

            for x in range(width):
                f = right_frac[x]
                _splat_pixel(sums, slot[x], pixels, x, one - f, left_weight[x], f, right_weight[x])

            for x in range(width):
                s = x + 2
                total_weight = max(sums[s, _WEIGHT_LANE], eps)
                out[row, x, 0] = sums[s, 0] / total_weight
                out[row, x, 1] = sums[s, 1] / total_weight
                out[row, x, 2] = sums[s, 2] / total_weight
                occlusion[row, x] = one - min(max(sums[s, _COVERAGE_LANE], zero), one)
                _clear_slot(sums, s)
            for s in (0, 1, width + 2, width + 3):
                _clear_slot(sums, s)


class _CacheKeyedByModuleName(FunctionCache):
    """numba's on-disk cache, with the module's import name in each entry's key.

    Cached code re-imports its module by name when loaded, and this module's name
    depends on how the pack was imported: `stereo_core.warp_cpu` from the command line or
    tests, `<pack folder>.stereo_core.warp_cpu` inside ComfyUI. numba keys entries by
    source file alone, so an entry written under one name fails to load under the other.
    """

    def _index_key(self, sig, codegen):
        return (*super()._index_key(sig, codegen), self._py_func.__module__)


_EXACT_OPTIONS = dict(nogil=True, error_model="numpy", boundscheck=False)


@numba.njit(inline="always", **_EXACT_OPTIONS)
def _depth_value(pixels, x):  # pragma: no cover (compiled)
    """frames.depth_channel of one pixel of pixels [W, C]: a grey pixel's value, else the channels' mean."""
    first = pixels[x, 0]
    if pixels.shape[1] == 1:
        return first
    second, third = pixels[x, 1], pixels[x, 2]
    if first == second and second == third:
        return first
    return np.float32((first + second + third) / np.float32(3.0))


@numba.njit(parallel=True, **_EXACT_OPTIONS)
def _depth_row_extremes(depth, threads, lows, highs, grey):  # pragma: no cover (compiled)
    """depth [R, W, C] -> lows, highs, grey [R]: each row's smallest and largest depth (NaN
    where the row holds NaN or infinity), and whether all its pixels are grey."""
    rows, width, channels = depth.shape
    rows_per_thread = (rows + threads - 1) // threads
    for thread in numba.prange(threads):
        for row in range(thread * rows_per_thread, min(rows, (thread + 1) * rows_per_thread)):
            pixels = depth[row]
            low, high, spoilt = np.float32(np.inf), np.float32(-np.inf), np.float32(0.0)
            row_grey = True
            for x in range(width):
                value = _depth_value(pixels, x)
                low = min(low, value)
                high = max(high, value)
                spoilt += value - value  # stays 0 unless a value is NaN or infinite
                if channels > 1:
                    row_grey &= pixels[x, 0] == pixels[x, 1] and pixels[x, 1] == pixels[x, 2]
            if spoilt != 0:
                low = high = np.float32(np.nan)
            lows[row], highs[row], grey[row] = low, high, row_grey


@numba.njit(parallel=True, **_EXACT_OPTIONS)
def _depth_rows_disparity(depth, frame_rows, lows, spans, flat, grey, invert, convergence, pixels2, threads,
                          out):  # pragma: no cover (compiled)
    """depth [R, W, C] -> out [R, W]: disparity.normalized_depth then disparity_from_depth,
    operation for operation; row r belongs to frame r // frame_rows of lows / spans / flat /
    grey (a frame known to be grey is read from its first channel alone, which is faster)."""
    rows, width, _ = depth.shape
    one = np.float32(1.0)
    rows_per_thread = (rows + threads - 1) // threads
    for thread in numba.prange(threads):
        for row in range(thread * rows_per_thread, min(rows, (thread + 1) * rows_per_thread)):
            frame = row // frame_rows
            low, span = lows[frame], spans[frame]
            pixels, target = depth[row], out[row]
            if flat[frame]:
                target[:] = convergence
            elif grey[frame]:
                for x in range(width):
                    target[x] = (pixels[x, 0] - low) / span
            else:
                for x in range(width):
                    target[x] = (_depth_value(pixels, x) - low) / span
            for x in range(width):
                normalized = -target[x] + one if invert else target[x]
                target[x] = (normalized - convergence) * pixels2


for _kernel in (_splat_rgb_rows, _depth_row_extremes, _depth_rows_disparity):
    _kernel._cache = _CacheKeyedByModuleName(_kernel.py_func)


def splat_rows_compiled(
    rows: torch.Tensor,
    disparity: torch.Tensor,
    disp_min: float,
    stable: bool = False,
    out: torch.Tensor | None = None,
    out_occlusion: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """warp.splat_rows on the CPU, same arguments and results.

    Any channel count: the kernel splats three at a time (zero-padded); C = 0 gives the
    occlusion alone. float32 contiguous outputs are written in place, without copies.
    """
    num_rows, width, channels = rows.shape
    threads = _threads(num_rows)
    shift = disparity.to(torch.float32).contiguous().numpy()
    warped = _writable_float32(out, (num_rows, width, channels))
    occlusion = _writable_float32(out_occlusion, (num_rows, width))
    scalars = (np.float32(disp_min), np.float32(LOG2_BASE), stable, np.float32(DENOMINATOR_EPS), threads)
    if channels == _COLOURS:
        colour = rows.to(torch.float32).contiguous()
        _splat_rgb_rows(colour.numpy(), shift, *scalars, warped.numpy(), occlusion.numpy())
    else:
        if np.may_share_memory(shift, occlusion.numpy()):
            shift = shift.copy()  # each group's pass rewrites the occlusion, which holds the disparity
        for first in range(0, max(channels, 1), _COLOURS):
            count = min(_COLOURS, channels - first)
            colour = torch.zeros((num_rows, width, _COLOURS), dtype=torch.float32)
            colour[..., :count] = rows[..., first : first + count]
            group_out = torch.empty_like(colour)
            _splat_rgb_rows(colour.numpy(), shift, *scalars, group_out.numpy(), occlusion.numpy())
            warped[..., first : first + count] = group_out[..., :count]
    return copy_into(out, warped), copy_into(out_occlusion, occlusion)


def _writable_float32(out: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
    """out itself where the kernel can write into it, else a float32 scratch tensor."""
    if out is not None and out.dtype == torch.float32 and out.device.type == "cpu" and out.is_contiguous():
        return out
    return torch.empty(shape, dtype=torch.float32)


def _threads(rows: int) -> int:
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS, rows))
    numba.set_num_threads(threads)
    return threads


def _depth_rows(depth: torch.Tensor) -> np.ndarray:
    """A depth batch [t, H, W, C] or [t, H, W] as float32 rows [t H, W, C], without a copy where possible."""
    depth = depth.to(torch.float32).contiguous()
    if depth.ndim == 3:
        depth = depth.unsqueeze(-1)
    return depth.view(-1, depth.shape[2], depth.shape[3]).numpy()


def depth_extremes_compiled(depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-frame min and max of frames.depth_channel(depth) for a batch [t, H, W, C] or [t, H, W]
    (NaN for a frame holding NaN or infinity), and whether each frame is grey."""
    rows = _depth_rows(depth)
    count = rows.shape[0]
    lows, highs, grey = np.empty(count, np.float32), np.empty(count, np.float32), np.empty(count, np.bool_)
    _depth_row_extremes(rows, _threads(count), lows, highs, grey)
    frames = depth.shape[0]
    # torch's amin / amax carry a row's NaN into its frame
    return (torch.from_numpy(lows).view(frames, -1).amin(dim=1), torch.from_numpy(highs).view(frames, -1).amax(dim=1),
            torch.from_numpy(grey).view(frames, -1).all(dim=1))


def depth_disparity_compiled(
    depth: torch.Tensor, lows: torch.Tensor, spans: torch.Tensor, flat: torch.Tensor, grey: torch.Tensor,
    invert: bool, convergence: float, pixels2: float, out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Disparity [t, H, W] of a depth batch [t, H, W, C] or [t, H, W] at the frame size, with
    per-frame normalisation lows, spans and flat [t], and grey [t]: frames known to be grey
    (see disparity.depth_disparity)."""
    rows = _depth_rows(depth)
    frames, height, width = depth.shape[:3]
    result = _writable_float32(out, (frames, height, width))
    # contiguous, so one compiled (and cached) signature serves every call
    per_frame = [np.ascontiguousarray(values.numpy()) for values in
                 (lows.to(torch.float32), spans.to(torch.float32), flat.to(torch.bool), grey.to(torch.bool))]
    _depth_rows_disparity(rows, height, *per_frame, invert, np.float32(convergence), np.float32(pixels2),
                          _threads(rows.shape[0]), result.view(-1, width).numpy())
    return copy_into(out, result)
