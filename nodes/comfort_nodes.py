"""Nodes that keep the 3D effect comfortable: a comfort check with a plot, and auto-convergence."""

from __future__ import annotations

import numpy as np
import torch

from ..stereo_core.comfort import ComfortLimits, ComfortReport, measure_depth
from ..stereo_core.convergence import SUBJECT_METHODS, AutoConvergence, auto_convergence, subject_depth
from ..stereo_core.disparity import DepthRange, DisparitySettings, normalized_depth
from ..stereo_core.errors import StereoInputError
from ..stereo_core.frames import DEFAULT_BATCH_FRAMES, check_clip, depth_channel, frame_batches
from .comfy_adapter import Progress
from .common import CATEGORY
from .geometry_nodes import DEPTH_TOOLTIP, DISPARITY_INPUTS, disparity_settings

_LIMITS = ComfortLimits()


class StereoComfortCheck:
    DESCRIPTION = (
        "Checks how strong the 3D effect is before you watch (or render) all of it: per frame, the nearest, median "
        "and farthest disparity as a percentage of the frame width (and in pixels on a screen of the given width), "
        "plotted over time against the usual comfort limits (BSkyB's 3D guidelines: 1% in front of the screen, 2% "
        "behind, 3% range), with a one-line verdict. Connect the plot to Preview Image. Use the same disparity "
        "settings as Forward Warp Stereo."
    )
    CATEGORY = CATEGORY
    FUNCTION = "check"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("plot", "verdict")
    OUTPUT_TOOLTIPS = ("The disparity-over-time chart (one image).",
                       "One line: how many frames are beyond the limits, and the worst ones.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "depth": ("IMAGE", {"tooltip": DEPTH_TOOLTIP.split(" Any size")[0] + " Any size."}),
                **DISPARITY_INPUTS,
                "front_limit": ("FLOAT", {"default": _LIMITS.front, "min": 0.01, "max": 50.0, "step": 0.1,
                                          "tooltip": "Most disparity in front of the screen, % of the width "
                                                     "(BSkyB: 1)."}),
                "behind_limit": ("FLOAT", {"default": _LIMITS.behind, "min": 0.01, "max": 50.0, "step": 0.1,
                                           "tooltip": "Most disparity behind the screen, % of the width (BSkyB: 2; "
                                                      "never more than 6.5 cm on the real screen, or eyes diverge)."}),
                "range_limit": ("FLOAT", {"default": _LIMITS.budget, "min": 0.01, "max": 100.0, "step": 0.1,
                                          "tooltip": "Most nearest-to-farthest range in one frame, % of the width "
                                                     "(BSkyB's depth budget: 3)."}),
                "screen_width_px": ("INT", {"default": 1920, "min": 1, "max": 16384,
                                            "tooltip": "Width of the screen it will be watched on, in pixels: the "
                                                       "plot's right axis shows disparities in those pixels."}),
                "fps": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1000.0, "step": 0.001,
                                  "tooltip": "Frame rate for a time axis in seconds; 0 = frame numbers."}),
            },
            "optional": {
                "image": ("IMAGE", {"tooltip": "The video the depth belongs to: its width is what max_disp in pixels "
                                               "refers to. Without it, the depth's own width is used."}),
            },
        }

    def check(self, depth, max_disp, disp_unit, convergence, invert_depth, normalize, front_limit, behind_limit,
              range_limit, screen_width_px, fps, image=None):
        depth = check_clip(depth, "depth", channels=(1, 3), values=False)  # measure_depth checks the values
        width = check_clip(image, "image").shape[2] if image is not None else depth.shape[2]
        chosen = (front_limit, behind_limit, range_limit)
        source = _LIMITS.source if chosen == (_LIMITS.front, _LIMITS.behind, _LIMITS.budget) else "your limits"
        limits = ComfortLimits(front=front_limit, behind=behind_limit, budget=range_limit, source=source)
        report = ComfortReport(width, limits, screen_width_px, fps or None)
        settings = disparity_settings(max_disp, disp_unit, convergence, invert_depth, normalize)
        measure_depth(depth, settings, report, progress=Progress(depth.shape[0]))
        plot = torch.from_numpy(np.asarray(report.plot(), dtype=np.float32) / 255.0).unsqueeze(0)
        return plot, report.verdict()


