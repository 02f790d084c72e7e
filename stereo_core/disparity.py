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
from .frames import (
    DEFAULT_BATCH_FRAMES,
    UNIT_RANGE_HIGHEST,
    UNIT_RANGE_LOWEST,
    check_finite,
    depth_channel,
    frame_batches,
    is_grey,
)
from .warp import compiled_cpu_depth

UNITS = ("reference", "pixels", "percent")
# The reference sets max_disp in pixels of its working frame, whose longest side is 1024 (DepthCrafter's
# max_res): 20 there is its look. The "reference" unit scales those pixels to the frame's width, so one
# value looks the same at any size: 20 is 37.5 px at 1920 wide, 75 px at 3840, 6.25 px at 320.
REFERENCE_WIDTH = 1024
UNIT_NAMES = {"reference": "pixels at the reference's 1024 width", "pixels": "pixels", "percent": "percent"}
NORMALIZATIONS = ("clip", "frame", "none")


@dataclass(frozen=True)
class DisparitySettings:
    max_disp: float = 20.0
    """Parallax of the nearest point at convergence 0.5, in `unit`s."""
    unit: str = "pixels"
    """"pixels" of the frame, "percent" of the frame width, or "reference": pixels of a frame 1024 wide
    (the reference's working size), scaled to the frame's width. The last two look the same at any size;
    the command line and the nodes default to REFERENCE_LOOK."""
    convergence: float = 0.5
    """Depth value placed at zero parallax (the screen plane)."""
    invert: bool = False
    """For depth maps where 1 means far (metric-style); ours and DepthCrafter's use 1 = near."""
    normalize: str = "clip"
    """Min-max over the whole clip (the reference), per frame, or none (already 0..1)."""

    def validate(self, width: int) -> None:
        self.check()
        self.check_width(width)

    def check(self) -> None:
        """What is wrong at any frame size."""
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

    def check_width(self, width: int) -> None:
        """What is wrong for frames `width` pixels wide."""
        # Near points move left by up to 2 (1 - convergence) max_disp, far ones right by up to
        # 2 convergence max_disp: the two borders' holes together can be 2 max_disp wide.
        spread = 2.0 * self.pixels(width)
        if spread >= width:
            raise StereoInputError(
                f"max_disp of {self.max_disp:g} {UNIT_NAMES[self.unit]} is {spread / 2:.0f} px: the nearest and "
                f"farthest points would move {spread:.0f} px relative to each other, as much as or more than the "
                f"frame width ({width} px), so the holes could cover the whole frame. Typical values are 10-40 "
                f"(reference or px) or 1-4 percent; keep it below {width / 2:.0f} px (50 percent)."
            )

    def pixels(self, width: int) -> float:
        """max_disp in pixels of a frame `width` wide."""
        if self.unit == "percent":
            return self.max_disp * width / 100.0
        if self.unit == "reference":
            return self.max_disp * width / REFERENCE_WIDTH
        return self.max_disp


# The default strength of the command line and the nodes: the reference's 20 px at its working size,
# scaled to the output, so the 3D looks as the reference's at every size.
REFERENCE_LOOK = DisparitySettings(max_disp=20.0, unit="reference")


@dataclass(frozen=True)
class DepthRange:
    """Per-frame min and max of a depth clip, gathered in one pass over it."""

    low: torch.Tensor
    high: torch.Tensor
    grey: torch.Tensor | None = None
    """Per frame, True where every pixel of the measured clip is known to be grey (None: not
    known). Lets depth_disparity read those frames of that same clip from one channel."""

    @classmethod
    def of(cls, depth: torch.Tensor, name: str = "depth", batch: int = DEFAULT_BATCH_FRAMES) -> "DepthRange":
        """Also refuses NaN and infinity, which the min and max carry through at no extra cost."""
        count = depth.shape[0]
        lows = torch.empty(count, dtype=torch.float32, device=depth.device)
        highs = torch.empty_like(lows)
        grey = torch.empty(count, dtype=torch.bool, device=depth.device)
        compiled = _compiled_depth_passes(depth)
        for frames in frame_batches(count, batch):
            part = depth[frames]
            if compiled is not None:
                lows[frames], highs[frames], grey[frames] = compiled[0](part)
            else:
                grey[frames] = part_grey = part.ndim == 3 or is_grey(part)
                # A grey frame's extremes over all its channels are those of its one channel, and
                # reducing the frame as it is stored avoids a copy of a strided channel view.
                values = part if part_grey else depth_channel(part)
                for index, frame in enumerate(values, start=frames.start):
                    lows[index], highs[index] = torch.aminmax(frame)
            if not bool(torch.isfinite(lows[frames]).all() & torch.isfinite(highs[frames]).all()):
                check_finite(depth_channel(part), name, frames.start)
        return cls(lows, highs, grey)

    def check_unit_range(self, settings: "DisparitySettings", name: str = "depth") -> None:
        """normalize 'none' uses depth as it is, so it must already hold 0..1."""
        if settings.normalize != "none":
            return
        low, high = float(self.low.min()), float(self.high.max())
        if low < UNIT_RANGE_LOWEST or high > UNIT_RANGE_HIGHEST:
            raise StereoInputError(
                f"'{name}' holds values from {low:.4g} to {high:.4g}, but normalize 'none' expects depth already in "
                f"0..1. Choose normalize 'clip' (or 'frame'), which accepts depth on any scale."
            )


