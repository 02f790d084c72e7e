"""Stage-1 geometry nodes: warp, occlusion mask, stereo layouts, anaglyph, depth pictures."""

from __future__ import annotations

from ..stereo_core.anaglyph import MODES as ANAGLYPH_MODES
from ..stereo_core.anaglyph import anaglyph
from ..stereo_core.disparity import NORMALIZATIONS, REFERENCE_LOOK, UNITS, DisparitySettings
from ..stereo_core.errors import StereoInputError
from ..stereo_core.frames import check_clip, check_frame_counts, resize_frames
from ..stereo_core.layouts import LAYOUTS, VirtualScreen, compose_splat_grid, compose_stereo, split_splat_grid
from ..stereo_core.mask import refine_mask
from ..stereo_core.splatting import occlusion_from_depth, warp_clip
from ..stereo_core.visualize import COLORMAPS, visualize_depth
from .comfy_adapter import Progress, compute_device
from .common import CATEGORY

DEPTH_TOOLTIP = (
    "Depth clip as depth nodes output it (IMAGE, 1 = near, bright = near). Any size: it is resized to the "
    "image's size (bilinear). Any value scale unless normalize is 'none'. One frame is used for every image frame."
)

DISPARITY_INPUTS = {
    "max_disp": ("FLOAT", {"default": REFERENCE_LOOK.max_disp, "min": 0.0, "max": 4096.0, "step": 0.5,
                           "tooltip": "Strength of the 3D effect: parallax of the nearest point (at convergence 0.5), "
                                      "in disp_unit. The farthest point gets -max_disp. The default, 20 'reference', "
                                      "is the reference's look at any size (37.5 px at 1920 wide); in 'percent' mode "
                                      "2 means 2% of the frame width. Must stay below half the frame width, or the "
                                      "holes could cover the whole frame."}),
    "disp_unit": (list(UNITS), {"default": REFERENCE_LOOK.unit,
                                "tooltip": "reference: pixels at the reference's working width (1024), scaled to the "
                                           "frame's width, so 20 looks as the reference at any resolution. pixels: of "
                                           "the frame as it is. percent: of the frame width."}),
    "convergence": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01,
                              "tooltip": "Depth value that lands on the screen plane (zero parallax). Higher pushes "
                                         "the scene behind the screen, lower makes more of it pop out."}),
    "invert_depth": ("BOOLEAN", {"default": False,
                                 "tooltip": "Turn on for depth maps where 1 (white) means far."}),
    "normalize": (list(NORMALIZATIONS), {"default": "clip",
                                         "tooltip": "clip: min-max over the whole clip (the reference, no depth "
                                                    "pumping); frame: per frame; none: depth is already 0..1."}),
}


def disparity_settings(max_disp, disp_unit, convergence, invert_depth, normalize) -> DisparitySettings:
    return DisparitySettings(max_disp=max_disp, unit=disp_unit, convergence=convergence,
                             invert=invert_depth, normalize=normalize)


class ForwardWarpStereo:
    DESCRIPTION = (
        "Makes the right-eye view of a clip by forward-warping ('splatting') each pixel sideways by its "
        "disparity, nearer pixels winning where several land on one spot (StereoCrafter stage 1). Also outputs "
        "the occlusion mask: 1 where nothing landed, the holes an inpainter must fill."
    )
    CATEGORY = CATEGORY
    FUNCTION = "warp"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("right", "occlusion")
    OUTPUT_TOOLTIPS = ("The warped right-eye view (black in the holes).",
                       "Occlusion mask: 1 = hole, soft at hole borders.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "The left-eye clip (your video's frames)."}),
            "depth": ("IMAGE", {"tooltip": DEPTH_TOOLTIP}),
            **DISPARITY_INPUTS,
        }}

    def warp(self, image, depth, **settings):
        progress = Progress(image.shape[0])
        return warp_clip(image, depth, disparity_settings(**settings), device=compute_device(), progress=progress)


