"""Streaming conversion engine: long videos in bounded memory, resumable to the identical result.

    source (PyAV, chunks) -> depth (depth video, or DepthCrafter passes kept on disk)
        -> warp + mask per chunk -> inpainting per chunk (carrying the previous chunk's output)
        -> SBS/TB, anaglyph, depth pictures encoded in pieces -> pieces joined, audio muxed once

The command line, the ComfyUI "Stereo Convert Video" node and distributed workers all call
`convert` (or `Conversion` + `finish_outputs` for a part of a video).
"""

from .pipeline import (
    OUTPUT_KINDS,
    STREAM_COLOR_MODES,
    Conversion,
    ConversionJob,
    ConversionSettings,
    LoadedModels,
    Models,
    OutputSettings,
    Plan,
    Reporter,
    convert,
    finish_outputs,
    plan_conversion,
)
from .store import WorkStore

__all__ = ["OUTPUT_KINDS", "STREAM_COLOR_MODES", "Conversion", "ConversionJob", "ConversionSettings", "LoadedModels", "Models",
           "OutputSettings", "Plan", "Reporter", "WorkStore", "convert", "finish_outputs", "plan_conversion"]
