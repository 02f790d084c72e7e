"""The DepthCrafter Depth node: temporally consistent video depth."""

from __future__ import annotations

import logging

from ..stereo_core.depthcrafter import DepthCrafterSettings, estimate_depth
from .comfy_adapter import Progress
from .common import DepthOutput, depth_as_image
from .model_nodes import MODEL_TYPES

log = logging.getLogger(__name__)
_DEFAULTS = DepthCrafterSettings()


class DepthCrafterDepth(DepthOutput):
    DESCRIPTION = (
        "Video depth with DepthCrafter (stage 1 of StereoCrafter): one depth map per frame, consistent over time, "
        "normalised over the whole clip (1 = nearest). The clip is processed in overlapping windows, so any "
        "length works; frames are resized to multiples of 64 (at most max_res) for the model and the depth is "
        "resized back to the input size."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "depthcrafter_model": (MODEL_TYPES["depthcrafter"], {"tooltip": "From DepthCrafter Model Loader."}),
            "image": ("IMAGE", {"tooltip": "The video frames (any size and length, at least 1 frame)."}),
            "steps": ("INT", {"default": _DEFAULTS.steps, "min": 1, "max": 100,
                              "tooltip": "Denoising steps per window. 8 is the reference; more is slower and "
                                         "rarely better."}),
            "guidance": ("FLOAT", {"default": _DEFAULTS.guidance, "min": 1.0, "max": 10.0, "step": 0.05,
                                   "tooltip": "How strongly the depth follows the video (classifier-free "
                                              "guidance). 1.2 is the reference. Exactly 1.0 skips the second "
                                              "UNet pass: twice as fast, slightly softer depth."}),
            "window": ("INT", {"default": _DEFAULTS.window, "min": 2, "max": 200,
                               "tooltip": "Frames per window. Larger is more consistent over time but needs more "
                                          "GPU memory (70 is the reference; lower it on small cards)."}),
            "overlap": ("INT", {"default": _DEFAULTS.overlap, "min": 0, "max": 199,
                                "tooltip": "Frames shared by consecutive windows and blended, so there is no jump "
                                           "at window borders. Must be smaller than window."}),
            "noise_aug": ("FLOAT", {"default": _DEFAULTS.noise_aug, "min": 0.0, "max": 1.0, "step": 0.01,
                                    "tooltip": "Noise added to the frames before encoding, as the model was "
                                               "trained (0.02)."}),
            "max_res": ("INT", {"default": _DEFAULTS.max_res, "min": 64, "max": 4096, "step": 64,
                                "tooltip": "Longest side the model works at. 1024 is the reference; 512-768 "
                                           "is much faster and uses less memory, with coarser depth."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                             "tooltip": "Noise seed; the same seed and settings give the same depth."}),
            "encode_chunk": ("INT", {"default": _DEFAULTS.encode_chunk, "min": 1, "max": 128,
                                     "tooltip": "Frames per CLIP/VAE encoding batch (GPU memory vs speed)."}),
            "decode_chunk": ("INT", {"default": _DEFAULTS.decode_chunk, "min": 1, "max": 128,
                                     "tooltip": "Frames per VAE decoding batch. Lower it if decoding runs out "
                                                "of memory."}),
        }}

    def estimate(self, depthcrafter_model, image, steps, guidance, window, overlap, noise_aug, max_res, seed,
                 encode_chunk, decode_chunk):
        settings = DepthCrafterSettings(steps=steps, guidance=guidance, window=window, overlap=overlap,
                                        noise_aug=noise_aug, max_res=max_res, encode_chunk=encode_chunk,
                                        decode_chunk=decode_chunk)
        result = estimate_depth(depthcrafter_model, image, settings, seed=seed, progress=Progress(1))
        log.info("%s %d UNet evaluations for %d frames.", result.describe(), result.unet_calls, image.shape[0])
        return (depth_as_image(result.depth),)
