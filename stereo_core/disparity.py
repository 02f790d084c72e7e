"""Depth to disparity, with the reference's meaning of max_disp and convergence.

disparity = (depth - convergence) * 2 * max_disp, depth normalised to 0..1 with
1 = near. With the defaults (convergence 0.5) this is the reference's
(depth * 2 - 1) * max_disp: the nearest point moves max_disp pixels, the
farthest -max_disp, and depth 0.5 stays at zero parallax (the screen plane).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import StereoInputError
from .frames import DEFAULT_BATCH_FRAMES, check_finite, depth_channel, frame_batches

UNITS = ("pixels", "percent")
NORMALIZATIONS = ("clip", "frame", "none")


@dataclass(frozen=True)
class DisparitySettings:
    max_disp: float = 20.0
    """Parallax of the nearest point at convergence 0.5, in `unit`s."""
    unit: str = "pixels"
    """"pixels" (the reference) or "percent" of the frame width (same look at any resolution)."""
    convergence: float = 0.5
    """Depth value placed at zero parallax (the screen plane)."""
    invert: bool = False
    """For depth maps where 1 means far (metric-style); ours and DepthCrafter's use 1 = near."""
    normalize: str = "clip"
    """Min-max over the whole clip (the reference), per frame, or none (already 0..1)."""

    def validate(self, width: int) -> None:
        if self.unit not in UNITS:
            raise StereoInputError(f"disparity unit must be one of {UNITS}, got {self.unit!r}.")
        if self.normalize not in NORMALIZATIONS:
            raise StereoInputError(f"depth normalisation must be one of {NORMALIZATIONS}, got {self.normalize!r}.")
        if not math.isfinite(self.max_disp) or self.max_disp < 0:
            raise StereoInputError(
                f"max_disp must be a number >= 0, got {self.max_disp}. Use 'invert' or swap the eyes to flip depth."
            )
        if not math.isfinite(self.convergence) or not 0.0 <= self.convergence <= 1.0:
            raise StereoInputError(f"convergence must be between 0 and 1 (a depth value), got {self.convergence}.")
        pixels = self.pixels(width)
        if pixels > width:
            raise StereoInputError(
                f"max_disp of {self.max_disp} {self.unit} is {pixels:.0f} px, more than the frame width ({width} px): "
                f"every pixel would leave the frame. Typical values are 10-40 px or 1-4 percent."
            )

    def pixels(self, width: int) -> float:
        return self.max_disp * width / 100.0 if self.unit == "percent" else self.max_disp


@dataclass(frozen=True)
class DepthRange:
    """Per-frame min and max of a depth clip, gathered in one pass over it."""

    low: torch.Tensor
    high: torch.Tensor

    @classmethod
    def of(cls, depth: torch.Tensor, name: str = "depth", batch: int = DEFAULT_BATCH_FRAMES) -> "DepthRange":
        lows, highs = [], []
        for frames in frame_batches(depth.shape[0], batch):
            values = depth_channel(depth[frames]).flatten(1)
            check_finite(values, name, frames.start)
            lows.append(values.amin(dim=1))
            highs.append(values.amax(dim=1))
        return cls(torch.cat(lows), torch.cat(highs))


def normalized_depth(depth: torch.Tensor, depth_range: DepthRange, frames: slice, settings: DisparitySettings) -> torch.Tensor:
    """Normalise depth [t, H, W], the frames `frames` of its clip, to 0..1 with 1 = near."""
    if settings.normalize == "none":
        result = depth
    else:
        if settings.normalize == "clip":
            low, high = depth_range.low.min(), depth_range.high.max()
        else:
            low = depth_range.low[frames].view(-1, 1, 1).to(depth.device)
            high = depth_range.high[frames].view(-1, 1, 1).to(depth.device)
        span = high - low
        # A flat depth map has no relief: place it on the screen plane.
        flat = span <= 1e-12
        result = torch.where(flat, torch.full_like(depth, settings.convergence),
                             (depth - low) / torch.where(flat, torch.ones_like(span), span))
    return 1.0 - result if settings.invert else result


def check_convergence(convergence: torch.Tensor, frames: int) -> torch.Tensor:
    """A per-frame convergence [frames] (or [1]) of finite depth values in 0..1."""
    convergence = torch.as_tensor(convergence, dtype=torch.float32).flatten()
    if convergence.numel() not in (1, frames):
        raise StereoInputError(
            f"Per-frame convergence has {convergence.numel()} values for {frames} frames; give one value per frame."
        )
    if not bool(torch.isfinite(convergence).all()) or bool((convergence < 0).any() | (convergence > 1).any()):
        raise StereoInputError("Per-frame convergence values must be depth values between 0 and 1.")
    return convergence


def disparity_from_depth(
    normalized: torch.Tensor, settings: DisparitySettings, width: int, convergence: torch.Tensor | None = None
) -> torch.Tensor:
    """Pixels of parallax for a normalised depth [t, H, W] (positive = near, moves left in the right eye).

    convergence: optional per-frame screen-plane depth [t] for these frames (auto-convergence);
    without it, settings.convergence holds for every frame.
    """
    if convergence is None:
        plane = settings.convergence
    else:
        plane = check_convergence(convergence, normalized.shape[0]).to(normalized.device).view(-1, 1, 1)
    return (normalized - plane) * (2.0 * settings.pixels(width))


def disparity_bounds(
    depth_range: DepthRange, settings: DisparitySettings, width: int, convergence: torch.Tensor | None = None
) -> tuple[float, float]:
    """The clip's smallest and largest disparity (the soft z-buffer's reference), over all frames'
    convergence when it varies per frame."""
    if settings.normalize == "none":
        low, high = float(depth_range.low.min()), float(depth_range.high.max())
    else:
        low, high = 0.0, 1.0
    ends = torch.tensor([low, high])
    ends = (1.0 - ends if settings.invert else ends).view(1, 2, 1)
    planes = None
    if convergence is not None:
        planes = torch.as_tensor(convergence, dtype=torch.float32).flatten()
        planes = torch.stack([planes.min(), planes.max()])
    ends = disparity_from_depth(ends.expand(1 if planes is None else 2, 2, 1), settings, width, planes)
    return float(ends.min()), float(ends.max())
