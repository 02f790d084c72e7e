"""Stereo frame layouts: side-by-side, top-bottom, and the reference's 2x2 splatting grid."""

from __future__ import annotations

import torch

from .errors import StereoInputError
from .frames import DEFAULT_BATCH_FRAMES, check_clip, check_frame_counts, check_same_size, frame_batches, resize_frames

LAYOUTS = ("sbs", "half-sbs", "tb", "half-tb")


def compose_stereo(
    left: torch.Tensor,
    right: torch.Tensor,
    layout: str = "sbs",
    swap: bool = False,
    batch: int = DEFAULT_BATCH_FRAMES,
) -> torch.Tensor:
    """Pack two eyes into one frame.

    sbs: [left | right] at full width (the reference); tb: left above right;
    half-*: each eye squeezed to half width/height (anti-aliased), so the frame
    keeps the source size (what 3D TVs expect); swap puts the right eye first
    (cross-eyed viewing).
    """
    if layout not in LAYOUTS:
        raise StereoInputError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    left = check_clip(left, "left")
    right = check_clip(right, "right")
    check_frame_counts(left.shape[0], right.shape[0], "left", "right", broadcast_one=False)
    check_same_size(left, right, "left", "right")
    first, second = (right, left) if swap else (left, right)
    frames, height, width, channels = left.shape
    if layout.startswith("half") and min(height, width) < 2:
        raise StereoInputError(f"half layouts need frames of at least 2x2 pixels, got {width}x{height}.")
    eye_h, eye_w = height, width
    if layout == "half-sbs":
        eye_w = width // 2
    elif layout == "half-tb":
        eye_h = height // 2
    horizontal = layout.endswith("sbs")
    out_shape = (frames, eye_h, 2 * eye_w, channels) if horizontal else (frames, 2 * eye_h, eye_w, channels)
    out = torch.empty(out_shape, dtype=left.dtype, device=left.device)
    for batch_slice in frame_batches(frames, batch):
        a = resize_frames(first[batch_slice], eye_h, eye_w).to(out.dtype)
        b = resize_frames(second[batch_slice], eye_h, eye_w).to(out.dtype)
        if horizontal:
            out[batch_slice, :, :eye_w], out[batch_slice, :, eye_w:] = a, b
        else:
            out[batch_slice, :eye_h], out[batch_slice, eye_h:] = a, b
    return out


def compose_splat_grid(
    left: torch.Tensor, depth_vis: torch.Tensor, occlusion: torch.Tensor, warped: torch.Tensor
) -> torch.Tensor:
    """The reference's stage-1 hand-off frame at twice the size:
    [left | depth visualisation] over [occlusion mask (grey) | warped right view]."""
    left = check_clip(left, "left")
    frames, height, width, _ = left.shape
    tiles = {"depth_vis": check_clip(depth_vis, "depth_vis"), "warped": check_clip(warped, "warped")}
    occlusion = check_clip(occlusion, "occlusion", channels=(1, 3))
    tiles["occlusion"] = occlusion.expand(*occlusion.shape[:3], 3)
    for name, tile in tiles.items():
        check_frame_counts(frames, tile.shape[0], "left", name, broadcast_one=False)
        check_same_size(left, tile, "left", name)
    grid = torch.empty((frames, 2 * height, 2 * width, 3), dtype=left.dtype, device=left.device)
    grid[:, :height, :width] = left
    grid[:, :height, width:] = tiles["depth_vis"]
    grid[:, height:, :width] = tiles["occlusion"]
    grid[:, height:, width:] = tiles["warped"]
    return grid


def split_splat_grid(grid: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inverse of compose_splat_grid; also reads grids written by the reference scripts.

    Returns left, depth_vis, warped [T, H, W, 3] and occlusion [T, H, W] (the mean of
    the grey tile's channels, as the reference reads it).
    """
    grid = check_clip(grid, "grid")
    _, full_h, full_w, _ = grid.shape
    if full_h % 2 or full_w % 2:
        raise StereoInputError(
            f"A 2x2 splatting grid has even width and height, but this video is {full_w}x{full_h}. "
            f"Use the grid video exactly as stage 1 wrote it (not resized or cropped)."
        )
    height, width = full_h // 2, full_w // 2
    mask_tile = grid[:, height:, :width]
    _check_mask_tile(mask_tile, full_w, full_h)
    return {
        "left": grid[:, :height, :width],
        "depth_vis": grid[:, :height, width:],
        "occlusion": mask_tile.mean(dim=-1),
        "warped": grid[:, height:, width:],
    }


# Video codecs blur a black/white mask a little; a photo's bottom-left quarter is far from this.
_GREY_TOLERANCE = 0.06
_MAX_MIDTONE_SHARE = 0.25


def _check_mask_tile(mask_tile: torch.Tensor, full_w: int, full_h: int) -> None:
    """A grid's bottom-left tile is the occlusion mask: grey and almost only black or white."""
    sample = mask_tile[:: max(1, mask_tile.shape[0] // 8)].float()  # a few frames say enough
    channel_spread = (sample.amax(dim=-1) - sample.amin(dim=-1)).mean().item()
    grey = sample.mean(dim=-1)
    midtone_share = ((grey > 0.25) & (grey < 0.75)).float().mean().item()
    if channel_spread > _GREY_TOLERANCE or midtone_share > _MAX_MIDTONE_SHARE:
        raise StereoInputError(
            f"This {full_w}x{full_h} video does not look like a 2x2 splatting grid: its bottom-left quarter should "
            f"be the black-and-white occlusion mask, but it is "
            f"{'coloured' if channel_spread > _GREY_TOLERANCE else 'mostly grey tones'}. Load the grid video that "
            f"stage 1 wrote (Splat Grid Compose or the reference's splatting script), not an ordinary or SBS video."
        )
