"""Streaming conversion engine: long videos in bounded memory, resumable to the identical result.

    source (PyAV, chunks) -> depth (depth video, or DepthCrafter passes kept on disk)
        -> warp + mask per chunk -> inpainting per chunk (carrying the previous chunk's output)
        -> SBS/TB, anaglyph, depth pictures encoded in pieces -> pieces joined, audio muxed once

The command line, the ComfyUI "Stereo Convert Video" node and distributed workers all call
`convert` (or `Conversion` + `finish_outputs` for a part of a video).
"""

from .pipeline import (
    OPTION_NAMES,
    OUTPUT_KINDS,
    STREAM_COLOR_MODES,
    Conversion,
    ConversionJob,
    ConversionResult,
    ConversionSettings,
    LoadedModels,
    Models,
    OutputSettings,
    Plan,
    Reporter,
    convert,
    finish_outputs,
    plan_conversion,
    work_key,
)
from .sources import (
    DEFAULT_DEPTH_MODEL,
    DEPTH_MODELS,
    DepthSource,
    DepthStream,
    StreamedDepthSource,
    depth_model,
    register_depth_model,
)
from .store import WorkStore

__all__ = ["DEFAULT_DEPTH_MODEL", "DEPTH_MODELS", "OPTION_NAMES", "OUTPUT_KINDS", "STREAM_COLOR_MODES", "Conversion",
           "ConversionJob", "ConversionResult", "ConversionSettings", "DepthSource", "DepthStream", "LoadedModels", "Models",
           "OutputSettings", "Plan", "Reporter", "WorkStore", "convert", "depth_model", "finish_outputs",
           "plan_conversion", "register_depth_model", "StreamedDepthSource", "work_key"]
