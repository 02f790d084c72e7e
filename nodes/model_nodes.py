"""Loader nodes for the video-diffusion models (weights the user downloads into models/stereocrafter)."""

from __future__ import annotations

from ..stereo_core import model_files
from ..stereo_core.placement import DTYPE_CHOICES
from ..stereo_core.video_diffusion import load_video_diffusion
from .comfy_adapter import DOWNLOAD_SWITCH, compute_device, list_model_dirs, memory_hooks, model_dirs, offload_device
from .common import CATEGORY

MODEL_TYPES = {model_files.DEPTHCRAFTER: "SC3D_DEPTHCRAFTER_MODEL", model_files.STEREOCRAFTER: "SC3D_STEREOCRAFTER_MODEL"}

# What users read in the UI, and the library's policy name behind it.
PLACEMENTS = {
    "offload to CPU between uses": "offload",
    "keep on GPU": "keep",
    "sequential offload (small cards)": "sequential",
}


class _VideoDiffusionLoader:
    """Shared body of the DepthCrafter and StereoCrafter loaders; subclasses set KIND."""

    KIND = ""
    CATEGORY = CATEGORY
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        title = model_files.TITLES[cls.KIND]
        return {"required": {
            "svd_folder": (list_model_dirs(model_files.FOLDER_NAMES[model_files.SVD]), {
                "tooltip": f"Folder of {model_files.DOWNLOADS[model_files.SVD]} (gated: accept its licence on Hugging "
                           f"Face first) in models/stereocrafter or models/diffusers. Only its VAE, CLIP image "
                           f"encoder, feature extractor and scheduler are used; its UNet is not needed."}),
            "model_folder": (list_model_dirs(model_files.FOLDER_NAMES[cls.KIND]), {
                "tooltip": f"Folder of {model_files.DOWNLOADS[cls.KIND]} ({title}) in models/stereocrafter or "
                           f"models/diffusers."}),
            "dtype": (list(DTYPE_CHOICES), {
                "default": "auto",
                "tooltip": "Weight precision. auto: fp16 on a GPU (as the reference), fp32 on the CPU. bf16 needs an "
                           "Ampere or newer card. The VAE stays fp32 under fp16, as SVD requires."}),
            "placement": (list(PLACEMENTS), {
                "default": "offload to CPU between uses",
                "tooltip": "Where idle parts live. offload: each part (CLIP, VAE, UNet) is on the GPU only while it "
                           "runs, so about 6 GB is enough in fp16. keep on GPU: fastest for repeated runs, holds "
                           "all parts (about 5 GB in fp16). sequential: layer by layer, for 4 GB cards, much slower."}),
            DOWNLOAD_SWITCH: ("BOOLEAN", {
                "default": False,
                "tooltip": "On: a model folder that is missing or incomplete is downloaded from Hugging Face into "
                           "models/stereocrafter when this node runs (only the files used; the console lists them "
                           "with their sizes; progress on this node; after an interruption, files already fetched are kept). "
                           "Stable Video Diffusion is gated: accept its licence on its Hugging Face page and give "
                           "ComfyUI a token first (`hf auth login`, or HF_TOKEN). Off: nothing is downloaded."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, svd_folder, model_folder):
        # Folder names are checked when loading, so a missing download gets the message that says
        # what to download where, instead of a bare "value not in list".
        return True

    def load(self, svd_folder, model_folder, dtype, placement, download_if_missing=False):
        svd_dir, unet_dir = model_dirs([(svd_folder, model_files.SVD), (model_folder, self.KIND)],
                                       download=download_if_missing, variant="fp32" if dtype == "fp32" else "fp16")
        model = load_video_diffusion(
            self.KIND,
            svd_dir,
            unet_dir,
            dtype=dtype,
            policy=PLACEMENTS[placement],
            device=compute_device(),
            memory=memory_hooks(),
            offload_device=offload_device(),
        )
        return (model,)


class DepthCrafterModelLoader(_VideoDiffusionLoader):
    DESCRIPTION = (
        "Loads DepthCrafter (tencent/DepthCrafter) with the parts of Stable Video Diffusion img2vid-xt-1-1 it "
        "needs, from models/stereocrafter or models/diffusers. Turn on download_if_missing to fetch missing folders "
        "on first use, or fetch them with the pack's download command (see the README); a missing or incomplete "
        "folder is otherwise reported with the files it lacks and the commands that fetch them."
    )
    KIND = model_files.DEPTHCRAFTER
    RETURN_TYPES = (MODEL_TYPES[model_files.DEPTHCRAFTER],)
    RETURN_NAMES = ("depthcrafter_model",)


class StereoCrafterModelLoader(_VideoDiffusionLoader):
    DESCRIPTION = (
        "Loads the StereoCrafter inpainting UNet (TencentARC/StereoCrafter, in unet_diffusers/) with the parts of "
        "Stable Video Diffusion img2vid-xt-1-1 it needs, from models/stereocrafter or models/diffusers. Turn on "
        "download_if_missing to fetch missing folders on first use, or see the README."
    )
    KIND = model_files.STEREOCRAFTER
    RETURN_TYPES = (MODEL_TYPES[model_files.STEREOCRAFTER],)
    RETURN_NAMES = ("stereocrafter_model",)
