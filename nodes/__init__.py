"""ComfyUI face of the pack: node classes and their display names."""

from .comfy_adapter import register_model_folder
from .comfort_nodes import AutoConvergenceDepth, StereoComfortCheck
from .common import PREFIX
from .convert_nodes import StereoConvertVideo
from .depth_anything_v2_nodes import DepthAnythingV2Depth, DepthAnythingV2ModelLoader
from .depth_nodes import DepthCrafterDepth
from .geometry_nodes import (
    Anaglyph,
    DepthVisualize,
    ForwardWarpStereo,
    OcclusionMask,
    SBSCompose,
    SplatGridCompose,
    SplatGridSplit,
)
from .inpaint_nodes import StereoColorMatch, StereoCrafterInpaintChunked
from .model_nodes import DepthCrafterModelLoader, StereoCrafterModelLoader
from .photo_nodes import SaveStereoImage
from .video_depth_anything_nodes import VideoDepthAnythingDepth, VideoDepthAnythingModelLoader

register_model_folder()

_NODES = {
    "DepthCrafter Model Loader": DepthCrafterModelLoader,
    "DepthCrafter Depth": DepthCrafterDepth,
    "Depth Anything V2 Model Loader": DepthAnythingV2ModelLoader,
    "Depth Anything V2 Depth": DepthAnythingV2Depth,
    "StereoCrafter Model Loader": StereoCrafterModelLoader,
    "StereoCrafter Inpaint Chunked": StereoCrafterInpaintChunked,
    "Stereo Color Match": StereoColorMatch,
    "Forward Warp Stereo": ForwardWarpStereo,
    "Occlusion Mask": OcclusionMask,
    "SBS Compose": SBSCompose,
    "Anaglyph": Anaglyph,
    "Depth Visualize": DepthVisualize,
    "Splat Grid Compose": SplatGridCompose,
    "Splat Grid Split": SplatGridSplit,
    "Stereo Comfort Check": StereoComfortCheck,
    "Auto Convergence": AutoConvergenceDepth,
    "Stereo Convert Video": StereoConvertVideo,
    "Save Stereo Image": SaveStereoImage,
    "Video Depth Anything Model Loader": VideoDepthAnythingModelLoader,
    "Video Depth Anything Depth": VideoDepthAnythingDepth,
}

NODE_CLASS_MAPPINGS = {PREFIX + cls.__name__: cls for cls in _NODES.values()}
NODE_DISPLAY_NAME_MAPPINGS = {PREFIX + cls.__name__: name for name, cls in _NODES.items()}