class OcclusionMask:
    DESCRIPTION = (
        "Makes or refines the occlusion (hole) mask. Connect 'mask' to refine an existing one (e.g. the warp's), "
        "or only 'depth' to compute it from depth alone. Threshold makes it binary, dilate grows the holes so the "
        "inpainter also repaints stretched edge pixels, feather softens the border."
    )
    CATEGORY = CATEGORY
    FUNCTION = "make"
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("occlusion",)

    @classmethod
    def INPUT_TYPES(cls):
        disparity = {name: (kind, {**opts, "tooltip": opts["tooltip"] + " (Used only when computing from depth.)"})
                     for name, (kind, opts) in DISPARITY_INPUTS.items()}
        return {
            "required": {
                "threshold": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 0.99, "step": 0.01,
                                        "tooltip": "Pixels above this become holes (1), the rest 0. 0 keeps the "
                                                   "soft mask."}),
                "dilate": ("INT", {"default": 2, "min": 0, "max": 64,
                                   "tooltip": "Grow the holes by this many pixels."}),
                "feather": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 64.0, "step": 0.5,
                                      "tooltip": "Soft ramp outside the holes (Gaussian sigma in pixels); holes stay 1."}),
                **disparity,
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "A mask to refine (takes precedence over depth)."}),
                "depth": ("IMAGE", {"tooltip": DEPTH_TOOLTIP.split(" One frame")[0]}),
            },
        }

    def make(self, threshold, dilate, feather, mask=None, depth=None, **settings):
        if mask is None:
            if depth is None:
                raise StereoInputError("Occlusion Mask needs an input: connect 'mask' to refine it, or 'depth'.")
            mask = occlusion_from_depth(depth, disparity_settings(**settings), device=compute_device(),
                                        progress=Progress(depth.shape[0]))
        return (refine_mask(mask, threshold, dilate, feather),)


class SBSCompose:
    DESCRIPTION = (
        "Packs the two eyes into one stereo frame for 3D players and headsets: side-by-side (full or half width), "
        "top-bottom (full or half height), or VR180 (each eye a flat virtual screen inside a 180-degree "
        "half-equirectangular image, for headset players). Half layouts keep the source size, as 3D TVs expect."
    )
    CATEGORY = CATEGORY
    FUNCTION = "compose"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("stereo",)

    @classmethod
    def INPUT_TYPES(cls):
        screen = VirtualScreen
        return {"required": {
            "left": ("IMAGE", {"tooltip": "Left-eye clip (the original video)."}),
            "right": ("IMAGE", {"tooltip": "Right-eye clip (warped or inpainted), same size and frame count."}),
            "layout": (list(LAYOUTS), {"default": "sbs",
                                       "tooltip": "sbs: full side-by-side (double width, the reference); half-sbs: "
                                                  "each eye half width; tb / half-tb: top-bottom; vr180: a virtual "
                                                  "screen in a 180-degree frame (width = 2 x height) for headsets."}),
            "swap_eyes": ("BOOLEAN", {"default": False,
                                      "tooltip": "Right eye first, for cross-eyed free viewing (not for vr180)."}),
        }, "optional": {
            "vr180_screen_fov": ("FLOAT", {"default": screen.fov, "min": 1.0, "max": 170.0, "step": 1.0,
                                           "tooltip": "vr180 only: the virtual screen's width as an angle (degrees). "
                                                      "Under 70 can be watched without turning the head."}),
            "vr180_screen_distance": ("FLOAT", {"default": screen.distance, "min": 0.0, "max": 100.0, "step": 0.1,
                                                "tooltip": "vr180 only: metres to the virtual screen; content at zero "
                                                           "parallax appears there. 0 = at infinity (then anything "
                                                           "behind the screen makes the eyes diverge)."}),
            "vr180_eye_size": ("INT", {"default": screen.eye_size, "min": 0, "max": 8192, "step": 16,
                                       "tooltip": "vr180 only: pixels per eye (the frame is 2x this wide, 1x tall). "
                                                  "0 = keep the source's detail, at most 2048 (4096x2048, the H.264 "
                                                  "limit of headset players)."}),
        }}

    def compose(self, left, right, layout, swap_eyes, vr180_screen_fov=VirtualScreen.fov,
                vr180_screen_distance=VirtualScreen.distance, vr180_eye_size=VirtualScreen.eye_size):
        screen = VirtualScreen(fov=vr180_screen_fov, distance=vr180_screen_distance, eye_size=vr180_eye_size)
        return (compose_stereo(left, right, layout, swap_eyes, screen=screen),)


