"""The streaming depth models as engine sources: Video Depth Anything and Depth Anything V2.

Each is a `StreamedDepthSource` (engine/sources.py): the engine feeds it the run's frames a piece at a
time, keeps what comes out per piece with the stream's state, and min-max normalises the kept depth over
the run (the scene, with --split-scenes, where each scene is a run of its own).

- Video Depth Anything gives raw relative inverse depth, consistent over the clip by its own windows and
  alignment; the run's min-max normalisation is exactly "min-max over the clip (over the scene)".
- Depth Anything V2 gives each frame's depth on the frame's own scale, so a min-max over the run of raw
  values would keep every frame's jumps in scale (the depth pumps). Its stream therefore hands the engine
  the temporally normalised depth (depth_anything_v2.TemporalMinMax, iw3's --ema-normalize) as its depth:
  0..1 per frame from a smoothed look-ahead range. The run's min-max over that is an increasing affine map
  close to identity (it stretches the run to exactly 0..1, so the nearest point gets the full strength), and
  the seam stays one normalisation for every source. The EMA restarts where a run starts: at every scene
  with --split-scenes, and at every part of a long scene (whose depth the scene then aligns).

The model kinds these sources ask the face for are families (model_files.FAMILIES): the face decides the
size (the command line's --depth-model-size, the loader node's folder).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Callable

import torch

from .. import model_files
from ..errors import StereoInputError
from .depth import DepthStream
from .sources import StreamedDepthSource, register_depth_model

if TYPE_CHECKING:
    from .pipeline import ConversionSettings, Models, Plan

MULTIPLE = 14  # both models work on multiples of their ViT's 14-pixel patches
_JSON = "json"


def pack_state(state: dict) -> dict[str, torch.Tensor]:
    """A library stream's state (nested dicts and lists of tensors, numbers, strings, None) as the flat
    tensors the store keeps: every tensor under its path, everything else as JSON bytes."""
    tensors: dict[str, torch.Tensor] = {}

    def strip(value, path: str):
        if isinstance(value, torch.Tensor):
            tensors[f"t.{path}"] = value.detach().cpu().clone()
            return {"tensor": path}
        if isinstance(value, dict):
            return {"dict": {str(key): strip(item, f"{path}.{key}") for key, item in value.items()}}
        if isinstance(value, (list, tuple)):
            return {"list": [strip(item, f"{path}.{index}") for index, item in enumerate(value)]}
        return {"value": value}

    skeleton = json.dumps(strip(state, "")).encode()
    tensors[_JSON] = torch.frombuffer(bytearray(skeleton), dtype=torch.uint8).clone()
    return tensors


def unpack_state(tensors: dict[str, torch.Tensor]) -> dict:
    """The state pack_state packed."""
    if _JSON not in tensors:
        raise StereoInputError("The kept depth state is not one this version wrote; start the depth again.")

    def build(node):
        if "tensor" in node:
            return tensors[f"t.{node['tensor']}"]
        if "dict" in node:
            return {key: build(item) for key, item in node["dict"].items()}
        if "list" in node:
            return [build(item) for item in node["list"]]
        return node["value"]

    return build(json.loads(bytes(tensors[_JSON].tolist()).decode()))


class LibraryStream(DepthStream):
    """A library's depth stream (push/finish/state/restore) as the engine's DepthStream; `around` wraps each
    call that runs the model (e.g. the model's placement on the compute device)."""

    def __init__(self, stream, around: Callable | None = None):
        self.stream, self.around = stream, around

    def _run(self, call, *args) -> torch.Tensor:
        if self.around is None:
            return call(*args)
        with self.around():
            return call(*args)

    def feed(self, frames: torch.Tensor) -> torch.Tensor:
        return self._run(self.stream.push, frames)

    def finish(self) -> torch.Tensor:
        return self._run(self.stream.finish)

    def state(self) -> dict[str, torch.Tensor]:
        return pack_state(self.stream.state())

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        self.stream.restore(unpack_state(state))


def check_input_size(settings: "ConversionSettings") -> None:
    if settings.depth_input_size < MULTIPLE:
        raise StereoInputError(f"The depth input size must be at least {MULTIPLE} (the models round it to multiples "
                               f"of {MULTIPLE}), got {settings.depth_input_size}; 518 is what they were trained at.")


@register_depth_model
class DepthAnythingV2Source(StreamedDepthSource):
    """Depth Anything V2 per frame, temporally normalised (see the module's description)."""

    name = "depth-anything-v2"
    model_kinds = (model_files.DAV2_FAMILY,)

    @classmethod
    def unavailable(cls) -> str | None:
        try:
            from transformers import DepthAnythingForDepthEstimation  # noqa: F401
        except ImportError:
            return "it needs transformers 4.45 or newer (pip install -U transformers)."
        return None

    def check_settings(self, settings: "ConversionSettings") -> None:
        check_input_size(settings)
        settings.depth_ema.check()

    def identity(self, plan: "Plan", models: "Models") -> list:
        settings = plan.settings
        return [settings.depth_input_size, asdict(settings.depth_ema), models.identity(model_files.DAV2_FAMILY)]

    def stream(self, plan: "Plan", models: "Models") -> DepthStream:
        from ..depth_anything_v2 import DepthAnythingV2Stream

        model = models.get(model_files.DAV2_FAMILY)
        return LibraryStream(DepthAnythingV2Stream(model, plan.info.height, plan.info.width,
                                                   plan.settings.depth_input_size, ema=plan.settings.depth_ema))


@register_depth_model
class VideoDepthAnythingSource(StreamedDepthSource):
    """Video Depth Anything's official windowed inference, streamed (video_depth_anything.VideoDepthStream)."""

    name = "video-depth-anything"
    model_kinds = (model_files.VDA_FAMILY,)

    def check_settings(self, settings: "ConversionSettings") -> None:
        check_input_size(settings)

    def identity(self, plan: "Plan", models: "Models") -> list:
        return [plan.settings.depth_input_size, models.identity(model_files.VDA_FAMILY)]

    def stream(self, plan: "Plan", models: "Models") -> DepthStream:
        from ..video_depth_anything import VideoDepthStream

        model = models.get(model_files.VDA_FAMILY)
        stream = VideoDepthStream(model.network, plan.info.height, plan.info.width, plan.settings.depth_input_size,
                                  device=model.device, dtype=model.dtype)
        # The network is on the compute device only while a piece runs (the model's placement policy).
        return LibraryStream(stream, around=lambda: model.placement.use(model.network))


__all__ = ["DepthAnythingV2Source", "VideoDepthAnythingSource", "LibraryStream", "pack_state", "unpack_state"]
