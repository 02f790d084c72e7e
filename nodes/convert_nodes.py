"""Stereo Convert Video: a whole video file in, a stereo video file out, streamed through the engine.

Frames never become an IMAGE batch: the node reads the file behind core Load Video's VIDEO, the
streaming engine (stereo_core.engine) converts it chunk by chunk in bounded memory, and the node
hands on the written file as a VIDEO. Finished pieces are kept in a work folder under ComfyUI's
output folder, keyed by the input files, so a cancelled or crashed run queued again carries on
from the last finished chunk and writes the identical video.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from ..stereo_core import model_files
from ..stereo_core.anaglyph import MODES as ANAGLYPH_MODES
from ..stereo_core.convergence import AutoConvergence
from ..stereo_core.depth_anything_v2 import DEFAULT_INPUT_SIZE, EmaSettings
from ..stereo_core.depthcrafter import DepthCrafterSettings
from ..stereo_core.engine import (
    STREAM_COLOR_MODES,
    ConversionJob,
    ConversionSettings,
    LoadedModels,
    OutputSettings,
    Reporter,
    convert,
    plan_conversion,
    work_key,
)
from ..stereo_core.errors import StereoInputError
from ..stereo_core.files import os_errors_explained
from ..stereo_core.inpainting import InpaintSettings
from ..stereo_core.layouts import VirtualScreen
from ..stereo_core.presets import PRESETS, describe, preset_values
from ..stereo_core.spatial_media import filename_tag
from .comfy_adapter import (
    Progress,
    compute_device,
    next_file_stem,
    output_directory,
    temp_directory,
    video_file,
    video_from_file,
    work_directory,
)
from .common import CATEGORY
from .depth_anything_v2_nodes import DAV2_MODEL_TYPE
from .video_depth_anything_nodes import VDA_MODEL_TYPE
from .depth_nodes import DepthCrafterDepth
from .geometry_nodes import DISPARITY_INPUTS, SBSCompose, disparity_settings
from .inpaint_nodes import StereoCrafterInpaintChunked
from .model_nodes import MODEL_TYPES

log = logging.getLogger(__name__)
_OUTPUT, _EMA = OutputSettings(), EmaSettings()

# The depth loaders 'depth_model' takes (one input of their types joined: ComfyUI's union of types).
DEPTH_MODEL_TYPES = (MODEL_TYPES[model_files.DEPTHCRAFTER], VDA_MODEL_TYPE, DAV2_MODEL_TYPE)

# Settings shared with the per-stage nodes, under this node's names (both nodes have `steps`, `guidance`
# and `overlap`): {this node's input: (the other node's input, the settings field)}.
DEPTH_SETTINGS = {f"depth_{name}": (name, name) for name in
                  ("steps", "guidance", "window", "overlap", "noise_aug", "max_res", "encode_chunk", "decode_chunk")}
INPAINT_SETTINGS = {
    "inpaint_steps": ("steps", "steps"),
    "inpaint_guidance": ("guidance", "max_guidance"),
    "inpaint_min_guidance": ("min_guidance", "min_guidance"),
    "frames_chunk": ("frames_chunk", "frames_chunk"),
    "inpaint_overlap": ("overlap", "overlap"),
    "tile_num": ("tile_num", "tile_num"),
    "tile_blend": ("tile_blend", "tile_blend"),
    "color_match": ("color_match", "color_match"),
    "keep_unmasked": ("keep_unmasked", "keep_unmasked"),
    "inpaint_max_res": ("max_res", "inpaint_max_res"),
}

# How the engine's messages name options to a user of this node.
OPTION_NAMES = {"max_frames": "'max_frames'", "work_dir": "ComfyUI's --output-directory"}
# What to connect for each model the engine may need, in this node's words.
MODEL_INPUTS = {
    model_files.DEPTHCRAFTER: "Stereo Convert Video needs depth: connect a depth video to 'depth_video', or a "
                              "depth model loader (DepthCrafter, Video Depth Anything or Depth Anything V2) to "
                              "'depth_model'.",
}
# The node's names of preset settings where they differ from the preset table's (both guidance ends).
PRESET_NAMES = {"inpaint_guidance": ("inpaint_guidance", "inpaint_min_guidance")}
NO_PRESET = "none"

# Output slots, for telling whether the anaglyph is wanted downstream.
ANAGLYPH_SLOTS = (2, 3)


def _borrowed(node, mapping: dict, note: str) -> dict:
    """Another node's input definitions under this node's names, with `note` added to each tooltip."""
    spec = node.INPUT_TYPES()["required"]
    inputs = {}
    for name, (theirs, _) in mapping.items():
        kind, options = spec[theirs]
        inputs[name] = (kind, {**options, "tooltip": f"{options['tooltip']} {note}"})
    return inputs


def _inpaint_inputs() -> dict:
    inputs = _borrowed(StereoCrafterInpaintChunked, INPAINT_SETTINGS, "(Inpainting: used only with a StereoCrafter "
                                                                      "model.)")
    # Matching the whole clip's colours at once is not streamable; the engine offers the other modes.
    options = inputs["color_match"][1]
    inputs["color_match"] = (list(STREAM_COLOR_MODES), {**options, "tooltip": options["tooltip"].replace(
        ", once for the clip", "")})
    return inputs


def _settings(cls, mapping: dict, values: dict):
    return cls(**{field: values[name] for name, (_, field) in mapping.items()})


class ComfyReporter(Reporter):
    """The engine's stages (the plan's, in the order they run) as one ComfyUI progress bar over frames:
    stage after stage, each `frames` long; a stage not announced still counts, at the end.

    Every tick also honours ComfyUI's Cancel (see Progress), between chunks.
    """

    def __init__(self, stages: tuple[str, ...]):
        self.stages = list(stages)
        self.frames = 1  # every stage counts the run's frames; known when the first one starts
        self.progress = Progress(len(self.stages))

    @contextmanager
    def bar(self, name: str, total: int):
        if name not in self.stages:
            self.stages.append(name)
        index = self.stages.index(name)
        self.frames = max(1, total)

        def update(done: int, total: int) -> None:
            share = self.frames * min(done, total) // max(1, total)
            self.progress(index * self.frames + share, len(self.stages) * self.frames)

        update(0, total)  # stages before this one are done (or were finished by an earlier run)
        yield update

    def notice(self, message: str) -> None:
        log.info("Stereo Convert Video: %s", message)


class StereoConvertVideo:
    DESCRIPTION = (
        "Converts a whole video file to stereo 3D without loading it into memory: frames stream from the file "
        "through depth (a given depth video, or the depth model connected: DepthCrafter, Video Depth Anything or "
        "Depth Anything V2), the warp and StereoCrafter inpainting (without a "
        "StereoCrafter model the holes stay black: a fast preview) into an H.264 file with the source's frame "
        "rate, timing and audio. Memory stays the same however long the video. Finished pieces are kept in "
        "output/.stereo3d-work until the file is written, so after Cancel or a crash, queueing the same graph "
        "again carries on from the last finished chunk and gives the identical video. Connect its VIDEO to Save "
        "Video (it copies the streams, no re-encoding) or Preview Video."
    )
    CATEGORY = CATEGORY
    FUNCTION = "convert"
    OUTPUT_NODE = True
    RETURN_TYPES = ("VIDEO", "STRING", "VIDEO", "STRING")
    RETURN_NAMES = ("stereo", "stereo_path", "anaglyph", "anaglyph_path")
    OUTPUT_TOOLTIPS = (
        "The stereo video (the file this node wrote), for Save Video or Preview Video.",
        "Full path of the stereo video file.",
        "The red/cyan anaglyph video; only when 'anaglyph' is not off.",
        "Full path of the anaglyph file ('' when anaglyph is off).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        sbs = SBSCompose.INPUT_TYPES()["required"]
        depth_seed = DepthCrafterDepth.INPUT_TYPES()["required"]["seed"]
        return {
            "required": {
                "video": ("VIDEO", {"tooltip": "The 2D video: core Load Video's VIDEO (any length; it is read from "
                                               "its file chunk by chunk, never decoded whole). Frame timing, "
                                               "rotation and audio are kept."}),
                "filename_prefix": ("STRING", {
                    "default": "stereo3d/convert",
                    "tooltip": "Name of the written file, inside ComfyUI's output folder (or temp folder, see "
                               "save_output), numbered as Save Video numbers its files. The stereo file gets the "
                               "layout's tag that headset players read (e.g. _LR), the anaglyph '_anaglyph'. "
                               "Existing files, inputs included, are never overwritten."}),
                "save_output": ("BOOLEAN", {
                    "default": True,
                    "tooltip": "On: keep the file in ComfyUI's output folder. Off: write it to the temp folder "
                               "(emptied when ComfyUI starts), e.g. when Save Video keeps the result."}),
                "preset": ([NO_PRESET, *PRESETS], {
                    "default": NO_PRESET,
                    "tooltip": "A group of settings; an input changed from its default wins over the preset. "
                               + " ".join(f"{name}: {describe(name)}." for name in PRESETS)
                               + " fast: much less GPU work (see the README, 'Presets')."}),
                **DISPARITY_INPUTS,
                "layout": sbs["layout"],
                "swap_eyes": sbs["swap_eyes"],
                "anaglyph": (["off", *ANAGLYPH_MODES], {
                    "default": "off",
                    "tooltip": "Also write a red/cyan anaglyph video (outputs 'anaglyph' and 'anaglyph_path'). "
                               "color: the reference; half-color: less rivalry on red; gray: least ghosting; "
                               "dubois: best overall; wimmer: almost no rivalry."}),
                "seed": (depth_seed[0], {**depth_seed[1], "tooltip": "Noise seed of DepthCrafter and the "
                                         "inpainting; the same seed and settings give the same video."}),
                "max_frames": ("INT", {"default": 0, "min": 0, "max": 10_000_000,
                                       "tooltip": "Convert only the first N frames (for trying settings); 0 = the "
                                                  "whole video."}),
                **_inpaint_inputs(),
                **_borrowed(DepthCrafterDepth, DEPTH_SETTINGS, "(DepthCrafter: used only without a depth_video.)"),
                "crf": ("INT", {"default": _OUTPUT.crf, "min": 0, "max": 51,
                                "tooltip": "H.264 quality: lower is better and larger (16 is visually lossless "
                                           "for most video; 18-23 for smaller files)."}),
                "segment_frames": ("INT", {"default": _OUTPUT.segment_frames, "min": 1, "max": 100_000,
                                           "tooltip": "Frames per encoded piece, the unit a cancelled run never "
                                                      "redoes once finished (inpainted chunks are kept too). "
                                                      "Each piece starts with a keyframe."}),
            },
            "optional": {
                **SBSCompose.INPUT_TYPES()["optional"],
                "auto_convergence": ("FLOAT", {
                    "default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
                    "tooltip": "Move the screen plane towards the main subject (its centre-weighted median depth), "
                               "smoothed over about a second: 0 = off (convergence everywhere), 1 = the subject on "
                               "the screen plane. convergence is where the plane starts from."}),
                "depth_input_size": ("INT", {
                    "default": DEFAULT_INPUT_SIZE, "min": 14, "max": 2044, "step": 14,
                    "tooltip": "Working size of Video Depth Anything and Depth Anything V2 (multiples of 14): 518 is "
                               "what they were trained at; larger gives finer detail, slower. (Used only with "
                               "those models.)"}),
                "depth_ema_buffer": ("INT", {
                    "default": _EMA.buffer, "min": 1, "max": 1000,
                    "tooltip": "Depth Anything V2 (per frame): each frame's depth is scaled by the extremes over "
                               "itself and the next depth_ema_buffer-1 frames (as iw3's --ema-normalize), so the "
                               "depth does not pump. (Used only with Depth Anything V2.)"}),
                "depth_ema_decay": ("FLOAT", {
                    "default": _EMA.decay, "min": 0.0, "max": 0.999, "step": 0.01,
                    "tooltip": "Depth Anything V2: smoothing of those extremes over time (0 = none; larger follows "
                               "changes of the depth range more slowly). (Used only with Depth Anything V2.)"}),
                "depth_video": ("VIDEO", {"tooltip": "A depth video of the same clip (one frame per frame, grey, "
                                                     "white = near, any size: it is resized), e.g. from another "
                                                     "depth node pack or a file, through Load Video. No depth "
                                                     "model is then run."}),
                "depth_model": (",".join(DEPTH_MODEL_TYPES), {
                    "tooltip": "The depth model, needed when there is no depth_video: DepthCrafter Model Loader (the "
                               "reference, slow), Video Depth Anything Model Loader (consistent video depth, far "
                               "faster; min-max over the clip) or Depth Anything V2 Model Loader (per frame, "
                               "temporally normalised with depth_ema_buffer/decay; the fastest)."}),
                "stereocrafter_model": (MODEL_TYPES[model_files.STEREOCRAFTER], {
                    "tooltip": "From StereoCrafter Model Loader: fills the holes of the right eye. Without it "
                               "the holes stay black (a fast preview of the 3D effect)."}),
            },
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"},
        }

    @os_errors_explained()  # a full disk or a folder without permission: one line, not a traceback
    def convert(self, video, filename_prefix, save_output, layout, swap_eyes, anaglyph, seed, max_frames, crf,
                segment_frames, depth_video=None, depth_model=None, stereocrafter_model=None,
                vr180_screen_fov=VirtualScreen.fov, vr180_screen_distance=VirtualScreen.distance,
                vr180_eye_size=VirtualScreen.eye_size, auto_convergence=0.0, preset=NO_PRESET,
                depth_input_size=DEFAULT_INPUT_SIZE, depth_ema_buffer=_EMA.buffer, depth_ema_decay=_EMA.decay,
                prompt=None, unique_id=None, **values):
        if preset != NO_PRESET:
            values = with_preset(self.INPUT_TYPES()["required"], values, preset)
        if anaglyph == "off" and _wired(prompt, unique_id, ANAGLYPH_SLOTS):
            raise StereoInputError("The 'anaglyph' output is connected but 'anaglyph' is off: choose an anaglyph "
                                   "mode (e.g. color), or disconnect that output.")
        # Workflows saved before 'depth_model' took every depth loader name the DepthCrafter one's input so.
        depth_model = depth_model if depth_model is not None else values.pop("depthcrafter_model", None)
        depth_kind = depth_model_kind(depth_model)
        settings = ConversionSettings(
            depth_model=depth_kind or model_files.DEPTHCRAFTER,
            depth_input_size=depth_input_size,
            depth_ema=EmaSettings(buffer=depth_ema_buffer, decay=depth_ema_decay),
            depth=_settings(DepthCrafterSettings, DEPTH_SETTINGS, values),
            disparity=disparity_settings(**{name: values[name] for name in DISPARITY_INPUTS}),
            inpaint=None if stereocrafter_model is None else _settings(InpaintSettings, INPAINT_SETTINGS, values),
            output=OutputSettings(layout=layout, swap_eyes=swap_eyes, anaglyph="color" if anaglyph == "off" else
                                  anaglyph, crf=crf, segment_frames=segment_frames, screen=VirtualScreen(
                                      fov=vr180_screen_fov, distance=vr180_screen_distance, eye_size=vr180_eye_size)),
            seed=seed,
            auto_convergence=AutoConvergence(strength=auto_convergence) if auto_convergence > 0 else None,
        )
        settings.check()  # the settings alone, before any file is touched (the frame size comes with the plan)

        work_root = work_directory()
        source = video_file(video, "video", work_root / "sources")
        depth_path = (video_file(depth_video, "depth_video", work_root / "sources") if depth_video is not None
                      else None)

        folder = output_directory() if save_output else temp_directory()
        target_folder, stem = next_file_stem(folder, filename_prefix)
        outputs = {"stereo": target_folder / f"{stem}{filename_tag(layout, swap_eyes) or '_'}.mp4"}
        if anaglyph != "off":
            outputs["anaglyph"] = target_folder / f"{stem}_anaglyph.mp4"
        _refuse_overwriting(outputs, {"video": source, "depth_video": depth_path})

        # One work folder per input (and frame count): another setting redoes only the stages it changes
        # (a new strength keeps DepthCrafter's work), and a run queued again finds its pieces.
        work_dir = work_root / work_key(source, depth_path, max_frames)
        job = ConversionJob(source=source, outputs=outputs, work_dir=work_dir, depth_video=depth_path,
                            max_frames=max_frames or None, option_names=OPTION_NAMES,
                            wait=True)  # another ComfyUI on this video: queue behind it (Cancel still works)
        plan = plan_conversion(job, settings)
        models = LoadedModels({depth_kind: depth_model, model_files.STEREOCRAFTER: stereocrafter_model})
        models.require(plan.model_kinds, MODEL_INPUTS)
        if preset != NO_PRESET and depth_kind in plan.model_kinds:  # the connected depth model is used
            check_preset_depth(preset, depth_kind)
        for kind in sorted(set(models.models) - set(plan.model_kinds)):
            log.info("Stereo Convert Video: the connected %s model is not used by this conversion.",
                     model_files.TITLES[kind])
        log.info("Stereo Convert Video: %s -> %s", source, outputs["stereo"])
        convert(job, settings, models, device=compute_device(), reporter=ComfyReporter(plan.stages), plan=plan)
        for path in {source, depth_path} - {None}:
            if path.parent == work_root / "sources":  # a copy of an in-memory video, no longer needed
                path.unlink(missing_ok=True)
        for empty in (work_root / "sources", work_root):  # kept only while some run has unfinished work
            try:
                empty.rmdir()
            except OSError:
                pass
        log.info("Stereo Convert Video: wrote %s (%d frames)", outputs["stereo"], plan.frames)

        subfolder = target_folder.resolve().relative_to(folder.resolve()).as_posix()
        preview = {"filename": outputs["stereo"].name, "subfolder": "" if subfolder == "." else subfolder,
                   "type": "output" if save_output else "temp"}
        anaglyph_path = outputs.get("anaglyph")
        result = (video_from_file(outputs["stereo"]), str(outputs["stereo"]),
                  None if anaglyph_path is None else video_from_file(anaglyph_path),
                  "" if anaglyph_path is None else str(anaglyph_path))
        return {"ui": {"images": [preview], "animated": (True,)}, "result": result}


def depth_model_kind(model) -> str | None:
    """The engine's name of a connected depth model (a --depth-model name: DepthCrafter's kind, or the family
    of a sized model), or None when none is connected."""
    if model is None:
        return None
    kind = getattr(model, "kind", None)
    family = next((name for name, kinds in model_files.FAMILIES.items() if kind in kinds), None)
    if family is None and kind != model_files.DEPTHCRAFTER:
        got = model_files.TITLES.get(kind, type(model).__name__)
        raise StereoInputError(f"'depth_model' takes a depth model loader (DepthCrafter, Video Depth Anything or "
                               f"Depth Anything V2), but a {got} model is connected.")
    return family or kind


def with_preset(inputs: dict, values: dict, preset: str) -> dict:
    """The node's setting values with the preset's applied to those still at their default (a widget the
    user changed is an explicit choice, and wins). The preset's depth model is the loader connected to
    'depth_model' here (check_preset_depth)."""
    chosen = preset_values(preset, PRESET_NAMES, values.__contains__, ignored=("depth_model",))
    return {**values, **{name: value for name, value in chosen.items()
                         if values[name] == inputs[name][1].get("default")}}


def check_preset_depth(preset: str, depth_kind: str | None) -> None:
    """Refuse a depth loader other than the preset's (the node cannot swap the model connected)."""
    wanted = PRESETS[preset].get("depth_model")
    if wanted is not None and depth_kind != wanted:
        raise StereoInputError(
            f"The '{preset}' preset uses {model_files.TITLES[wanted]} depth, but a {model_files.TITLES[depth_kind]} "
            f"model is connected to 'depth_model': connect the {model_files.TITLES[wanted]} Model Loader there, or "
            f"choose preset 'none' to keep the model connected.")


def _wired(prompt, unique_id, slots) -> bool:
    """Whether any node of the queued prompt reads one of this node's output `slots`."""
    if not prompt or unique_id is None:
        return False
    for node in prompt.values():
        for value in (node.get("inputs") or {}).values():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) == str(unique_id) and value[1] in slots:
                return True
    return False


def _refuse_overwriting(outputs: dict[str, Path], inputs: dict[str, Path | None]) -> None:
    for kind, path in outputs.items():
        for name, source in inputs.items():
            if source is not None and path.resolve() == source.resolve():
                raise StereoInputError(f"The {kind} output '{path}' would overwrite the '{name}' file. Choose "
                                       f"another filename_prefix.")
        if path.exists():
            raise StereoInputError(f"'{path}' already exists and is not overwritten. Choose another filename_prefix.")

