"""Frame tensors: checks with clear messages, depth conversion, batching.

Convention of the whole library: a clip is float [T, H, W, C] in 0..1 (frames
first, channels last, as videos and ComfyUI IMAGEs are); a mask or a
single-channel depth clip is [T, H, W]. Whole clips stay where they are (usually
the CPU); work happens in frame batches moved to the compute device.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F

from .errors import StereoInputError

# Frames per batch: keeps the working set of any stage bounded whatever the clip length.
DEFAULT_BATCH_FRAMES = 8
# IMAGEs and MASKs hold 0..1. Resampling and sharpening overshoot a little; values past
# these limits mean another scale (0..255 from an image library, -1..1 from a model).
UNIT_RANGE_LOWEST, UNIT_RANGE_HIGHEST = -0.5, 2.0


def check_clip(clip: torch.Tensor, name: str, channels: tuple[int, ...] = (3,), values: bool = True) -> torch.Tensor:
    """A non-empty float clip [T, H, W, C] with C in `channels`.

    values: also refuse NaN / infinity and values on another scale than 0..1 (one pass
    over the data). Depth, whose scale is free, passes False and is checked where its
    range is measured (DepthRange).
    """
    if not isinstance(clip, torch.Tensor):
        raise StereoInputError(f"'{name}' must be an image tensor, got {type(clip).__name__}.")
    if clip.ndim == 3 and 1 in channels:
        clip = clip.unsqueeze(-1)
    if clip.ndim != 4:
        raise StereoInputError(
            f"'{name}' must be a batch of frames shaped [frames, height, width, channels], got shape "
            f"{tuple(clip.shape)}. Connect an IMAGE output (a video's frames), not a single image array."
        )
    frames, height, width, chans = clip.shape
    if frames == 0:
        raise StereoInputError(f"'{name}' is empty (0 frames). Check the node that loads the video.")
    if height == 0 or width == 0:
        raise StereoInputError(f"'{name}' has an empty frame size {height}x{width}.")
    if chans not in channels:
        wanted = " or ".join(str(c) for c in channels)
        raise StereoInputError(
            f"'{name}' has {chans} channels, expected {wanted}. "
            + ("Drop the alpha channel (e.g. convert RGBA to RGB) first." if chans == 4 else
               "Connect an RGB image batch.")
        )
    if not clip.is_floating_point():
        raise StereoInputError(
            f"'{name}' has dtype {clip.dtype}; expected float values in 0..1 (ComfyUI IMAGE convention)."
        )
    if values:
        check_values(clip, name)
    return clip


def check_mask(mask: torch.Tensor, name: str, values: bool = True) -> torch.Tensor:
    """A non-empty float mask [T, H, W] (a trailing channel of 1 is accepted).

    values: also refuse NaN / infinity and values on another scale than 0..1.
    """
    if isinstance(mask, torch.Tensor) and mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if isinstance(mask, torch.Tensor) and mask.ndim == 4 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if not isinstance(mask, torch.Tensor) or mask.ndim != 3:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise StereoInputError(f"'{name}' must be a mask batch shaped [frames, height, width], got {shape}.")
    if mask.shape[0] == 0:
        raise StereoInputError(f"'{name}' is empty (0 frames).")
    mask = mask.float() if not mask.is_floating_point() else mask
    if values:
        check_values(mask, name, kind="mask")
    return mask


def check_frame_counts(count: int, other: int, name: str, other_name: str, broadcast_one: bool = True) -> None:
    """`other` must have `count` frames (or 1, which is then used for every frame)."""
    if other == count or (broadcast_one and other == 1):
        return
    hint = " (or a single frame, used for all)" if broadcast_one else ""
    raise StereoInputError(
        f"'{other_name}' has {other} frames but '{name}' has {count}. Give one {other_name} frame per "
        f"{name} frame{hint}: load both clips with the same frame range and frame-rate settings."
    )


def check_same_size(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape[1:3] != b.shape[1:3]:
        raise StereoInputError(
            f"'{name_b}' is {b.shape[2]}x{b.shape[1]} but '{name_a}' is {a.shape[2]}x{a.shape[1]}; "
            f"they must have the same size. Resize one of them (e.g. with an Upscale Image node)."
        )


def frame_batches(frames: int, batch: int = DEFAULT_BATCH_FRAMES) -> Iterator[slice]:
    for start in range(0, frames, batch):
        yield slice(start, min(start + batch, frames))


def is_grey(clip: torch.Tensor) -> bool:
    """Whether the channels of [..., C] frames are equal everywhere (stops at the first difference)."""
    if clip.shape[-1] < 2:
        return True
    return all(torch.equal(clip[..., 0], clip[..., channel]) for channel in range(1, clip.shape[-1]))


def depth_channel(depth: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """[T, H, W] depth from a depth clip [T, H, W, C] or [T, H, W].

    A grey pixel (what depth nodes output) gives its value exactly, any other pixel the
    mean of its channels. A grey clip comes back as a view of its first channel, without a
    copy; others are written into `out` when given (float32 [T, H, W], a caller's scratch
    buffer reused).
    """
    if depth.ndim == 3 or depth.shape[-1] == 1:
        return depth.reshape(depth.shape[:3]).float()
    if depth.is_floating_point() and is_grey(depth):
        return depth[..., 0].float()
    depth = depth.float()
    # Channel by channel in place: torch's mean over a last dimension of 3 is several times slower.
    total = torch.add(depth[..., 0], depth[..., 1], out=out)
    grey = depth[..., 0] == depth[..., 1]
    for channel in range(2, depth.shape[-1]):
        total.add_(depth[..., channel])
        grey &= depth[..., 0] == depth[..., channel]
    return torch.where(grey, depth[..., 0], total.div_(depth.shape[-1]), out=total)


def resize_frames(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of [T, H, W] or [T, H, W, C] frames, anti-aliased when shrinking."""
    if frames.shape[1] == height and frames.shape[2] == width:
        return frames
    planar = frames.unsqueeze(1) if frames.ndim == 3 else frames.permute(0, 3, 1, 2)
    shrink = height < frames.shape[1] or width < frames.shape[2]
    resized = F.interpolate(planar.float(), size=(height, width), mode="bilinear", align_corners=False,
                            antialias=shrink)
    return resized[:, 0] if frames.ndim == 3 else resized.permute(0, 2, 3, 1)


