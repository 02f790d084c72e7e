"""Stage 1b on whole clips: depth -> disparity -> right view + occlusion mask.

Clips stay where they are (usually the CPU); frame batches go to the compute
device and results come back into preallocated outputs, so the extra memory is
bounded by the batch, not by the clip length.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .disparity import DepthRange, DisparitySettings, depth_disparity, disparity_bounds
from .frames import (
    DEFAULT_BATCH_FRAMES,
    check_clip,
    check_frame_counts,
    depth_channel,
    frame_batches,
    resize_frames,
)
from .warp import forward_warp

Progress = Optional[Callable[[int, int], None]]
"""Called as progress(done, total) after each batch; may raise to cancel."""


def _check_depth(depth: torch.Tensor, frames: int) -> torch.Tensor:
    # Values are checked while measuring the depth's range (DepthRange.of), in the same pass.
    depth = check_clip(depth, "depth", channels=(1, 3), values=False)
    check_frame_counts(frames, depth.shape[0], "image", "depth")
    return depth


def _disparity_batches(depth, frames, height, width, settings, batch, device, occlusion):
    """Yield the clip's disparity bounds, then (frame slice, disparity [t, H, W] on device).

    Each batch's disparity is written into that batch's rows of `occlusion` (the clip's
    occlusion output, which forward_warp may overwrite as it reads) where it is float32 on
    the device, else into one buffer reused for every batch: fresh buffers cost page
    faults. Use each disparity before asking for the next.
    """
    depth_range = DepthRange.of(depth, batch=batch)
    depth_range.check_unit_range(settings)
    yield disparity_bounds(depth_range, settings, width)
    single = depth.shape[0] == 1
    in_place = not single and occlusion.dtype == torch.float32 and occlusion.device == device
    buffer = None if in_place else torch.empty(
        (1 if single else min(batch, frames), height, width), dtype=torch.float32, device=device)
    disparity = None
    for frame_slice in frame_batches(frames, batch):
        count = frame_slice.stop - frame_slice.start
        if disparity is None or not single:
            depth_slice = slice(0, 1) if single else frame_slice
            part = depth[depth_slice].to(device)
            if part.shape[1:3] != (height, width):
                part = resize_frames(depth_channel(part), height, width)
            out = occlusion[frame_slice] if in_place else buffer[: part.shape[0]]
            disparity = depth_disparity(part, depth_range, depth_slice, settings, width, out=out)
        yield frame_slice, disparity.expand(count, height, width)


def warp_clip(
    image: torch.Tensor,
    depth: torch.Tensor,
    settings: DisparitySettings = DisparitySettings(),
    device: torch.device | str | None = None,
    batch: int = DEFAULT_BATCH_FRAMES,
    progress: Progress = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-eye view and occlusion mask of a left-eye clip.

    image: [T, H, W, 3] in 0..1. depth: [T or 1, h, w, 1 or 3] or [T or 1, h, w], any
    size (resized to the image's, bilinear), 1 = near unless settings.invert.
    Returns (right [T, H, W, 3], occlusion [T, H, W]) on the image's device and dtype;
    occlusion is 1 where nothing landed (the holes to inpaint).
    """
    image = check_clip(image, "image")
    frames, height, width, _ = image.shape
    depth = _check_depth(depth, frames)
    settings.validate(width)
    device = torch.device(device) if device is not None else image.device

    right = torch.empty_like(image)
    occlusion = torch.empty(image.shape[:3], dtype=image.dtype, device=image.device)
    batches = _disparity_batches(depth, frames, height, width, settings, batch, device, occlusion)
    disp_min, disp_max = next(batches)
    for frame_slice, disparity in batches:
        forward_warp(image[frame_slice].to(device), disparity, disp_min, disp_max, right[frame_slice], occlusion[frame_slice])
        if progress:
            progress(frame_slice.stop, frames)
    return right, occlusion


def occlusion_from_depth(
    depth: torch.Tensor,
    settings: DisparitySettings = DisparitySettings(),
    size: tuple[int, int] | None = None,
    device: torch.device | str | None = None,
    batch: int = DEFAULT_BATCH_FRAMES,
    progress: Progress = None,
) -> torch.Tensor:
    """The occlusion mask [T, H, W] a warp by this depth would leave (no image needed).

    size: (height, width) of the frames the mask is for; default the depth's own.
    """
    depth = check_clip(depth, "depth", channels=(1, 3), values=False)
    frames = depth.shape[0]
    height, width = size if size is not None else depth.shape[1:3]
    settings.validate(width)
    device = torch.device(device) if device is not None else depth.device

    occlusion = torch.empty((frames, height, width), dtype=torch.float32, device=depth.device)
    batches = _disparity_batches(depth, frames, height, width, settings, batch, device, occlusion)
    disp_min, disp_max = next(batches)
    for frame_slice, disparity in batches:
        no_colour = disparity.new_empty((*disparity.shape, 0))
        forward_warp(no_colour, disparity, disp_min, disp_max, out_occlusion=occlusion[frame_slice])
        if progress:
            progress(frame_slice.stop, frames)
    return occlusion
