"""Depth sources: where a conversion's depth comes from, behind one interface.

Everything after the depth (warp, inpainting, encoding, comfort figures, auto-convergence) reads only
what a source opens: `DepthFrames`, the depth of the run's frames in frame order with the per-frame
statistics that normalise it. `plan_conversion` picks the run's source once (a given depth video, else
the depth model named by `ConversionSettings.depth_model`); nothing downstream asks which kind it is.

A source says
- `stages`: the names of its progress stages, in the order they run (progress bars, resume lines);
- `model_kinds`: the models it may load (what a face must make available); it loads them only when a
  stage of it really runs, so a finished stage loads nothing (`Models.get` is called lazily);
- `key(plan, models)`: what its stored result depends on (inputs, frame range, settings, weights); a
  new key starts its stage folder afresh;
- `open(plan, reader, store, models, reporter)`: its depth over the plan's frames, computed where the
  store lacks it and read from the store otherwise (an uninterrupted run reads exactly what a resumed
  one reads);
- `depends_on_range`: whether a frame's depth depends on the frames estimated with it (a model's
  windows do, a depth video does not): a long scene's parts then each get their own depth, aligned
  afterwards (engine/scenes.py wraps any source that way).

To add a depth model: a `DepthSource` subclass with a `name`, decorated with `@register_depth_model`.
The command line's `--depth-model` and `ConversionSettings.depth_model` then accept its name.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import TYPE_CHECKING

from .. import model_files
from ..errors import StereoInputError
from ..video_io import FrameReader, VideoInfo, probe_video
from .depth import DEPTH_DECODE, DEPTH_ENCODE, DEPTH_ESTIMATE, DEPTH_STATISTICS, DEPTH_WINDOWS, DepthCrafterFrames
from .depth import DepthFrames, DepthStream, DepthVideoFrames, StreamedDepthFrames
from .store import WorkStore, settings_key, source_identity

if TYPE_CHECKING:  # the pipeline imports this module
    from .pipeline import ConversionJob, ConversionSettings, Models, Plan, Reporter

log = logging.getLogger(__name__)

DEFAULT_DEPTH_MODEL = "depthcrafter"


class DepthSource:
    """One kind of depth (see the module's description)."""

    name: str = ""  # the registry's name of a depth model ("" for sources that are not chosen by name)
    stages: tuple[str, ...] = ()
    model_kinds: tuple[str, ...] = ()
    depends_on_range: bool = True

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this source cannot run here (e.g. a library it needs is missing), or None."""
        return None

    def check_settings(self, settings: "ConversionSettings") -> None:
        """Refuse impossible settings of this source before any work."""

    def key(self, plan: "Plan", models: "Models") -> str:
        raise NotImplementedError

    def open(self, plan: "Plan", reader: FrameReader, store: WorkStore, models: "Models",
             reporter: "Reporter") -> DepthFrames:
        raise NotImplementedError


def run_identity(plan: "Plan") -> dict:
    """What every source's result depends on: the source video and the frames of the run."""
    return {"source": source_identity(plan.info.path), "range": [plan.start, plan.stop]}


# --- the registry of depth models ------------------------------------------------------------------------

DEPTH_MODELS: dict[str, type[DepthSource]] = {}


def register_depth_model(source: type[DepthSource]) -> type[DepthSource]:
    """Make a depth model choosable by its `name` (a class decorator)."""
    DEPTH_MODELS[source.name] = source
    return source


def depth_model(name: str) -> DepthSource:
    """The registered depth model `name`; a clear error for a name that is unknown or cannot run here."""
    if name not in DEPTH_MODELS:
        raise StereoInputError(f"Unknown depth model '{name}'; choose one of: {', '.join(sorted(DEPTH_MODELS))}.")
    reason = DEPTH_MODELS[name].unavailable()
    if reason is not None:
        raise StereoInputError(f"The depth model '{name}' cannot run here: {reason}")
    return DEPTH_MODELS[name]()


# --- the sources ---------------------------------------------------------------------------------------


class DepthVideoSource(DepthSource):
    """A given depth video (grey, white = near), one frame per frame of the source."""

    stages = (DEPTH_STATISTICS,)
    depends_on_range = False

    def __init__(self, info: VideoInfo):
        self.info = info

    @classmethod
    def probe(cls, job: "ConversionJob", info: VideoInfo, stop: int) -> "DepthVideoSource":
        """The job's depth video, checked against the source's frames."""
        depth_info = probe_video(job.depth_video)
        if depth_info.frames < stop:
            raise StereoInputError(
                f"The depth video '{job.depth_video}' has {depth_info.frames} frames but '{job.source}' has "
                f"{info.frames}{f' (using {stop})' if stop < info.frames else ''}: give one depth frame per frame.")
        if job.max_frames is None and depth_info.frames > info.frames:
            raise StereoInputError(
                f"The depth video '{job.depth_video}' has {depth_info.frames} frames but '{job.source}' has only "
                f"{info.frames}: it belongs to another (longer) clip. Use the depth video made from this clip, or "
                f"{job.option('max_frames')} to convert only the start.")
        return cls(depth_info)

    def key(self, plan: "Plan", models: "Models") -> str:
        return settings_key(run_identity(plan), {"depth_video": source_identity(self.info.path)})

    def open(self, plan, reader, store, models, reporter) -> DepthFrames:
        stage = store.stage("depth", self.key(plan, models))
        with reporter.bar(DEPTH_STATISTICS, plan.frames) as bar:
            return DepthVideoFrames(self.info, plan.start, plan.stop, stage, bar)


@register_depth_model
class DepthCrafterSource(DepthSource):
    """DepthCrafter, in passes kept in the store (engine/depth.py: DepthCrafterFrames)."""

    name = "depthcrafter"
    stages = (DEPTH_ENCODE, DEPTH_WINDOWS, DEPTH_DECODE)
    model_kinds = (model_files.DEPTHCRAFTER,)

    def check_settings(self, settings: "ConversionSettings") -> None:
        settings.depth.check()

    def key(self, plan: "Plan", models: "Models") -> str:
        return settings_key(run_identity(plan), asdict(plan.settings.depth), plan.settings.seed,
                            models.identity(model_files.DEPTHCRAFTER))

    def open(self, plan, reader, store, models, reporter) -> DepthFrames:
        stage = store.stage("depth", self.key(plan, models))
        return DepthCrafterFrames(lambda: models.get(model_files.DEPTHCRAFTER), plan.settings.depth, reader,
                                  plan.start, plan.stop, stage, plan.settings.seed, reporter.bar, reporter.notice)




class StreamedDepthSource(DepthSource):
    """A depth model that streams (engine/depth.py: DepthStream): the engine keeps its raw depth per piece
    with the stream's state, so it resumes where it stopped. A model subclasses this with a `name`, its
    `model_kinds`, `identity` (what its result depends on besides the frames) and `stream` (its run over
    the plan's frames), and registers it with @register_depth_model."""

    stages = (DEPTH_ESTIMATE,)

    def identity(self, plan: "Plan", models: "Models") -> list:
        """Settings and weights the depth depends on, JSON-able (e.g. input size, models.identity(kind))."""
        raise NotImplementedError

    def stream(self, plan: "Plan", models: "Models") -> DepthStream:
        """A new run of the model over the plan's frames (loading the model: called only when needed)."""
        raise NotImplementedError

    def key(self, plan: "Plan", models: "Models") -> str:
        return settings_key(run_identity(plan), self.name, self.identity(plan, models))

    def open(self, plan, reader, store, models, reporter) -> DepthFrames:
        stage = store.stage("depth", self.key(plan, models))
        return StreamedDepthFrames(lambda: self.stream(plan, models), reader, plan.start, plan.stop, stage,
                                   reporter.bar, reporter.notice)


__all__ = ["DEFAULT_DEPTH_MODEL", "DEPTH_MODELS", "DepthCrafterSource", "DepthSource", "DepthStream", "DepthVideoSource",
           "StreamedDepthSource", "depth_model", "register_depth_model", "run_identity"]