class AutoConvergenceDepth:
    DESCRIPTION = (
        "Auto-convergence: moves the screen plane per shot so the main subject (the centre-weighted median depth) "
        "sits near the screen, smoothed over time so it never jumps inside a shot. Outputs the depth re-centred "
        "for that: connect it to Forward Warp Stereo (and Stereo Comfort Check) with normalize = none, "
        "invert_depth off and the same convergence. Its values can leave 0..1 (that is the shift)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "converge"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("depth", "convergence")
    OUTPUT_TOOLTIPS = ("Depth (1 = near) shifted per frame so that the warp's fixed convergence becomes the "
                       "per-frame one. Use it with normalize = none.",
                       "The screen plane chosen per shot (first frame: value).")

    @classmethod
    def INPUT_TYPES(cls):
        settings = AutoConvergence()
        return {
            "required": {
                "depth": ("IMAGE", {"tooltip": DEPTH_TOOLTIP.split(" Any size")[0] + " Any size."}),
                "convergence": DISPARITY_INPUTS["convergence"],
                "invert_depth": DISPARITY_INPUTS["invert_depth"],
                "normalize": DISPARITY_INPUTS["normalize"],
                "strength": ("FLOAT", {"default": settings.strength, "min": 0.0, "max": 1.0, "step": 0.05,
                                       "tooltip": "1 = the subject on the screen plane; 0 = the fixed convergence; "
                                                  "in between moves part of the way."}),
                "smoothing_seconds": ("FLOAT", {"default": settings.smoothing_seconds, "min": 0.0, "max": 60.0,
                                                "step": 0.1,
                                                "tooltip": "How slowly the plane follows the subject inside a shot "
                                                           "(Gaussian, in seconds); 0 = one value per shot."}),
                "max_shift": ("FLOAT", {"default": settings.max_shift, "min": 0.0, "max": 1.0, "step": 0.01,
                                        "tooltip": "How far (in depth) the plane may move from 'convergence': "
                                                   "bounds how far behind the screen the background can go."}),
                "fps": ("FLOAT", {"default": 24.0, "min": 0.01, "max": 1000.0, "step": 0.001,
                                  "tooltip": "The video's frame rate (turns the smoothing seconds into frames)."}),
                "subject": (list(SUBJECT_METHODS), {"default": "center",
                                                    "tooltip": "center: median weighted towards the frame centre "
                                                               "(where subjects are framed); median: whole frame."}),
            },
            "optional": {
                "shot_starts": ("STRING", {"default": "", "multiline": False,
                                           "tooltip": "First frame of each shot, e.g. '0, 120, 348' (from a scene "
                                                      "detector). Empty = the clip is one shot."}),
            },
        }

    def converge(self, depth, convergence, invert_depth, normalize, strength, smoothing_seconds, max_shift, fps,
                 subject, shot_starts=""):
        depth = check_clip(depth, "depth", channels=(1, 3))
        settings = DisparitySettings(convergence=convergence, invert=invert_depth, normalize=normalize)
        settings.validate(depth.shape[2])
        starts = _parse_shot_starts(shot_starts)
        depth_range = DepthRange.of(depth)
        frames = depth.shape[0]
        progress = Progress(2 * frames)
        normalized = []
        for frame_slice in frame_batches(frames, DEFAULT_BATCH_FRAMES):
            normalized.append(normalized_depth(depth_channel(depth[frame_slice]), depth_range, frame_slice, settings))
            progress(frame_slice.stop)
        subjects = torch.cat([subject_depth(chunk, subject) for chunk in normalized])
        curve = auto_convergence(subjects, starts, fps, convergence,
                                 AutoConvergence(strength=strength, smoothing_seconds=smoothing_seconds,
                                                 max_shift=max_shift))
        # disparity = (n - c_t) * 2p = ((n - c_t + c) - c) * 2p: a fixed-convergence warp of the shifted depth.
        shifted = torch.cat(normalized) - curve.view(-1, 1, 1) + convergence
        progress(2 * frames)
        bounds = sorted(set(starts) | {0})
        info = ", ".join(f"{start}: {float(curve[start]):.3f}" for start in bounds if start < frames)
        return shifted.unsqueeze(-1).expand(-1, -1, -1, 3).to(depth.dtype), info


def _parse_shot_starts(text: str) -> list[int]:
    starts = []
    for part in (text or "").replace(";", ",").replace(" ", ",").split(","):
        if not part.strip():
            continue
        try:
            starts.append(int(part))
        except ValueError:
            raise StereoInputError(
                f"shot_starts must be frame numbers separated by commas (e.g. '0, 120, 348'), got {part!r}."
            ) from None
    return starts
