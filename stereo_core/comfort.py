"""Comfort report: how strong the 3D effect is, frame by frame, against the usual comfort limits.

Feed it disparity maps in pixels chunk by chunk (positive = in front of the screen, the sign
disparity_from_depth uses); it keeps three numbers per frame (nearest, median and farthest
disparity as a percentage of the frame width), so memory stays tiny whatever the clip length.
At the end it draws the curves over time with the limits marked (a PNG, drawn with Pillow)
and says in one line how many frames go beyond them.

The limits, as a percentage of the screen width (a stereo frame fills the screen's width):
- Broadcast practice: BSkyB's "Technical Guidelines for Plano Stereoscopic (3D) Programme
  Content" (46-70 inch screens): at most 1% in front of the screen (negative parallax), at most
  2% behind it (positive parallax), and a total depth budget of 3%; brief excursions to 2.5%
  in front or 4% behind only while the 3% range holds. These are the defaults.
- The one-degree rule: disparities within 1 degree of visual angle keep the vergence-
  accommodation conflict minor (Lambooij, IJsselsteijn, Fortuin, Heynderickx, "Visual
  discomfort and visual fatigue of stereoscopic displays: a review", J. Imaging Sci. Technol.
  53(3), 2009). On a screen of width W seen from distance D that is D tan(1 deg) / W.
- No divergence: behind the screen, the two images of a point must not be further apart than
  the eyes (about 65 mm), or the eyes would have to turn outwards; on a big screen this is the
  tighter limit (65 mm is 0.65% of a 10 m cinema screen).
ComfortLimits.for_screen combines the last two for a given screen and viewing distance.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .disparity import DepthRange, DisparitySettings, disparity_from_depth, normalized_depth
from .errors import StereoInputError
from .files import atomic_output
from .frames import DEFAULT_BATCH_FRAMES, check_clip, depth_channel, frame_batches

# Percentiles stand for "nearest" and "farthest", so a few stray depth pixels do not decide a frame.
DEFAULT_OUTLIER_SHARE = 0.005
# Statistics need no more than this many samples per frame (a regular sub-grid of a large frame).
MAX_QUANTILE_SAMPLES = 1 << 18
EYE_SEPARATION_M = 0.065


@dataclass(frozen=True)
class ComfortLimits:
    """Comfort limits as a percentage of the frame (screen) width."""

    front: float = 1.0
    """Largest disparity in front of the screen (crossed, negative parallax)."""
    behind: float = 2.0
    """Largest disparity behind the screen (uncrossed, positive parallax)."""
    budget: float = 3.0
    """Largest nearest-to-farthest range within a frame."""
    source: str = "BSkyB 3D guidelines"

    @classmethod
    def for_screen(cls, screen_width_m: float, viewing_distance_m: float, degrees: float = 1.0) -> "ComfortLimits":
        """Limits for a real screen: the one-degree rule both ways, and no divergence behind the screen."""
        for name, value in (("screen width", screen_width_m), ("viewing distance", viewing_distance_m),
                            ("angle", degrees)):
            if not math.isfinite(value) or value <= 0:
                raise StereoInputError(f"Comfort limits need a positive {name}, got {value}.")
        angle = 100.0 * viewing_distance_m * math.tan(math.radians(degrees)) / screen_width_m
        behind = min(angle, 100.0 * EYE_SEPARATION_M / screen_width_m)
        return cls(front=angle, behind=behind, budget=angle + behind,
                   source=f"{degrees:g} deg rule, {screen_width_m:g} m screen at {viewing_distance_m:g} m")

    def validate(self) -> None:
        for name in ("front", "behind", "budget"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise StereoInputError(f"The comfort limit '{name}' must be a positive percentage, got {value}.")


class ComfortReport:
    """Per-frame disparity statistics of a clip, fed chunk by chunk, in any order (a resumed run
    can restore the earlier chunks' numbers with from_state)."""

    def __init__(self, width: int, limits: ComfortLimits = ComfortLimits(), screen_width_px: int = 1920,
                 fps: float | None = None, outlier_share: float = DEFAULT_OUTLIER_SHARE):
        if int(width) <= 0 or int(screen_width_px) <= 0:
            raise StereoInputError(f"Frame and screen widths must be positive, got {width} and {screen_width_px}.")
        if not 0.0 <= outlier_share < 0.5:
            raise StereoInputError(f"outlier_share must be in 0..0.5, got {outlier_share}.")
        limits.validate()
        self.width = int(width)
        self.limits = limits
        self.screen_width_px = int(screen_width_px)
        self.fps = fps if fps and fps > 0 else None
        self.outlier_share = outlier_share
        self._stats: dict[int, tuple[float, float, float]] = {}

    # --- feeding -----------------------------------------------------------------------------

    def update(self, disparity: torch.Tensor, first_frame: int = 0) -> None:
        """Add disparity maps [t, H, W] in pixels of this report's frame width, for frames first_frame.."""
        if not isinstance(disparity, torch.Tensor) or disparity.ndim != 3 or disparity.shape[0] == 0:
            shape = tuple(disparity.shape) if isinstance(disparity, torch.Tensor) else type(disparity).__name__
            raise StereoInputError(f"Disparity for the comfort report must be [frames, height, width], got {shape}.")
        frames, height, width = disparity.shape
        step = max(1, math.ceil(math.sqrt(height * width / MAX_QUANTILE_SAMPLES)))
        samples = disparity[:, ::step, ::step].reshape(frames, -1).float()
        if not bool(torch.isfinite(samples).all()):
            raise StereoInputError("Disparity for the comfort report contains NaN or infinite values.")
        share = self.outlier_share
        quantiles = torch.tensor([1.0 - share, 0.5, share], dtype=samples.dtype, device=samples.device)
        stats = (torch.quantile(samples, quantiles, dim=1).T * (100.0 / self.width)).cpu().tolist()
        for offset, (nearest, median, farthest) in enumerate(stats):
            self._stats[int(first_frame) + offset] = (nearest, median, farthest)

    def record(self, nearest: torch.Tensor, median: torch.Tensor, farthest: torch.Tensor, first_frame: int = 0) -> None:
        """Add per-frame statistics already measured, in pixels of this report's frame width (e.g. from the
        streaming engine's depth statistics, which a resumed run keeps)."""
        stats = torch.stack([nearest, median, farthest], dim=1).double() * (100.0 / self.width)
        if not bool(torch.isfinite(stats).all()):
            raise StereoInputError("Disparity statistics for the comfort report contain NaN or infinite values.")
        for offset, values in enumerate(stats.tolist()):
            self._stats[int(first_frame) + offset] = tuple(values)

    def state_dict(self) -> dict:
        return {"width": self.width, "limits": asdict(self.limits), "screen_width_px": self.screen_width_px,
                "fps": self.fps, "outlier_share": self.outlier_share,
                "frames": {str(frame): list(values) for frame, values in sorted(self._stats.items())}}

    @classmethod
    def from_state(cls, state: dict) -> "ComfortReport":
        report = cls(state["width"], ComfortLimits(**state["limits"]), state["screen_width_px"], state["fps"],
                     state["outlier_share"])
        report._stats = {int(frame): tuple(values) for frame, values in state["frames"].items()}
        return report

    # --- results -----------------------------------------------------------------------------

    def table(self) -> dict[str, np.ndarray]:
        """Per frame, in frame order: frame, nearest, median, farthest (% of width), and beyond (bool)."""
        if not self._stats:
            raise StereoInputError("The comfort report has no frames yet: feed it disparity first.")
        frames = np.array(sorted(self._stats), dtype=np.int64)
        values = np.array([self._stats[frame] for frame in frames], dtype=np.float64)
        nearest, median, farthest = values[:, 0], values[:, 1], values[:, 2]
        limits = self.limits
        beyond = (nearest > limits.front) | (-farthest > limits.behind) | (nearest - farthest > limits.budget)
        return {"frame": frames, "nearest": nearest, "median": median, "farthest": farthest, "beyond": beyond}

    def pixels(self, percent: float) -> float:
        """A percentage of the width in pixels on the report's screen width."""
        return percent * self.screen_width_px / 100.0

    def verdict(self) -> str:
        """One line: how many frames are beyond the limits, and the worst of them."""
        table = self.table()
        total, limits = len(table["frame"]), self.limits
        nearest, farthest = table["nearest"], table["farthest"]
        spread = nearest - farthest
        checks = [
            (f"in front > {limits.front:.2g}%", nearest > limits.front, nearest, 1),
            (f"behind > {limits.behind:.2g}%", -farthest > limits.behind, farthest, -1),
            (f"range > {limits.budget:.2g}%", spread > limits.budget, spread, 1),
        ]
        count = int(table["beyond"].sum())
        extremes = (f"nearest {nearest.max():+.2f}% ({self.pixels(nearest.max()):+.0f} px), "
                    f"farthest {farthest.min():+.2f}% ({self.pixels(farthest.min()):+.0f} px) of the width "
                    f"on a {self.screen_width_px} px screen")
        if count == 0:
            return (f"Comfortable: all {total} frames within the limits ({limits.source}: in front <= "
                    f"{limits.front:.2g}%, behind <= {limits.behind:.2g}%, range <= {limits.budget:.2g}%); {extremes}.")
        parts = []
        for name, mask, values, sign in checks:
            if mask.any():
                worst = int(np.argmax(values * sign))
                parts.append(f"{name}: {int(mask.sum())} frames, worst {values[worst]:+.2f}% at frame "
                             f"{int(table['frame'][worst])}")
        return (f"Uncomfortable: {count} of {total} frames ({100.0 * count / total:.0f}%) beyond the limits "
                f"({limits.source}; " + "; ".join(parts) + f"); {extremes}.")

    def summary(self) -> dict:
        """The verdict, the limits and the per-frame numbers, ready for json.dump."""
        table = self.table()
        return {"verdict": self.verdict(), "limits": asdict(self.limits), "frame_width": self.width,
                "screen_width_px": self.screen_width_px, "unit": "percent of the frame width, + = in front",
                "frames": table["frame"].tolist(), "nearest": table["nearest"].round(4).tolist(),
                "median": table["median"].round(4).tolist(), "farthest": table["farthest"].round(4).tolist(),
                "beyond": table["beyond"].tolist()}

    def plot(self, size: tuple[int, int] = (1200, 520)):
        """The curves over time with the limits marked, as a PIL image."""
        from .comfort_plot import draw_report

        return draw_report(self, size)

    def save(self, png_path: str | Path, json_path: str | Path | None = None) -> Path:
        """Write the plot (and optionally the summary), each to a temporary name renamed into place."""
        png_path = Path(png_path)
        png_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(png_path) as partial:
            self.plot().save(partial, format="PNG")
        if json_path is not None:
            with atomic_output(Path(json_path)) as partial:
                partial.write_text(json.dumps(self.summary(), indent=1), encoding="utf-8")
        return png_path


def measure_depth(
    depth: torch.Tensor,
    settings: DisparitySettings,
    report: ComfortReport,
    batch: int = DEFAULT_BATCH_FRAMES,
    progress: Optional[Callable[[int, int], None]] = None,
) -> ComfortReport:
    """Feed a whole depth clip [T, h, w(, C)] (any size: percentages do not depend on it) to `report`,
    with the disparity the warp would use at the report's frame width."""
    depth = check_clip(depth, "depth", channels=(1, 3))
    settings.validate(report.width)
    depth_range = DepthRange.of(depth, batch=batch)
    frames = depth.shape[0]
    for frame_slice in frame_batches(frames, batch):
        values = normalized_depth(depth_channel(depth[frame_slice]), depth_range, frame_slice, settings)
        report.update(disparity_from_depth(values, settings, report.width), frame_slice.start)
        if progress:
            progress(frame_slice.stop, frames)
    return report