def _compiled_depth_passes(depth: torch.Tensor):
    """The compiled depth passes where they apply (CPU, 1 or 3 channels), else None."""
    if depth.device.type != "cpu" or (depth.ndim == 4 and depth.shape[-1] not in (1, 3)):
        return None
    return compiled_cpu_depth()


def _normalization(depth_range: DepthRange, frames: slice, settings: DisparitySettings, count: int, device):
    """Per-frame (low, span, flat) [count] of normalized_depth: (depth - low) / span, or the
    convergence where the depth map is flat."""
    if settings.normalize == "clip":
        low, high = depth_range.low.min().expand(count), depth_range.high.max().expand(count)
    else:
        low, high = depth_range.low[frames], depth_range.high[frames]
    low, high = low.to(device), high.to(device)
    span = high - low
    return low, span, span <= 1e-12  # a flat depth map has no relief: it sits on the screen plane


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


def normalized_depth(
    depth: torch.Tensor, depth_range: DepthRange, frames: slice, settings: DisparitySettings,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normalise depth [t, H, W], the frames `frames` of its clip, to 0..1 with 1 = near.

    out: a float32 [t, H, W] tensor to write into (may be `depth` itself), so a caller
    working through a clip in batches reuses one buffer.
    """
    if settings.normalize == "none":
        if out is None:
            return 1.0 - depth if settings.invert else depth
        result = depth if out is depth else out.copy_(depth)
    else:
        low, span, flat = (value.view(-1, 1, 1) for value in
                           _normalization(depth_range, frames, settings, depth.shape[0], depth.device))
        result = torch.sub(depth, low, out=out).div_(torch.where(flat, torch.ones_like(span), span))
        if bool(flat.any()):
            result.masked_fill_(flat, settings.convergence)
    # In place: -x + 1 rounds exactly as 1 - x.
    return result.neg_().add_(1.0) if settings.invert else result


def depth_disparity(
    depth: torch.Tensor, depth_range: DepthRange, frames: slice, settings: DisparitySettings, width: int,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Disparity [t, H, W] of a depth batch [t, H, W, C] or [t, H, W] (frames `frames` of its
    clip, already at the frame size): depth_channel, normalized_depth and disparity_from_depth
    in one pass on the CPU (compiled), as the three steps elsewhere. out: float32 [t, H, W]."""
    count = depth.shape[0]
    if out is None:
        out = torch.empty(depth.shape[:3], dtype=torch.float32, device=depth.device)
    compiled = _compiled_depth_passes(depth)
    if compiled is None:
        values = normalized_depth(depth_channel(depth, out=out), depth_range, frames, settings, out=out)
        return disparity_from_depth(values, settings, width, out=out)
    if settings.normalize == "none":
        low, span, flat = torch.zeros(count), torch.ones(count), torch.zeros(count, dtype=torch.bool)
    else:
        low, span, flat = _normalization(depth_range, frames, settings, count, "cpu")
    known = depth_range.grey is not None and depth_range.grey[frames].shape[0] == count
    grey = depth_range.grey[frames].cpu() if known else torch.zeros(count, dtype=torch.bool)
    return compiled[1](depth, low, span, flat, grey, settings.invert, settings.convergence,
                       2.0 * settings.pixels(width), out=out)


def disparity_from_depth(
    normalized: torch.Tensor, settings: DisparitySettings, width: int, convergence: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pixels of parallax for a normalised depth [t, H, W] (positive = near, moves left in the right eye).

    convergence: optional per-frame screen-plane depth [t] for these frames (auto-convergence);
    without it, settings.convergence holds for every frame. out: a tensor to write into (may be
    `normalized` itself).
    """
    if convergence is None:
        plane = settings.convergence
    else:
        plane = check_convergence(convergence, normalized.shape[0]).to(normalized.device).view(-1, 1, 1)
    return torch.sub(normalized, plane, out=out).mul_(2.0 * settings.pixels(width))


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
