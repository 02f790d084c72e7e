"""Auto-convergence: per shot, put the main subject near the screen plane, without the plane jumping.

A fixed convergence puts one depth value on the screen for the whole clip. When a shot's
subject is far behind that value, it sits deep behind the screen; when it is near, it pops
out and the eyes must cross more. Stereographers re-converge per shot instead (a horizontal
image translation per shot). Here:

1. per frame, one number says where the subject is: `subject_depth` (a centre-weighted
   median of the normalised depth: subjects are usually framed near the centre, and the
   median ignores small near or far outliers);
2. per shot, that series is smoothed over time (a Gaussian of `smoothing_seconds`, never
   across a cut; 0 = one value for the whole shot), so the screen plane glides with a
   camera move but never jumps inside a shot;
3. the plane moves from the fixed convergence towards the subject by `strength`, and at
   most `max_shift` away from it, which bounds how far behind the screen the background
   can go (convergence c gives the farthest point a disparity of -2c x max_disp).

The per-frame statistics are tiny ([frames] floats), so the whole clip's curve is computed
at once from them, before any frame is warped; the warp then reads the curve per chunk
(`disparity_from_depth(..., convergence=curve[frames])`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from .errors import StereoInputError
from .frames import depth_channel, resize_frames

# Statistics need no detail: frames are shrunk to at most this width first.
_STATS_WIDTH = 128
# Sigma of the centre weighting, as a fraction of the frame's width and height.
_CENTRE_SIGMA = 0.2
SUBJECT_METHODS = ("center", "median")


@dataclass(frozen=True)
class AutoConvergence:
    strength: float = 1.0
    """0 = the fixed convergence everywhere, 1 = the subject exactly on the screen plane."""
    smoothing_seconds: float = 1.0
    """Gaussian sigma of the smoothing inside a shot, in seconds; 0 = one constant value per shot."""
    max_shift: float = 0.25
    """How far (in depth units) the plane may move away from the fixed convergence."""

    def validate(self) -> None:
        if not math.isfinite(self.strength) or not 0.0 <= self.strength <= 1.0:
            raise StereoInputError(f"Auto-convergence strength must be between 0 and 1, got {self.strength}.")
        if not math.isfinite(self.smoothing_seconds) or self.smoothing_seconds < 0:
            raise StereoInputError(
                f"Auto-convergence smoothing must be >= 0 seconds (0 = one value per shot), got {self.smoothing_seconds}."
            )
        if not math.isfinite(self.max_shift) or not 0.0 <= self.max_shift <= 1.0:
            raise StereoInputError(f"Auto-convergence max_shift must be between 0 and 1, got {self.max_shift}.")


def subject_depth(depth: torch.Tensor, method: str = "center") -> torch.Tensor:
    """Per-frame depth of the main subject [t] from a depth chunk [t, H, W] or [t, H, W, C].

    center: median weighted by a centred Gaussian; median: plain median. Both commute with
    any increasing map of depth, so they can be taken on raw depth and normalised afterwards
    with the clip's constants (e.g. normalized_depth(values.view(-1, 1, 1), ...)).
    """
    if method not in SUBJECT_METHODS:
        raise StereoInputError(f"Subject method must be one of {SUBJECT_METHODS}, got {method!r}.")
    values = depth_channel(depth)
    if values.ndim != 3 or values.shape[0] == 0:
        raise StereoInputError(f"Depth for subject statistics must be [frames, height, width], got {tuple(depth.shape)}.")
    frames, height, width = values.shape
    if width > _STATS_WIDTH:
        values = resize_frames(values, max(1, round(height * _STATS_WIDTH / width)), _STATS_WIDTH)
        height, width = values.shape[1:]
    flat = values.reshape(frames, -1)
    if method == "median":
        return flat.median(dim=1).values
    weights = _centre_weights(height, width, values.device).flatten()
    ordered, order = flat.sort(dim=1)
    cumulative = weights[order].cumsum(dim=1)
    middle = torch.searchsorted(cumulative, cumulative[:, -1:] * 0.5)
    return ordered.gather(1, middle.clamp(max=flat.shape[1] - 1)).squeeze(1)


def _centre_weights(height: int, width: int, device) -> torch.Tensor:
    y = (torch.arange(height, device=device) + 0.5) / height - 0.5
    x = (torch.arange(width, device=device) + 0.5) / width - 0.5
    return torch.exp(-(y.view(-1, 1) ** 2 + x.view(1, -1) ** 2) / (2 * _CENTRE_SIGMA**2))


def auto_convergence(
    subject: torch.Tensor | Sequence[float],
    shot_starts: Sequence[int] = (),
    fps: float = 24.0,
    base: float = 0.5,
    settings: AutoConvergence = AutoConvergence(),
) -> torch.Tensor:
    """Per-frame convergence [frames] (float32) for a clip.

    subject: per-frame normalised subject depth (0..1, 1 = near), e.g. from subject_depth.
    shot_starts: first frame of each shot (0 may be left out; scene-cut detection gives these).
    base: the fixed convergence the plane starts from (the user's setting).
    """
    settings.validate()
    subject = torch.as_tensor(subject, dtype=torch.float64).flatten()
    frames = subject.numel()
    if frames == 0:
        raise StereoInputError("Auto-convergence needs at least one frame's subject depth.")
    bad = ~torch.isfinite(subject)
    if bool(bad.any()):
        shown = ", ".join(str(i) for i in torch.nonzero(bad).flatten()[:8].tolist())
        raise StereoInputError(f"Subject depth is NaN or infinite at frames {shown}; the depth there failed.")
    if not math.isfinite(base) or not 0.0 <= base <= 1.0:
        raise StereoInputError(f"convergence must be between 0 and 1 (a depth value), got {base}.")
    if not math.isfinite(fps) or fps <= 0:
        raise StereoInputError(f"fps must be a positive number, got {fps}.")
    bounds = _shot_bounds(shot_starts, frames)
    target = base + settings.strength * (subject - base)
    curve = torch.empty(frames, dtype=torch.float64)
    sigma = settings.smoothing_seconds * fps
    for start, stop in zip(bounds[:-1], bounds[1:]):
        shot = target[start:stop]
        curve[start:stop] = shot.median() if sigma == 0 else _gaussian_smooth(shot, sigma)
    low, high = max(0.0, base - settings.max_shift), min(1.0, base + settings.max_shift)
    return curve.clamp(low, high).float()


def _shot_bounds(shot_starts: Sequence[int], frames: int) -> list[int]:
    starts = set()
    for value in shot_starts:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise StereoInputError(f"Shot starts must be whole frame numbers, got {value!r}.")
        if not 0 <= value < frames:
            raise StereoInputError(f"Shot start {int(value)} is outside the clip's {frames} frames (0..{frames - 1}).")
        starts.add(int(value))
    return sorted(starts | {0}) + [frames]


def _gaussian_smooth(values: torch.Tensor, sigma: float) -> torch.Tensor:
    """Zero-phase Gaussian smoothing; the shot's edge values extend past its ends (no leak across cuts)."""
    radius = min(int(math.ceil(3 * sigma)), 4 * values.numel())
    if radius == 0:
        return values
    offsets = torch.arange(-radius, radius + 1, dtype=values.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    padded = F.pad(values.view(1, 1, -1), (radius, radius), mode="replicate")
    return F.conv1d(padded, kernel.view(1, 1, -1)).flatten()
