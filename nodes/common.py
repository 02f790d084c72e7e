"""Names and inputs shared by the nodes of the pack."""

from ..stereo_core.placement import DTYPE_CHOICES

CATEGORY = "StereoCrafter 3D"
# Node type names carry this prefix so they cannot collide with other packs.
PREFIX = "SC3D_"
# What every depth node outputs: the depth as an IMAGE that any image node (and Forward Warp Stereo) takes.
DEPTH_IMAGE_TOOLTIP = "Depth clip, same frames and size as the input, 3 equal channels, white = near."


class DepthOutput:
    """What every depth node is: in this pack's category, `estimate` returning the depth as an IMAGE."""

    CATEGORY = CATEGORY
    FUNCTION = "estimate"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("depth",)
    OUTPUT_TOOLTIPS = (DEPTH_IMAGE_TOOLTIP,)


def depth_as_image(depth):
    """Depth [B, H, W] (1 = near) as a ComfyUI IMAGE [B, H, W, 3]."""
    return depth.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()


def dtype_input():
    """The `dtype` input of a depth-model loader."""
    return (list(DTYPE_CHOICES), {
        "default": "auto",
        "tooltip": "Weight precision. auto: fp16 on a GPU, fp32 on the CPU. bf16 needs an Ampere or newer card."})


def download_switch_input(files: str):
    """The download_if_missing input of a depth-model loader; `files`: what it fetches."""
    return ("BOOLEAN", {
        "default": False,
        "tooltip": f"On: a model folder that is missing or incomplete is downloaded from Hugging Face into "
                   f"models/stereocrafter when this node runs ({files}; progress on this node). Off: nothing is "
                   f"downloaded."})
