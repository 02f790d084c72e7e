"""Stage 2: StereoCrafter inpainting of the warped right view, and colour matching between eyes."""

from __future__ import annotations

from ..stereo_core.color import MODES as COLOR_MODES
from ..stereo_core.color import match_colors
from ..stereo_core.inpainting import TILE_BLENDS, InpaintSettings, inpaint_clip
from .comfy_adapter import Progress
from .common import CATEGORY
from .model_nodes import MODEL_TYPES

_DEFAULTS = InpaintSettings()


class StereoCrafterInpaintChunked:
    DESCRIPTION = (
        "Fills the holes of the warped right eye (Forward Warp Stereo's right + occlusion) with the StereoCrafter "
        "video-diffusion inpainter (stage 2). The clip is processed in overlapping chunks of frames, each continuing "
        "from the previous chunk's output, and optionally in spatial tiles; the output has the input's exact size."
    )
    CATEGORY = CATEGORY
    FUNCTION = "inpaint"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("right",)
    OUTPUT_TOOLTIPS = ("The inpainted right-eye view, same frames and size as 'warped'.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stereocrafter_model": (MODEL_TYPES["stereocrafter"], {"tooltip": "From StereoCrafter Model Loader."}),
            "warped": ("IMAGE", {"tooltip": "The warped right view (Forward Warp Stereo 'right')."}),
            "mask": ("MASK", {"tooltip": "Occlusion mask, 1 = hole to fill (Forward Warp Stereo 'occlusion'). "
                                         "Values >= 0.5 count as holes."}),
            "steps": ("INT", {"default": _DEFAULTS.steps, "min": 1, "max": 100,
                              "tooltip": "Denoising steps per chunk (8 = the reference)."}),
            "guidance": ("FLOAT", {"default": _DEFAULTS.max_guidance, "min": 1.0, "max": 10.0, "step": 0.01,
                                   "tooltip": "Guidance for the last frame of each chunk (1.01 = the reference). "
                                              "Exactly 1.0 with min_guidance 1.0 skips the unconditional pass: "
                                              "half the UNet work."}),
            "min_guidance": ("FLOAT", {"default": _DEFAULTS.min_guidance, "min": 1.0, "max": 10.0, "step": 0.01,
                                       "tooltip": "Guidance for the first frame of each chunk; frames in between "
                                                  "are interpolated linearly."}),
            "frames_chunk": ("INT", {"default": _DEFAULTS.frames_chunk, "min": 1, "max": 128,
                                     "tooltip": "Frames per chunk (23 = the reference). Fewer uses less GPU "
                                                "memory."}),
            "overlap": ("INT", {"default": _DEFAULTS.overlap, "min": 0, "max": 127,
                                "tooltip": "Frames each chunk takes from the previous chunk's output, for "
                                           "continuity. More reduces flicker at chunk seams; must be smaller "
                                           "than frames_chunk."}),
            "tile_num": ("INT", {"default": _DEFAULTS.tile_num, "min": 1, "max": 8,
                                 "tooltip": "Split each frame into tile_num x tile_num tiles (128 px overlap, "
                                            "blended in latent space) to save GPU memory at high resolution. "
                                            "Raised automatically if the GPU runs out of memory."}),
            "tile_blend": (list(TILE_BLENDS), {"default": _DEFAULTS.tile_blend,
                                               "tooltip": "How tiles are joined (tile_num > 1). reference: "
                                                          "exactly as StereoCrafter (each tile fades in over "
                                                          "its first 128 px; where four tiles meet the blend "
                                                          "leaves a small step). crossfade: a smooth linear "
                                                          "cross-fade everywhere, corners included (4x smaller "
                                                          "steps there, see docs/reference_comparison.md)."}),
            "color_match": (list(COLOR_MODES), {"default": _DEFAULTS.color_match,
                                                "tooltip": "Match the right eye's colours to the left eye's "
                                                           "(from non-hole pixels): per chunk, per frame, once "
                                                           "for the clip, or off. Fixes colour drift between eyes."}),
            "keep_unmasked": ("BOOLEAN", {"default": _DEFAULTS.keep_unmasked,
                                          "tooltip": "Paste the inpainted result only into the holes (feathered), "
                                                     "so every other pixel stays exactly the warped one."}),
            "max_res": ("INT", {"default": _DEFAULTS.inpaint_max_res, "min": 0, "max": 16384, "step": 64,
                                "tooltip": "Longest side the model inpaints at (1024 = the reference's working "
                                           "size). Larger frames are inpainted at that size and only the holes "
                                           "(grown a little, feathered) are replaced in the full-size warp; every "
                                           "other pixel stays exactly warped. 0 = inpaint the full frame (a 1080p "
                                           "frame costs 5x the work)."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                             "tooltip": "Noise seed; the same seed and settings give the same result."}),
        }, "optional": {
            "left": ("IMAGE", {"tooltip": "The left eye, the colour reference for color_match. Without it the "
                                          "warped view's non-hole pixels are used."}),
        }}

    def inpaint(self, stereocrafter_model, warped, mask, steps, guidance, min_guidance, frames_chunk, overlap,
                tile_num, color_match, keep_unmasked, seed, tile_blend=_DEFAULTS.tile_blend, left=None,
                max_res=_DEFAULTS.inpaint_max_res):
        settings = InpaintSettings(steps=steps, min_guidance=min_guidance, max_guidance=guidance,
                                   frames_chunk=frames_chunk, overlap=overlap, tile_num=tile_num,
                                   tile_blend=tile_blend, color_match=color_match, keep_unmasked=keep_unmasked,
                                   inpaint_max_res=max_res)
        result = inpaint_clip(stereocrafter_model, warped, mask, settings, left=left, seed=seed, progress=Progress(1))
        return (result.frames,)


class StereoColorMatch:
    DESCRIPTION = (
        "Matches one clip's colours to another's (mean and spread per channel in CIELAB), e.g. an inpainted right "
        "eye to the left eye, removing colour drift between the eyes. A mask excludes pixels (such as inpainted "
        "holes) from the statistics."
    )
    CATEGORY = CATEGORY
    FUNCTION = "match"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("'image' with the colour distribution of 'reference'.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "The clip to correct (e.g. the inpainted right eye)."}),
            "reference": ("IMAGE", {"tooltip": "The clip whose colours are right (e.g. the left eye); same frames "
                                               "and size."}),
            "mode": (["clip", "chunk", "frame"], {"default": "clip",
                                                  "tooltip": "One correction for the whole clip (steadiest), one per "
                                                             "group of frames, or one per frame."}),
            "group_frames": ("INT", {"default": 20, "min": 1, "max": 1000,
                                     "tooltip": "Frames per group in 'chunk' mode."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                   "tooltip": "1 = full match, 0 = unchanged."}),
        }, "optional": {
            "mask": ("MASK", {"tooltip": "1 = leave this pixel out of the statistics (e.g. the occlusion mask)."}),
        }}

    def match(self, image, reference, mode, group_frames, strength, mask=None):
        return (match_colors(image, reference, mask=mask, mode=mode, group=group_frames, strength=strength),)
