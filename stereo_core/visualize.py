"""Depth visualisation: grey or the inferno colormap (the reference's splatting grid)."""

from __future__ import annotations

import torch
from .colormap_data import INFERNO
from .disparity import DepthRange, DisparitySettings, normalized_depth
from .errors import StereoInputError
from .frames import DEFAULT_BATCH_FRAMES, check_clip, depth_channel, frame_batches

COLORMAPS = ("inferno", "gray")


def visualize_depth(
    depth: torch.Tensor, colormap: str = "inferno", normalize: str = "clip", batch: int = DEFAULT_BATCH_FRAMES
) -> torch.Tensor:
    """[T, H, W, 3] picture of a depth clip (1 = near = bright), normalised as the warp does."""
    if colormap not in COLORMAPS:
        raise StereoInputError(f"colormap must be one of {COLORMAPS}, got {colormap!r}.")
    depth = check_clip(depth, "depth", channels=(1, 3), values=False)  # DepthRange.of checks them
    depth_range = DepthRange.of(depth, batch=batch)
    settings = DisparitySettings(normalize=normalize)
    depth_range.check_unit_range(settings)
    out = torch.empty((*depth.shape[:3], 3), dtype=torch.float32, device=depth.device)
    lut = torch.tensor(INFERNO, dtype=torch.float32, device=depth.device)
    for frames in frame_batches(depth.shape[0], batch):
        values = normalized_depth(depth_channel(depth[frames]), depth_range, frames, settings).clamp(0, 1)
        if colormap == "gray":
            out[frames] = values.unsqueeze(-1).expand(-1, -1, -1, 3)
        else:
            # The reference's binning: entry floor(255 d) of the 256-entry table.
            out[frames] = lut[(values * 255).long()]
    return out