def check_values(values: torch.Tensor, name: str, kind: str = "image", unit_range: bool = True,
                 first_frame: int = 0) -> None:
    """Refuse NaN / infinity and (unit_range) values on another scale than 0..1.

    One reduction over the data (min and max together; NaN propagates into both), so it
    is cheap enough for every node input. kind ("image" or "mask") words the message.
    """
    low, high = (float(v) for v in torch.aminmax(values.detach()))
    if not (math.isfinite(low) and math.isfinite(high)):
        check_finite(values, name, first_frame)
    if unit_range and (low < UNIT_RANGE_LOWEST or high > UNIT_RANGE_HIGHEST):
        looks_like = ""
        if high > UNIT_RANGE_HIGHEST and low >= UNIT_RANGE_LOWEST and high <= 255.5:
            looks_like = " It looks like 0..255: divide it by 255."
        elif low < UNIT_RANGE_LOWEST and low >= -1.0 - 1e-3 and high <= 1.0 + 1e-3:
            looks_like = " It looks like -1..1: map it with (x + 1) / 2."
        convention = "masks hold 0..1, 1 = hole" if kind == "mask" else "images hold 0..1 (ComfyUI's IMAGE convention)"
        raise StereoInputError(
            f"'{name}' holds values from {low:.4g} to {high:.4g}, but {convention}.{looks_like} "
            f"Check the node that produced it."
        )


def check_finite(values: torch.Tensor, name: str, first_frame: int = 0) -> None:
    bad = ~torch.isfinite(values.reshape(values.shape[0], -1)).all(dim=1)
    if bool(bad.any()):
        frames = (torch.nonzero(bad).flatten() + first_frame).tolist()
        shown = ", ".join(str(f) for f in frames[:8]) + (" ..." if len(frames) > 8 else "")
        raise StereoInputError(
            f"'{name}' contains NaN or infinite values (frames {shown}). The node that produced it failed "
            f"numerically; re-run it (e.g. in fp32) or replace those frames."
        )