class Anaglyph:
    DESCRIPTION = "Red/cyan anaglyph of a stereo pair, to check the 3D effect with cheap glasses."
    CATEGORY = CATEGORY
    FUNCTION = "make"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("anaglyph",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "left": ("IMAGE", {"tooltip": "Left-eye clip (seen through the red filter)."}),
            "right": ("IMAGE", {"tooltip": "Right-eye clip (seen through the cyan filter)."}),
            "mode": (list(ANAGLYPH_MODES), {"default": "color",
                                            "tooltip": "color: red from left, green/blue from right (the "
                                                       "reference); half-color: less rivalry on red objects; gray: "
                                                       "no colour, least ghosting; dubois: least-squares colours "
                                                       "(linear light), best overall; wimmer: Wimmer's optimized, "
                                                       "almost no rivalry, red shades lost."}),
        }}

    def make(self, left, right, mode):
        return (anaglyph(left, right, mode),)


class DepthVisualize:
    DESCRIPTION = "Picture of a depth clip: grey or the inferno colormap (as in the reference's splatting grid)."
    CATEGORY = CATEGORY
    FUNCTION = "visualize"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("depth_vis",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "depth": ("IMAGE", {"tooltip": "Depth clip (1 = near)."}),
            "colormap": (list(COLORMAPS), {"default": "inferno", "tooltip": "inferno: as the reference; gray: plain."}),
            "normalize": DISPARITY_INPUTS["normalize"],
        }}

    def visualize(self, depth, colormap, normalize):
        return (visualize_depth(depth, colormap, normalize),)


class SplatGridCompose:
    DESCRIPTION = (
        "Builds the reference's stage-1 hand-off video: a 2x2 grid at twice the size with the left view, the "
        "depth picture, the occlusion mask and the warped right view. Grids from this node and from the "
        "reference scripts are interchangeable."
    )
    CATEGORY = CATEGORY
    FUNCTION = "compose"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("grid",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "left": ("IMAGE", {"tooltip": "Left-eye clip (top-left tile)."}),
            "depth": ("IMAGE", {"tooltip": "Depth clip (top-right tile, drawn with the colormap); resized to the "
                                           "left clip's size. A single frame is used for every frame."}),
            "occlusion": ("MASK", {"tooltip": "Occlusion mask from Forward Warp Stereo (bottom-left tile)."}),
            "warped": ("IMAGE", {"tooltip": "Warped right view from Forward Warp Stereo (bottom-right tile)."}),
            "colormap": (list(COLORMAPS), {"default": "inferno", "tooltip": "How the depth tile is drawn."}),
        }}

    def compose(self, left, depth, occlusion, warped, colormap):
        # Checked here under the names the user sees; compose_splat_grid checks the values.
        left = check_clip(left, "left", values=False)
        depth = check_clip(depth, "depth", channels=(1, 3), values=False)
        check_frame_counts(left.shape[0], depth.shape[0], "left", "depth")
        depth_vis = visualize_depth(depth, colormap)
        depth_vis = resize_frames(depth_vis, left.shape[1], left.shape[2]).expand(left.shape[0], -1, -1, -1)
        return (compose_splat_grid(left, depth_vis, occlusion, warped),)


class SplatGridSplit:
    DESCRIPTION = (
        "Splits a 2x2 splatting-grid video (from Splat Grid Compose or the reference's stage 1) into its left "
        "view, depth picture, occlusion mask and warped right view, ready for inpainting."
    )
    CATEGORY = CATEGORY
    FUNCTION = "split"
    RETURN_TYPES = ("IMAGE", "IMAGE", "MASK", "IMAGE")
    RETURN_NAMES = ("left", "depth_vis", "occlusion", "warped")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"grid": ("IMAGE", {"tooltip": "The grid video's frames, unresized (even width and height)."})}}

    def split(self, grid):
        parts = split_splat_grid(grid)
        return parts["left"], parts["depth_vis"], parts["occlusion"], parts["warped"]
