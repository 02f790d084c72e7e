"""Runs a shipped UI-format workflow the way ComfyUI's executor does, without ComfyUI.

Our nodes run as they are (from NODE_CLASS_MAPPINGS). The core and VideoHelperSuite video
nodes the workflows use are stood in for by small functions over stereo_core.video_io with
the same inputs and outputs (fps, audio, filename prefixes), so the graph, its links and
its saved widget values are exercised end to end. A real ComfyUI run is in
test_workflows_real_comfy.py, where one is available.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from build_workflows_import import FRONTEND_ONLY, definition, read_widgets
from stereo_core.photos import load_photo
from stereo_core.video_io import read_video, write_video


@dataclass
class VideoFile:  # core VIDEO of a file (Load Video's VideoFromFile): read only when asked
    path: Path

    def get_stream_source(self) -> str:
        return str(self.path)


@dataclass
class VideoComponents:  # core VIDEO made of frames (Create Video's VideoFromComponents)
    images: object
    fps: float
    audio: Path | None


class StandIns:
    """Core and VHS video nodes: inputs by name, outputs in the node's output order."""

    def __init__(self, input_dir: Path, output_dir: Path):
        self.input_dir, self.output_dir = input_dir, output_dir
        self.saved: list[Path] = []

    def _save(self, images, fps, audio, prefix: str) -> tuple:
        path = self.output_dir / f"{prefix}_{len(self.saved) + 1:05d}_.mp4"
        self.saved.append(write_video(path, images, fps, audio_from=audio))
        return ()

    def LoadImage(self, image):
        # As core Load Image: EXIF orientation applied, RGB in 0..1, one frame, and a mask (from alpha; none here).
        pixels = load_photo(self.input_dir / image).pixels
        return pixels, torch.zeros(pixels.shape[:3])

    def LoadVideo(self, file):
        return (VideoFile(self.input_dir / file),)

    def GetVideoComponents(self, video):
        if isinstance(video, VideoComponents):
            return video.images, video.audio, video.fps
        decoded = read_video(video.get_stream_source())
        return decoded.frames, decoded.path, float(decoded.fps)

    def CreateVideo(self, images, fps, audio=None):
        return (VideoComponents(images, fps, audio),)

    def SaveVideo(self, video, filename_prefix, format, codec):
        assert (format, codec) == ("auto", "auto")
        if isinstance(video, VideoComponents):
            return self._save(video.images, video.fps, video.audio, filename_prefix)
        # A file's VIDEO (ours included: any object with get_stream_source) is copied as it is, as Save Video
        # copies its streams.
        path = self.output_dir / f"{filename_prefix}_{len(self.saved) + 1:05d}_.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.saved.append(Path(shutil.copyfile(video.get_stream_source(), path)))
        return ()

    # Preview nodes show rather than save: like ComfyUI's, they return {"ui": ...} (the images themselves here,
    # where ComfyUI writes them to its temp folder and returns their names).
    def PreviewImage(self, images):
        return {"ui": {"images": images}, "result": ()}

    def PreviewAny(self, source):
        text = source if isinstance(source, str) else json.dumps(source, indent=4)
        return {"ui": {"text": (text,)}, "result": ()}

    def VHS_LoadVideo(self, video, force_rate, custom_width, custom_height, frame_load_cap, skip_first_frames,
                      select_every_nth, format="None", meta_batch=None, vae=None):
        # Shipped workflows load the whole clip unchanged; the stand-in supports exactly that.
        assert (force_rate, custom_width, custom_height, frame_load_cap, skip_first_frames, select_every_nth,
                format) == (0, 0, 0, 0, 0, 1, "None")
        loaded = read_video(self.input_dir / video)
        frames = loaded.frames
        info = {"loaded_fps": float(loaded.fps), "loaded_frame_count": frames.shape[0],
                "loaded_width": frames.shape[2], "loaded_height": frames.shape[1]}
        return frames, frames.shape[0], loaded.path, info

    def VHS_VideoInfoLoaded(self, video_info):
        return (video_info["loaded_fps"], video_info["loaded_frame_count"],
                video_info["loaded_frame_count"] / video_info["loaded_fps"], video_info["loaded_width"],
                video_info["loaded_height"])

    def VHS_VideoCombine(self, images, frame_rate, loop_count, filename_prefix, format, pingpong, save_output,
                         audio=None, meta_batch=None, vae=None):
        assert format == "video/h264-mp4" and not pingpong and loop_count == 0
        self._save(images, frame_rate, audio, filename_prefix)
        return ((save_output, [str(self.saved[-1])]),)  # VHS_FILENAMES


def run_workflow(path: Path, node_classes: dict, input_dir: Path, output_dir: Path,
                 shown: dict | None = None) -> list[Path]:
    """Execute every node of the workflow (in dependency order); returns the saved video files.
    shown: receives what each node shows in the UI (its "ui" dict), by the node's title (or type)."""
    graph = json.loads(Path(path).read_text())
    nodes = {node["id"]: node for node in graph["nodes"] if node["type"] not in FRONTEND_ONLY}
    links = {link[0]: (link[1], link[2]) for link in graph["links"]}
    stand_ins = StandIns(input_dir, output_dir)
    results: dict[int, tuple] = {}

    def execute(node_id: int) -> tuple:
        if node_id in results:
            return results[node_id]
        node = nodes[node_id]
        arguments, _ = read_widgets(node)
        for entry in node["inputs"]:
            if entry.get("link") is not None:
                source, slot = links[entry["link"]]
                arguments[entry["name"]] = execute(source)[slot]
        if node["type"] in node_classes:
            cls = node_classes[node["type"]]
            outputs = getattr(cls(), cls.FUNCTION)(**arguments)
        else:
            outputs = getattr(stand_ins, node["type"])(**arguments)
        if isinstance(outputs, dict):  # {"ui": what the node shows, "result": its outputs}
            if shown is not None and "ui" in outputs:
                shown[node.get("title", node["type"])] = outputs["ui"]
            outputs = outputs.get("result", ())
        expected = len(definition(node["type"])[1])
        assert len(outputs) == expected, f"{node['type']} returned {len(outputs)} outputs, declares {expected}"
        results[node_id] = outputs
        return outputs

    for node_id in sorted(nodes, key=lambda i: nodes[i].get("order", 0)):
        execute(node_id)
    return stand_ins.saved


def api_prompt(path: Path, overrides: dict | None = None) -> dict:
    """The API-format prompt a shipped UI workflow queues (widget values by name, links as [node id, slot]),
    as the frontend's graphToPrompt makes it for these plain graphs. overrides: {node type: {input: value}}."""
    graph = json.loads(Path(path).read_text())
    links = {link[0]: (link[1], link[2]) for link in graph["links"]}
    prompt = {}
    for node in graph["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        inputs, _ = read_widgets(node)
        for entry in node["inputs"]:
            if entry.get("link") is not None:
                source, slot = links[entry["link"]]
                inputs[entry["name"]] = [str(source), slot]
        inputs.update((overrides or {}).get(node["type"], {}))
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt
