"""Streaming conversion engine: long videos in bounded memory, resumable to the identical result.

    source (PyAV, chunks) -> depth (depth video, or DepthCrafter passes kept on disk)
        -> warp + mask per chunk -> inpainting per chunk (carrying the previous chunk's output)
        -> SBS/TB, anaglyph, depth pictures encoded in pieces -> pieces joined, audio muxed once

The command line, the ComfyUI "Stereo Convert Video" node and distributed workers all call
`convert` (or `Conversion` + `finish_outputs` for a part of a video). A face plans the job once
(`plan_conversion`: inputs probed, settings checked; `ConversionSettings.check()` alone is the part
that needs no frame size, for checking before any file is touched), takes the progress stages and the
models the run may load from the plan (`plan.stages`, `plan.model_kinds`) and hands the plan to
`convert`. `Conversion.run()` returns a `ConversionResult` (encoded pieces, comfort figures, screen
plane). Messages name options in the face's words (`ConversionJob.option_names`).

The depth seam (engine/sources.py). Where the depth comes from is a `DepthSource`, chosen once by
`plan_conversion`: a given depth video, else the depth model named by `ConversionSettings.depth_model`
(`--depth-model`) from the registry `DEPTH_MODELS`. Everything after it sees only `DepthFrames`: the
depth of the run's frames in frame order and its per-frame statistics. A source has `stages` (progress
bar and resume names), `model_kinds` (what it may load; it loads them only when a stage of it really
runs, so a finished stage loads nothing), `key(plan, models)` (what its kept result depends on) and
`open(plan, reader, store, models, reporter)` (its depth, computed where the store lacks it, always
read back from the store). Scenes and their parts wrap a source (scenes.AlignedSceneDepth,
scenes.PartOfScene); they do not subclass the conversion.

Adding a depth model: a library module that gives raw depth in frame order (larger = nearer) with a
carry state between windows implements `DepthStream` (feed, finish, state, restore); a
`StreamedDepthSource` subclass with a `name`, `model_kinds`, `identity` (settings and weights its depth
depends on) and `stream` (a new run of the model), decorated with `@register_depth_model`, makes it a
choice of the command line, the node and Ray. The engine keeps the stream's raw float32 depth per piece
with its state after the piece, so a killed run resumes where it stopped, and min-max normalises the
depth over the run (or scene). A model that needs its own passes (as DepthCrafter) subclasses
`DepthSource` itself. Registered: depthcrafter (sources.py), video-depth-anything and depth-anything-v2
(depth_models.py: how each fits the run's normalisation, and the model families whose size the face picks).
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
from . import depth_models  # noqa: E402,F401 (registers Video Depth Anything and Depth Anything V2)

__all__ = ["DEFAULT_DEPTH_MODEL", "DEPTH_MODELS", "OPTION_NAMES", "OUTPUT_KINDS", "STREAM_COLOR_MODES", "Conversion",
           "ConversionJob", "ConversionResult", "ConversionSettings", "DepthSource", "DepthStream", "LoadedModels", "Models",
           "OutputSettings", "Plan", "Reporter", "WorkStore", "convert", "depth_model", "finish_outputs",
           "plan_conversion", "register_depth_model", "StreamedDepthSource", "work_key"]
