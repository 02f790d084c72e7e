"""Video Depth Anything: its loader and its depth node (temporally consistent depth, fast)."""

from __future__ import annotations

from ..stereo_core import model_files
from ..stereo_core import video_depth_anything as vda
from .comfy_adapter import DOWNLOAD_SWITCH, Progress, compute_device, list_model_dirs, memory_hooks, model_dirs, offload_device
from .common import CATEGORY, DepthOutput, depth_as_image, download_switch_input, dtype_input

VDA_MODEL_TYPE = "SC3D_VIDEO_DEPTH_ANYTHING_MODEL"


class VideoDepthAnythingModelLoader:
    DESCRIPTION = (
        "Loads Video Depth Anything (depth-anything/Video-Depth-Anything-Small, -Base or -Large: the folder holding "
        "video_depth_anything_vits/vitb/vitl.pth) from models/stereocrafter. Small is Apache-2.0; the Base and Large "
        "weights are CC-BY-NC-4.0 (non-commercial use only). Turn on download_if_missing to fetch a missing folder "
        "on first use, or fetch it with the pack's download command (see the README)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (VDA_MODEL_TYPE,)
    RETURN_NAMES = ("video_depth_anything_model",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_folder": (list_model_dirs(model_files.FOLDER_NAMES[model_files.VDA_SMALL]), {
                "tooltip": "Folder of depth-anything/Video-Depth-Anything-Small (Apache-2.0), -Base or -Large "
                           "(CC-BY-NC-4.0, non-commercial) in models/stereocrafter; its one .pth file is loaded. "
                           "Small (ViT-S) is the fastest; Large is the most detailed."}),
            "dtype": dtype_input(),
            DOWNLOAD_SWITCH: download_switch_input("the one checkpoint file"),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, model_folder):
        return True  # checked when loading, with a message that says what to download where

    def load(self, model_folder, dtype, download_if_missing=False):
        kind = model_files.video_depth_anything_kind(model_folder)
        (folder,) = model_dirs([(model_folder, kind)], download=download_if_missing)
        model = vda.load_video_depth_anything(folder, dtype=dtype, device=compute_device(),
                                              offload_device=offload_device(), policy="offload",
                                              memory=memory_hooks())
        return (model,)


class VideoDepthAnythingDepth(DepthOutput):
    DESCRIPTION = (
        "Video depth with Video Depth Anything: one depth map per frame, consistent over time, normalised over the "
        "whole clip (1 = nearest). Windows of 32 frames overlap by 10 and are aligned to each other, as the "
        "official inference does, so any length works; the model sees the frames with their short side at "
        "input_size and the depth is resized back to the input size."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video_depth_anything_model": (VDA_MODEL_TYPE, {"tooltip": "From Video Depth Anything Model Loader."}),
            "image": ("IMAGE", {"tooltip": "The video frames (any size and length, at least 1 frame)."}),
            "input_size": ("INT", {"default": vda.INPUT_SIZE, "min": 14, "max": 2044, "step": 14,
                                   "tooltip": "Short side the model works at (a multiple of 14). 518 is the "
                                              "reference; lower is faster and coarser. Clips wider than 16:9 "
                                              "get a proportionally smaller size, as the official code does."}),
        }}

    def estimate(self, video_depth_anything_model, image, input_size):
        progress = Progress(vda.window_count(image.shape[0]))
        depth = vda.estimate_depth(video_depth_anything_model, image, input_size, progress=progress)
        return (depth_as_image(depth),)
