"""Depth Anything V2: its loader and its per-frame depth node (temporally normalised for video)."""

from __future__ import annotations

from ..stereo_core import depth_anything_v2 as dav2
from ..stereo_core import model_files
from ..stereo_core.errors import StereoInputError
from .comfy_adapter import DOWNLOAD_SWITCH, Progress, compute_device, list_model_dirs, memory_hooks, model_dirs, \
    model_roots, offload_device
from .common import CATEGORY, DepthOutput, depth_as_image, download_switch_input, dtype_input

DAV2_MODEL_TYPE = "SC3D_DEPTH_ANYTHING_V2_MODEL"
_EMA = dav2.EmaSettings()


def dav2_folder_choices() -> list[str]:
    """The Depth Anything V2 folders found in the model folders; the Small one first, so shipped workflows
    validate before anything is downloaded."""
    names = {name for name in list_model_dirs(model_files.FOLDER_NAMES[model_files.DAV2_SMALL])
             if any(dav2.kind_of_folder(root / name) for root in model_roots() if (root / name).is_dir())}
    first = [model_files.FOLDER_NAMES[kind] for kind in model_files.DAV2_KINDS]
    return first + sorted(names - set(first))


def _licences() -> str:
    return "; ".join(f"{model_files.TITLES[kind]}: {model_files.LICENCES[kind]}" for kind in model_files.DAV2_KINDS)


class DepthAnythingV2ModelLoader:
    DESCRIPTION = (
        "Loads Depth Anything V2 (the transformers -hf checkpoints, e.g. depth-anything/Depth-Anything-V2-Small-hf) "
        "from models/stereocrafter: per-frame depth, far faster than DepthCrafter and the best for still images. "
        f"Weights licences: {_licences()}. Turn on download_if_missing to fetch a missing folder on first use, or "
        "fetch it with the pack's download command (see the README)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (DAV2_MODEL_TYPE,)
    RETURN_NAMES = ("depth_anything_v2_model",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_folder": (dav2_folder_choices(), {
                "tooltip": "Folder of a Depth Anything V2 -hf download in models/stereocrafter (config.json, "
                           f"model.safetensors, preprocessor_config.json). {_licences()}."}),
            "dtype": dtype_input(),
            DOWNLOAD_SWITCH: download_switch_input(
                "only config.json, model.safetensors and preprocessor_config.json"),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, model_folder):
        return True  # checked when loading, with what to download where

    def load(self, model_folder, dtype, download_if_missing=False):
        kind = next((k for k in model_files.DAV2_KINDS if model_files.FOLDER_NAMES[k] == model_folder), None)
        if kind is None:
            found = [root / model_folder for root in model_roots() if (root / model_folder).is_dir()]
            kind = dav2.kind_of_folder(found[0]) if found else None
        if kind is None:
            raise StereoInputError(
                f"'{model_folder}' is not a Depth Anything V2 folder this loader knows: choose one of "
                f"{', '.join(model_files.FOLDER_NAMES[k] for k in model_files.DAV2_KINDS)}.")
        (folder,) = model_dirs([(model_folder, kind)], download=download_if_missing, variant="fp32")
        model = dav2.load_depth_anything_v2(folder, dtype=dtype, device=compute_device(), policy="offload",
                                            memory=memory_hooks(), offload_device=offload_device())
        return (model,)


class DepthAnythingV2Depth(DepthOutput):
    DESCRIPTION = (
        "Depth with Depth Anything V2, frame by frame: one depth map per frame at the input size, white = near. "
        "For video, normalize 'ema' keeps the depth from pumping: each frame is scaled by the smallest and largest "
        "depth over the next ema_buffer frames, smoothed with ema_decay (as iw3's --ema-normalize). 'clip' scales "
        "by the extremes of the whole batch, 'frame' each frame by its own. A single image is scaled by its own "
        "extremes."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "depth_anything_v2_model": (DAV2_MODEL_TYPE, {"tooltip": "From Depth Anything V2 Model Loader."}),
            "image": ("IMAGE", {"tooltip": "The frames (any size and length, at least 1 frame)."}),
            "input_size": ("INT", {"default": dav2.DEFAULT_INPUT_SIZE, "min": 14, "max": 2044, "step": 14,
                                   "tooltip": "Size the model works at: the side needing the smaller change "
                                              "becomes this, the other keeps the aspect (multiples of 14). 518 "
                                              "is what the model was trained at; larger gives finer detail, "
                                              "slower."}),
            "normalize": (list(dav2.NORMALIZE_CHOICES), {
                "default": "ema",
                "tooltip": "ema: temporal, steady video depth (see ema_buffer, ema_decay); clip: min-max over "
                           "the whole batch; frame: each frame by its own min-max (pumps on video)."}),
            "ema_buffer": ("INT", {"default": _EMA.buffer, "min": 1, "max": 1000,
                                   "tooltip": "Frames of look-ahead for 'ema': each frame is scaled by the extremes "
                                              "over itself and the next ema_buffer-1 frames (30 as iw3)."}),
            "ema_decay": ("FLOAT", {"default": _EMA.decay, "min": 0.0, "max": 0.999, "step": 0.01,
                                    "tooltip": "Smoothing for 'ema' (0-1): larger follows changes of the depth "
                                               "range more slowly (0.75 as iw3; 0 = no smoothing)."}),
            "batch_size": ("INT", {"default": 4, "min": 1, "max": 256,
                                   "tooltip": "Frames per model call (GPU memory vs speed)."}),
        }}

    def estimate(self, depth_anything_v2_model, image, input_size, normalize, ema_buffer, ema_decay, batch_size=4):
        progress = Progress(image.shape[0])
        depth = dav2.estimate_depth(depth_anything_v2_model, image, input_size=input_size, normalize=normalize,
                                    ema=dav2.EmaSettings(buffer=ema_buffer, decay=ema_decay), batch_size=batch_size,
                                    progress=progress)
        return (depth_as_image(depth),)
