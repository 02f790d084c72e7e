"""Command line: 2D video files to stereo 3D, with the same code and defaults as the ComfyUI nodes.

    python -m stereo_core download --models /path/to/models     # once: the model weights
    python -m stereo_core input.mp4 -o output_sbs.mp4 --models /path/to/models

The work runs through the streaming engine (stereo_core.engine): memory stays flat however long
the video, and finished pieces are kept in a work folder beside the output, so running the same
command again after an interruption carries on from the last finished chunk and gives the same video.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.contrib.logging import logging_redirect_tqdm

from . import model_files, photos
from .anaglyph import MODES as ANAGLYPH_MODES
from .convergence import AutoConvergence
from .depth_anything_v2 import DEFAULT_INPUT_SIZE, EmaSettings
from .depthcrafter import DepthCrafterSettings
from .disparity import NORMALIZATIONS, REFERENCE_LOOK, UNITS, DisparitySettings
from .engine import (
    DEFAULT_DEPTH_MODEL,
    DEPTH_MODELS,
    depth_model,
    STREAM_COLOR_MODES,
    ConversionJob,
    ConversionSettings,
    Models,
    OutputSettings,
    Reporter,
    convert,
    plan_conversion,
)
from .engine.scenes import SceneSettings, convert_scenes, require_scenedetect
from .errors import StereoInputError
from .files import os_error_cause, os_error_message
from .inpainting import TILE_BLENDS, InpaintSettings
from .layouts import LAYOUTS, VirtualScreen
from .spatial_media import filename_tag
from .placement import DTYPE_CHOICES, POLICIES, resolve_dtype
from .presets import CLI_NAMES, PRESETS, describe, preset_values
from .video_diffusion import VideoDiffusionModel, load_video_diffusion
from .video_io import CONTAINERS, is_complete_video

log = logging.getLogger("stereo_core")
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
_DEPTH, _INPAINT, _DISPARITY, _OUTPUT = DepthCrafterSettings(), InpaintSettings(), REFERENCE_LOOK, OutputSettings()
_SCREEN, _AUTO, _SCENES = VirtualScreen(), AutoConvergence(), SceneSettings()
_EMA = EmaSettings()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stereo_core",
        description="Turn 2D videos into stereo 3D: DepthCrafter depth, forward warp, StereoCrafter inpainting, "
                    "then side-by-side (or top-bottom) video and an optional red/cyan anaglyph. Audio, frame "
                    "timing and orientation are kept. Long videos stream in bounded memory; an interrupted run "
                    "continues where it stopped when the same command is run again. First fetch the models with: "
                    "python -m stereo_core download --models DIR",
    )
    parser.add_argument("inputs", nargs="+", type=Path,
                        help="Video or image files (PNG, JPEG, WebP, TIFF, BMP), or folders of them.")
    parser.add_argument("-o", "--output", type=Path,
                        help="Output file for one input (.mp4, .mov or .mkv; for an image .png, .jpg, .webp, .mpo, "
                             ".jps ...; a name without an extension is refused) or an existing folder, or a folder "
                             "for several (made if missing) (default: next to each input, named "
                             "<input>_<format>.mp4, or for an image in its format).")
    parser.add_argument("--preset", choices=list(PRESETS),
                        help="A group of settings (options given explicitly win): "
                             + "; ".join(f"{name}: {describe(name)}" for name in PRESETS)
                             + ". fast: much less GPU work (see README, 'Presets').")
    parser.add_argument("--format", choices=LAYOUTS, default=_OUTPUT.layout,
                        help="sbs: full side-by-side (the reference); half-sbs/half-tb keep the source size (3D TVs); "
                             "tb: top-bottom; vr180: each eye a flat screen in a 180-degree frame (headsets).")
    parser.add_argument("--swap-eyes", action="store_true", help="Right eye first (cross-eyed viewing).")
    parser.add_argument("--anaglyph", nargs="?", const="color", choices=ANAGLYPH_MODES,
                        help="Also write <output>_anaglyph (red/cyan; mode defaults to color).")
    parser.add_argument("--save-depth", action="store_true", help="Also write the depth as <output>_depth.")
    parser.add_argument("--filename-tags", action="store_true",
                        help="Name outputs with the layout tag headset players read (<input>_LR.mp4, _TB, _HSBS, "
                             "_HOU, _180_LR; see docs/players.md) instead of <input>_<format>.mp4.")
    parser.add_argument("--no-metadata", action="store_true",
                        help="Do not write the stereo layout into the file (st3d/sv3d/vexu boxes, Matroska StereoMode).")
    parser.add_argument("--comfort-report", action="store_true",
                        help="Also write <output>_comfort.png (disparity over time against comfort limits) and "
                             ".json, and print a one-line verdict.")
    parser.add_argument("--screen-width", type=int, default=1920,
                        help="Screen width in pixels the comfort report's pixel figures are for.")
    parser.add_argument("--recursive", action="store_true",
                        help="Also convert the files in the folders inside input folders; -o mirrors the tree.")
    parser.add_argument("--image-format", choices=photos.CHOSEN_FORMATS,
                        help="File format of stereo images (default: the input's; PNG stays lossless). mpo: the two "
                             "views as two JPEGs in one file (3D cameras, 3D TVs); jps: a side-by-side JPEG with the "
                             "right eye on the left (the format's convention).")
    parser.add_argument("--crf", type=int, default=_OUTPUT.crf, help="H.264 quality (lower = better, larger).")
    parser.add_argument("--segment-frames", type=int, default=_OUTPUT.segment_frames,
                        help="Frames per encoded piece: the unit an interrupted run never redoes once finished "
                             "(each piece starts with a keyframe).")

    group = parser.add_argument_group("depth")
    group.add_argument("--depth-model", choices=sorted(DEPTH_MODELS), default=None,
                       help="The model that estimates the depth (not used with --depth-video): depthcrafter (the "
                            "reference, slow; the default for videos), video-depth-anything (consistent video depth, "
                            "far faster), depth-anything-v2 (per frame, temporally normalised; the fastest; the "
                            "default for photos where its folder is under --models, else depthcrafter).")
    group.add_argument("--depth-model-size", choices=model_files.MODEL_SIZES, default=model_files.MODEL_SIZES[0],
                       help="Size of video-depth-anything or depth-anything-v2 (its folder under --models). Small's "
                            "weights are Apache-2.0; Base's and Large's are CC-BY-NC-4.0 (non-commercial use only).")
    group.add_argument("--depth-input-size", type=int, default=DEFAULT_INPUT_SIZE,
                       help="Working size of video-depth-anything and depth-anything-v2 (rounded to multiples of 14; "
                            "518 is what they were trained at; larger: finer detail, slower).")
    group.add_argument("--depth-ema-buffer", type=int, default=_EMA.buffer, metavar="FRAMES",
                       help="depth-anything-v2: each frame's depth is scaled by the extremes over itself and the next "
                            "FRAMES-1 frames (as iw3's --ema-normalize), so it does not pump.")
    group.add_argument("--depth-ema-decay", type=float, default=_EMA.decay,
                       help="depth-anything-v2: smoothing of those extremes over time (0 = none; larger follows "
                            "changes more slowly).")
    group.add_argument("--depth-video", type=Path,
                       help="Use this depth video (grey, white = near, any size) instead of running a depth model; "
                            "for an image, a depth image (8 or 16 bit grey). With several inputs, a folder holding "
                            "<input name>_depth.mp4 (or _depth.png, .jpg ... for images) for each.")
    group.add_argument("--max-res", type=int, default=_DEPTH.max_res,
                       help="DepthCrafter's working resolution (longest side); 512-768 is much faster.")
    group.add_argument("--depth-steps", type=int, default=_DEPTH.steps)
    group.add_argument("--depth-guidance", type=float, default=_DEPTH.guidance)
    group.add_argument("--depth-window", type=int, default=_DEPTH.window, help="Frames per DepthCrafter window.")
    group.add_argument("--depth-overlap", type=int, default=_DEPTH.overlap)

    group = parser.add_argument_group("3D effect")
    group.add_argument("--max-disp", type=float, default=_DISPARITY.max_disp,
                       help="Strength: parallax of the nearest point, in --disp-unit. The default, 20 reference "
                            "pixels, is the reference's look at any size: 37.5 px at 1920 wide, 6.25 px at 320.")
    group.add_argument("--disp-unit", choices=UNITS, default=_DISPARITY.unit,
                       help="reference: pixels at the reference's working width (1024), scaled to the video's "
                            "width; pixels: of the output; percent: of the width.")
    group.add_argument("--convergence", type=float, default=_DISPARITY.convergence,
                       help="Depth value on the screen plane (0..1).")
    group.add_argument("--invert-depth", action="store_true", help="For depth videos where white means far.")
    group.add_argument("--normalize", choices=NORMALIZATIONS, default=_DISPARITY.normalize)
    group.add_argument("--auto-convergence", type=float, nargs="?", const=1.0, metavar="STRENGTH",
                       help="Move the screen plane to the main subject (centre-weighted median depth), smoothed over "
                            "time; STRENGTH 0..1 (default 1). --convergence is where it starts from.")
    group.add_argument("--convergence-smoothing", type=float, default=_AUTO.smoothing_seconds, metavar="SECONDS",
                       help="Gaussian smoothing of the auto-convergence plane over time (0: one value per clip).")

    group = parser.add_argument_group("vr180 screen")
    group.add_argument("--vr180-fov", type=float, default=_SCREEN.fov,
                       help="Width of the virtual screen as an angle (degrees).")
    group.add_argument("--vr180-distance", type=float, default=_SCREEN.distance,
                       help="Distance of the virtual screen in metres (0 = at infinity).")
    group.add_argument("--vr180-eye-size", type=int, default=_SCREEN.eye_size,
                       help="Pixels per eye (square); 0 = from the source's resolution, at most 2048.")

    group = parser.add_argument_group("inpainting")
    group.add_argument("--no-inpaint", action="store_true",
                       help="Skip StereoCrafter: the right eye keeps black holes (fast preview).")
    group.add_argument("--steps", type=int, default=_INPAINT.steps)
    group.add_argument("--inpaint-guidance", type=float, default=_INPAINT.max_guidance,
                       help="Guidance of every frame (1.01 = the reference; exactly 1.0 halves the UNet work).")
    group.add_argument("--inpaint-max-res", type=int, default=_INPAINT.inpaint_max_res,
                       help="Longest side the inpainting works at (1024 = the reference); larger frames keep the "
                            "full-size warp outside the holes. 0 = inpaint the full frame.")
    group.add_argument("--frames-chunk", type=int, default=_INPAINT.frames_chunk)
    group.add_argument("--overlap", type=int, default=_INPAINT.overlap)
    group.add_argument("--tile-num", type=int, default=_INPAINT.tile_num,
                       help="n x n spatial tiles; raise on out-of-memory at high resolution.")
    group.add_argument("--tile-blend", choices=TILE_BLENDS, default=_INPAINT.tile_blend,
                       help="How tiles are joined: reference (as the official code) or crossfade (smoother corners, "
                            "see docs/reference_comparison.md).")
    group.add_argument("--color-match", choices=STREAM_COLOR_MODES, default=_INPAINT.color_match)

    group = parser.add_argument_group("models and device")
    group.add_argument("--models", type=Path, default=None,
                       help=f"Folder holding {', '.join(model_files.FOLDER_NAMES.values())} (default: "
                            f"${model_files.MODELS_ENV}, else ./models/stereocrafter).")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps ...")
    group.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto")
    group.add_argument("--placement", choices=POLICIES, default="offload",
                       help="offload: each part on the GPU only while used; keep: all on the GPU; sequential: "
                            "layer by layer (smallest cards).")
    group.add_argument("--seed", type=int, default=0)

    group = parser.add_argument_group("scenes and scale-out (see docs/scale.md)")
    group.add_argument("--split-scenes", action="store_true",
                       help="Cut the video at its hard scene cuts (PySceneDetect) and convert each scene on its own: "
                            "depth normalised per scene; scenes can run in parallel (--ray).")
    group.add_argument("--scene-threshold", type=float, default=_SCENES.threshold, metavar="CHANGE",
                       help="Content change that makes a cut (PySceneDetect's content detector; lower: more cuts).")
    group.add_argument("--min-scene-frames", type=int, default=_SCENES.min_scene_frames, metavar="FRAMES",
                       help="No cut closer than this many frames to the previous one.")
    group.add_argument("--scene-part-frames", type=int, default=_SCENES.part_frames, metavar="FRAMES",
                       help="Scenes longer than this are split into parts that run in parallel, their depth aligned "
                            "and cross-faded over --scene-overlap frames (0: never split a scene).")
    group.add_argument("--scene-overlap", type=int, default=_SCENES.part_overlap, metavar="FRAMES",
                       help="Frames of depth two parts of a long scene share.")
    group.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="Run the scenes on Ray workers (implies --split-scenes): without ADDRESS a local Ray "
                            "starts for the run on this machine only; 'auto' or host:port joins a running cluster.")
    group.add_argument("--ray-workers", type=int, metavar="N",
                       help="Ray workers to start (default: one per GPU of the cluster; without GPUs, the CPU cores "
                            "divided by this process's torch thread count).")

    group = parser.add_argument_group("run")
    group.add_argument("--max-frames", type=int, help="Only the first N frames (for trying settings).")
    group.add_argument("--overwrite", action="store_true", help="Redo outputs that already exist.")
    group.add_argument("--work-dir", type=Path,
                       help="Where finished pieces are kept until the output is written (default: beside it).")
    group.add_argument("--keep-work", action="store_true", help="Keep the finished pieces after success.")
    group.add_argument("--quiet", action="store_true", help="Print nothing but errors.")
    group.add_argument("--wait", action="store_true",
                       help="When another run is converting to the same output, wait for it to end (outputs it "
                            "finished are kept) instead of stopping at once.")
    return parser


def with_preset(parser: argparse.ArgumentParser, argv: list[str], args) -> argparse.Namespace:
    """The arguments again with the preset's values as the defaults, so that options given explicitly win."""
    ignored = ("depth_model",) if args.depth_video is not None else ()  # the depth comes from the file
    parser.set_defaults(**preset_values(args.preset, CLI_NAMES, vars(args).__contains__, ignored))
    return parser.parse_args(argv)


def pick_device(choice: str) -> torch.device:
    if choice != "auto":
        try:
            return torch.device(choice)
        except RuntimeError as error:
            raise StereoInputError(f"--device '{choice}' is not a device name (cpu, cuda, cuda:1, mps).") from error
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def models_folder(args) -> Path:
    if args.models is not None:
        return args.models
    roots = model_files.env_model_roots()
    return next((root for root in roots if (root / model_files.FOLDER_NAMES[model_files.SVD]).is_dir()), roots[0])


def check_arguments(args) -> None:
    """Settings that are wrong for any video, refused before anything is read."""
    if args.max_frames is not None and args.max_frames < 1:
        raise StereoInputError(f"--max-frames must be at least 1, got {args.max_frames}.")
    if args.screen_width < 1:
        raise StereoInputError(f"--screen-width must be a number of pixels, got {args.screen_width}.")
    settings_of(args).check()  # what depends on the frame size is checked per video, before any model
    if args.ray is not None and args.ray_workers is not None and args.ray_workers < 1:
        raise StereoInputError(f"--ray-workers must be at least 1, got {args.ray_workers}.")
    scenes = scene_settings_of(args)
    if scenes is not None:
        scenes.check()
        require_scenedetect()


def scene_settings_of(args) -> SceneSettings | None:
    """The scene splitting asked for (--split-scenes, or --ray which runs scenes), else None."""
    if not (args.split_scenes or args.ray is not None):
        return None
    return SceneSettings(threshold=args.scene_threshold, min_scene_frames=args.min_scene_frames,
                         part_frames=args.scene_part_frames, part_overlap=args.scene_overlap)


def settings_of(args) -> ConversionSettings:
    depth = DepthCrafterSettings(steps=args.depth_steps, guidance=args.depth_guidance, window=args.depth_window,
                                 overlap=args.depth_overlap, max_res=args.max_res)
    disparity = DisparitySettings(max_disp=args.max_disp, unit=args.disp_unit, convergence=args.convergence,
                                  invert=args.invert_depth, normalize=args.normalize)
    inpaint = None if args.no_inpaint else InpaintSettings(
        steps=args.steps, frames_chunk=args.frames_chunk, overlap=args.overlap, tile_num=args.tile_num,
        tile_blend=args.tile_blend, color_match=args.color_match, min_guidance=args.inpaint_guidance,
        max_guidance=args.inpaint_guidance, inpaint_max_res=args.inpaint_max_res)
    screen = VirtualScreen(fov=args.vr180_fov, distance=args.vr180_distance, eye_size=args.vr180_eye_size)
    output = OutputSettings(layout=args.format, swap_eyes=args.swap_eyes, anaglyph=args.anaglyph or "color",
                            crf=args.crf, segment_frames=args.segment_frames, screen=screen,
                            metadata=not args.no_metadata)
    auto = None if args.auto_convergence is None else AutoConvergence(
        strength=args.auto_convergence, smoothing_seconds=args.convergence_smoothing)
    return ConversionSettings(depth_model=args.depth_model or DEFAULT_DEPTH_MODEL, depth=depth, disparity=disparity,
                              inpaint=inpaint,
                              output=output, seed=args.seed, auto_convergence=auto,
                              depth_input_size=args.depth_input_size,
                              depth_ema=EmaSettings(buffer=args.depth_ema_buffer, decay=args.depth_ema_decay))


# --- jobs: which files go where, checked before any work ---------------------------------------------


@dataclass
class Job:
    source: Path
    outputs: dict[str, Path]  # "stereo", and "anaglyph" / "depth" when asked for
    depth_video: Path | None = None
    work_dir: Path = field(default=Path("."))
    comfort_report: Path | None = None

    @property
    def output(self) -> Path:
        return self.outputs["stereo"]


# Player tags of every layout, e.g. _LR, _TB, _180_LR (see docs/players.md).
PLAYER_TAGS = tuple(sorted({filename_tag(layout, swap) for layout in LAYOUTS for swap in (False, True)} - {""}))


def _is_our_output(path: Path) -> bool:
    return path.stem.endswith((*(f"_{kind}" for kind in (*LAYOUTS, "anaglyph", "depth")), *PLAYER_TAGS))


def _layout_label(args) -> str:
    """What a default output name ends with: the format, or the tag players read. VR180 always gets its
    tag: some players take "vr180" in a name for fisheye video."""
    tag = filename_tag(args.format, args.swap_eyes)
    if tag and (args.filename_tags or args.format == "vr180"):
        return tag
    return f"_{args.format}"


@dataclass
class Inputs:
    """The files the inputs name, videos and images; anything else in a folder was named and skipped."""

    videos: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    subfolders: dict[Path, Path] = field(default_factory=dict)  # file -> its folder under the input folder

    @property
    def count(self) -> int:
        return len(self.videos) + len(self.images)

    def subfolder(self, source: Path) -> Path:
        """Where under -o the output goes (the input tree mirrored with --recursive)."""
        return self.subfolders.get(source, Path())


def find_inputs(args) -> Inputs:
    found = Inputs()
    for path in args.inputs:
        if path.is_dir():
            _scan_folder(path, path, args, found)
        elif not path.is_file():
            raise StereoInputError(f"Input '{path}' does not exist.")
        else:  # a lone file that is no image is tried as a video (its probe says what is wrong)
            (found.images if photos.is_image(path) else found.videos).append(path)
    if not found.count:
        raise StereoInputError("No video or image files found in the given inputs.")
    return found


def _scan_folder(folder: Path, root: Path, args, found: Inputs) -> None:
    output = args.output.resolve() if args.output is not None else None
    for path in sorted(folder.iterdir()):
        # Hidden names are work folders and partial files; a rerun must not take its own outputs for inputs.
        if path.name.startswith(".") or _is_our_output(path) or path.resolve() == output:
            continue
        if path.is_dir():
            if args.recursive:
                _scan_folder(path, root, args, found)
            else:
                log.warning("Skipped %s: a folder (--recursive converts the folders inside folders too)", path)
            continue
        kind = (found.videos if path.suffix.lower() in VIDEO_SUFFIXES
                else found.images if photos.is_image(path) else None)
        if kind is None:
            log.warning("Skipped %s: not a video or image file", path)
            continue
        kind.append(path)
        found.subfolders[path] = folder.relative_to(root)


def _check_writable(folder: Path, what: str) -> None:
    """Create `folder` and prove a file can be written there, before any work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        reason = os_error_cause(error, folder)
        raise StereoInputError(f"Cannot write the {what} in '{folder}' ({reason}). Choose another place "
                               f"({'-o' if what == 'output' else '--work-dir'}).") from error


def plan_jobs(args, found: Inputs | None = None) -> list[Job]:
    """One job per input video, with its output paths; no output may land on any input or on another output."""
    found = found or find_inputs(args)
    sources = found.videos
    if not sources:
        raise StereoInputError("No video files found in the given inputs.")
    several = found.count > 1
    if several and args.output is not None and args.output.suffix:
        raise StereoInputError(f"With {found.count} inputs, -o must be a folder, not the file '{args.output}'.")
    if not several and args.output is not None and not args.output.suffix and not args.output.is_dir():
        raise StereoInputError(f"-o '{args.output}' has no extension: name the output file with one of "
                               f"{', '.join(sorted(CONTAINERS))} (e.g. '{args.output}.mp4'; for an image .png, .jpg, "
                               f".webp, .mpo or .jps), or create the folder first to write into it.")
    if several and args.depth_video is not None and not args.depth_video.is_dir():
        raise StereoInputError("With several inputs, --depth-video must be a folder of <input name>_depth.mp4 files.")
    jobs = []
    label = _layout_label(args)
    for source in sources:
        name = f"{source.stem}{label}.mp4"
        if args.output is None:
            output = source.with_name(name)
        elif several or args.output.is_dir() or not args.output.suffix:
            output = args.output / found.subfolder(source) / name
        else:
            output = args.output
        if output.suffix.lower() not in CONTAINERS:
            raise StereoInputError(f"Cannot write '{output}': the extension '{output.suffix}' is not supported. Name "
                                   f"the output with one of {', '.join(sorted(CONTAINERS))} (H.264 video).")
        depth = args.depth_video
        if depth is not None and depth.is_dir():
            depth = depth / found.subfolder(source) / f"{source.stem}_depth.mp4"
        if depth is not None and not depth.is_file():
            raise StereoInputError(f"Depth video '{depth}' does not exist.")
        # Flat extras must not carry a stereo tag a player would act on.
        stem = output.stem[:-len(label)] if label in PLAYER_TAGS and output.stem.endswith(label) else output.stem
        outputs = {"stereo": output}
        if args.anaglyph:
            outputs["anaglyph"] = output.with_name(f"{stem}_anaglyph{output.suffix}")
        if args.save_depth:
            outputs["depth"] = output.with_name(f"{stem}_depth{output.suffix}")
        comfort = output.with_name(f"{stem}_comfort.png") if args.comfort_report else None
        work = args.work_dir / output.stem if args.work_dir else output.with_name(f".{output.stem}.work")
        jobs.append(Job(source=source, outputs=outputs, depth_video=depth, work_dir=work, comfort_report=comfort))
    _check_paths(jobs)
    for folder in sorted({path.parent for job in jobs for path in job.outputs.values()}):
        _check_writable(folder, "output")
    for folder in sorted({job.work_dir.parent for job in jobs}):
        _check_writable(folder, "work folder")
    return jobs


def _check_paths(jobs: list[Job]) -> None:
    inputs = {}
    for job in jobs:
        inputs[job.source.resolve()] = f"the input '{job.source}'"
        if job.depth_video is not None:
            inputs[job.depth_video.resolve()] = f"the depth video '{job.depth_video}'"
    written: dict[Path, Path] = {}
    for job in jobs:
        for path in (*job.outputs.values(), *([job.comfort_report] if job.comfort_report else [])):
            target = path.resolve()
            if target in inputs:
                raise StereoInputError(f"The output '{path}' would overwrite {inputs[target]}. Choose another "
                                       f"output name (-o).")
            if target in written:
                raise StereoInputError(f"Two outputs would both be written to '{path}'. Choose distinct names.")
            written[target] = path


# --- still images: their jobs (Job with depth_video = the depth image) ----------------------------------


def _check_photo_format(args, file_format: str | None) -> None:
    """MPO and JPS are stereo formats with a fixed arrangement: refuse layout options they cannot honour."""
    if file_format in photos.STEREO_FORMATS and (args.format != "sbs" or args.swap_eyes):
        raise StereoInputError(f"{file_format.upper()} fixes the arrangement ("
                               + ("two views, left then right" if file_format == "mpo" else
                                  "side by side, right eye first") + "): leave out --format and --swap-eyes.")


def _depth_image(args, found: Inputs, source: Path) -> Path | None:
    depth = args.depth_video
    if depth is None:
        return None
    if depth.is_dir():
        folder = depth / found.subfolder(source)
        candidates = [folder / f"{source.stem}_depth{suffix}" for suffix in photos.IMAGE_SUFFIXES]
        depth = next((path for path in candidates if path.is_file()), None)
        if depth is None:
            raise StereoInputError(f"No depth image for '{source}': expected {folder / source.stem}_depth.png "
                                   f"(or .jpg, .webp, .tif, .bmp).")
    elif not depth.is_file():
        raise StereoInputError(f"Depth image '{depth}' does not exist.")
    elif not photos.is_image(depth):
        raise StereoInputError(f"The depth for the image '{source}' must be a depth image (PNG, JPEG, WebP, TIFF "
                               f"or BMP, grey), not '{depth}'.")
    return depth


def plan_photo_jobs(args, found: Inputs) -> list[Job]:
    """One job per input image: its outputs named as the videos' (the format's or the player tag), in the
    input's file format unless --image-format says otherwise; MPO and JPS outputs are <name>.mpo / .jps."""
    _check_photo_format(args, args.image_format)
    several = found.count > 1
    if several and args.depth_video is not None and not args.depth_video.is_dir():
        raise StereoInputError("With several inputs, --depth-video must be a folder of <input name>_depth files.")
    stereo_format = args.image_format in photos.STEREO_FORMATS
    label = "" if stereo_format else _layout_label(args)
    jobs = []
    for source in found.images:
        suffix = photos.EXTENSIONS[args.image_format] if args.image_format else source.suffix
        if args.output is None:
            output = source.with_name(f"{source.stem}{label}{suffix}")
        elif several or args.output.is_dir() or not args.output.suffix:
            output = args.output / found.subfolder(source) / f"{source.stem}{label}{suffix}"
        else:
            output = args.output
            named = photos.format_of(output)
            if named is None or (args.image_format and named != args.image_format):
                raise StereoInputError(
                    f"Cannot write the image '{output}': name it with the extension of "
                    + (f"--image-format {args.image_format} ({photos.EXTENSIONS[args.image_format]})"
                       if args.image_format else "an image format (.png, .jpg, .webp, .tif, .bmp, .mpo, .jps)")
                    + ".")
        _check_photo_format(args, photos.format_of(output))
        stem = output.stem[:-len(label)] if label in PLAYER_TAGS and output.stem.endswith(label) else output.stem
        extra = ".jpg" if photos.format_of(output) in photos.STEREO_FORMATS else output.suffix
        outputs = {"stereo": output}
        if args.anaglyph:
            outputs["anaglyph"] = output.with_name(f"{stem}_anaglyph{extra}")
        if args.save_depth:
            outputs["depth"] = output.with_name(f"{stem}_depth{extra}")
        jobs.append(Job(source=source, outputs=outputs, depth_video=_depth_image(args, found, source)))
    _check_paths(jobs)
    for folder in sorted({path.parent for job in jobs for path in job.outputs.values()}):
        _check_writable(folder, "output")
    return jobs


def photo_settings_of(args) -> photos.PhotoSettings:
    settings = settings_of(args)
    return photos.PhotoSettings(disparity=settings.disparity, layout=args.format, swap_eyes=args.swap_eyes,
                                screen=settings.output.screen, anaglyph_mode=settings.output.anaglyph)


def photo_depth_kind(args, models: "CommandLineModels") -> str:
    """The depth model of photos: the --depth-model given; else Depth Anything V2 (the natural depth for a
    still image) where its --depth-model-size folder is under --models; else the default model."""
    if args.depth_model is not None:
        return depth_model(args.depth_model).model_kinds[0]
    if model_files.folder_problem(models.folder(model_files.DAV2_FAMILY), models.member(model_files.DAV2_FAMILY)) is None:
        return model_files.DAV2_FAMILY
    return depth_model(DEFAULT_DEPTH_MODEL).model_kinds[0]


def photo_depth_estimator(args, models: "CommandLineModels") -> photos.DepthEstimator:
    """The one place the depth model of photos is chosen (see photo_depth_kind); loaded at its first use."""
    kind = photo_depth_kind(args, models)
    makers = {
        model_files.DEPTHCRAFTER: lambda model: photos.depthcrafter_estimator(model, settings_of(args).depth,
                                                                              args.seed),
        model_files.DAV2_FAMILY: lambda model: photos.depth_anything_v2_estimator(model, args.depth_input_size),
        model_files.VDA_FAMILY: lambda model: photos.video_depth_anything_estimator(model, args.depth_input_size),
    }
    return lambda picture: makers[kind](models.get(kind))(picture)


def _run_photo_jobs(args, jobs: list[Job], models: "CommandLineModels", device, alone: bool) -> int:
    """Convert the images (finished ones skipped); one failing image is reported and the rest go on."""
    settings = photo_settings_of(args)
    estimator = photo_depth_estimator(args, models)
    inpaint = settings_of(args).inpaint

    def inpainter(warped, holes, left):
        model = models.get(model_files.STEREOCRAFTER)
        return photos.stereocrafter_inpainter(model, inpaint, args.seed)(warped, holes, left)

    failures = []
    for number, job in enumerate(jobs, 1):
        photo = photos.PhotoJob(source=job.source, outputs=job.outputs, depth_image=job.depth_video)
        if not args.overwrite and photos.is_finished(photo):
            log.info("%s: already done", job.output)
            continue
        log.info("[%d/%d] %s -> %s", number, len(jobs), job.source, job.output)
        try:
            photos.convert_photo(photo, settings, estimator, None if inpaint is None else inpainter, device)
        except StereoInputError as error:
            if alone:
                raise
            failures.append(job)
            print(f"error: {job.source}: {error}", file=sys.stderr)
    if failures:
        print(f"error: {len(failures)} of {len(jobs)} images failed: "
              + ", ".join(str(job.source) for job in failures), file=sys.stderr)
        return 1
    return 0


# --- models -------------------------------------------------------------------------------------------


class CommandLineModels(Models):
    """The models under --models, loaded once each, and only when a stage needs them. A depth model that
    comes in sizes (model_files.FAMILIES) is the --depth-model-size folder of its family."""

    def __init__(self, args, device: torch.device):
        self.args, self.device = args, device
        self._loaded: dict[str, VideoDiffusionModel] = {}

    def member(self, kind: str) -> str | None:
        """The sized kind (e.g. depth-anything-v2-small) a family `kind` stands for here; None for others."""
        if kind not in model_files.FAMILIES:
            return None
        return model_files.family_member(kind, getattr(self.args, "depth_model_size", model_files.MODEL_SIZES[0]))

    def folders(self, kind: str) -> tuple[Path, Path]:
        """The SVD folder and the `kind` model's folder under --models."""
        root = models_folder(self.args)
        return root / model_files.FOLDER_NAMES[model_files.SVD], root / model_files.FOLDER_NAMES[kind]

    def folder(self, kind: str) -> Path:
        """The folder of a family's model under --models (it needs no SVD parts)."""
        return models_folder(self.args) / model_files.FOLDER_NAMES[self.member(kind)]

    def check(self, kinds: list[str]) -> None:
        """Fail before any work when a model the jobs need is not downloaded (not an hour into a batch)."""
        for kind in kinds:
            member = self.member(kind)
            if member is not None:
                problem = model_files.folder_problem(self.folder(kind), member)
                if problem is not None:
                    raise problem
                continue
            svd_folder, unet_folder = self.folders(kind)
            model_files.check_svd_folder(svd_folder)
            model_files.check_unet_folder(unet_folder, kind)

    def identity(self, kind: str) -> dict:
        dtype = resolve_dtype(self.args.dtype, self.device)
        if self.member(kind) is not None:
            return {"folders": str(self.folder(kind)), "dtype": str(dtype), "device": self.device.type}
        svd_folder, unet_folder = self.folders(kind)
        return {"folders": {"svd": str(svd_folder), "unet": str(unet_folder)}, "dtype": str(dtype),
                "device": self.device.type}

    def get(self, kind: str) -> VideoDiffusionModel:
        if kind in model_files.FAMILIES and kind not in self._loaded:
            folder = self.folder(kind)
            log.info("Loading %s from %s ...", model_files.TITLES[self.member(kind)], folder)
            self._loaded[kind] = DEPTH_LOADERS[kind](folder, dtype=self.args.dtype, policy=self.args.placement,
                                                     device=self.device)
        if kind not in self._loaded:
            svd_folder, unet_folder = self.folders(kind)
            if self.args.quiet:  # here, so that Ray workers loading their own models are quiet too
                quiet_libraries()
            log.info("Loading %s from %s ...", model_files.TITLES[kind], unet_folder)
            self._loaded[kind] = load_video_diffusion(kind, svd_folder, unet_folder, dtype=self.args.dtype,
                                                      policy=self.args.placement, device=self.device)
        return self._loaded[kind]


def _load_depth_anything_v2(folder: Path, **options):
    from .depth_anything_v2 import load_depth_anything_v2

    return load_depth_anything_v2(folder, **options)


def _load_video_depth_anything(folder: Path, **options):
    from .video_depth_anything import load_video_depth_anything

    return load_video_depth_anything(folder, **options)


# How the command line loads each depth-model family's folder (dtype, policy, device as for the others).
DEPTH_LOADERS = {model_files.DAV2_FAMILY: _load_depth_anything_v2, model_files.VDA_FAMILY: _load_video_depth_anything}


# --- progress -----------------------------------------------------------------------------------------


class ConsoleReporter(Reporter):
    """One tqdm bar per stage (frames done, frames per second, time left); notices as log lines."""

    def __init__(self, enabled: bool, prefix: str = ""):
        self.enabled, self.prefix = enabled, prefix

    @contextmanager
    def bar(self, name: str, total: int):
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"{self.prefix}{name}", total=max(total, 1), unit="frame", disable=not self.enabled,
                   leave=False, dynamic_ncols=True)
        started = False

        def update(done: int, total: int) -> None:
            nonlocal started
            bar.total = max(total, 1)
            if not started:  # frames finished earlier do not count towards the speed
                started = True
                bar.n = bar.last_print_n = done
                bar.refresh()
                return
            bar.update(done - bar.n)

        try:
            yield update
        finally:
            bar.close()


# --- the run ------------------------------------------------------------------------------------------


def run(args) -> int:
    check_arguments(args)
    found = find_inputs(args)
    jobs = plan_jobs(args, found) if found.videos else []
    photo_jobs = plan_photo_jobs(args, found) if found.images else []
    device = pick_device(args.device)
    models = CommandLineModels(args, device)
    if photo_jobs:
        models.check(_photo_model_kinds(photo_jobs, args, models))
    photo_code = _run_photo_jobs(args, photo_jobs, models, device, alone=found.count == 1) if photo_jobs else 0
    if not jobs:
        return photo_code
    return max(photo_code, _run_videos(args, jobs, models, device))


def _photo_model_kinds(jobs: list[Job], args, models: "CommandLineModels") -> list[str]:
    """The models the photos need, downloaded? (video runs ask their plans, after planning)."""
    estimated = [job for job in jobs if not job.depth_video]  # the others come with a depth image
    kinds = [photo_depth_kind(args, models)] if estimated else []
    return kinds + ([] if args.no_inpaint else [model_files.STEREOCRAFTER])


def _run_videos(args, jobs: list[Job], models: "CommandLineModels", device) -> int:
    settings = settings_of(args)
    scenes = scene_settings_of(args)
    runner = ray_runner(args) if args.ray is not None else None
    try:
        return _run_jobs(args, jobs, settings, scenes, models, device, runner)
    finally:
        if runner is not None:
            runner.close()


def ray_runner(args):
    """Scenes on Ray workers that load the models the way this command does, on their own device."""
    from functools import partial

    from .engine.distributed import RayRunner, RaySession, WorkerSpec, import_ray

    import_ray(local=args.ray == "local")  # missing Ray is reported before any work
    spec = WorkerSpec(models=partial(CommandLineModels, args), device=partial(pick_device, args.device),
                      threads=torch.get_num_threads())
    return RayRunner(RaySession(None if args.ray == "local" else args.ray), spec, workers=args.ray_workers)


def _run_jobs(args, jobs, settings, scenes, models, device, runner) -> int:
    # Probe every input first: a damaged file or a setting impossible for one video is found before any work.
    planned, failures = [], []
    for job in jobs:
        if not args.overwrite and all(is_complete_video(path) for path in job.outputs.values()):
            log.info("%s: already done", job.output)
            continue
        conversion_job = ConversionJob(source=job.source, outputs=job.outputs, work_dir=job.work_dir,
                                       depth_video=job.depth_video, max_frames=args.max_frames,
                                       keep_work=args.keep_work, comfort_report=job.comfort_report,
                                       comfort_screen_px=args.screen_width, wait=args.wait)
        try:
            planned.append((job, plan_conversion(conversion_job, settings)))
        except StereoInputError as error:
            if len(jobs) == 1:
                raise
            failures.append((job, error))
            print(f"error: {job.source}: {error}", file=sys.stderr)
    # The models the planned runs may load, downloaded? (each loads only when a stage of it runs)
    models.check(sorted({kind for _, plan in planned for kind in plan.model_kinds}))

    for number, (job, plan) in enumerate(planned, 1):
        log.info("[%d/%d] %s -> %s (%d frames)", number, len(planned), job.source, job.output, plan.frames)
        reporter = ConsoleReporter(enabled=not args.quiet, prefix=f"[{number}/{len(planned)}] ")
        try:
            if scenes is None:
                convert(plan.job, settings, models, device, reporter, plan=plan)
            else:
                convert_scenes(plan.job, settings, scenes, models, device, reporter, runner, plan=plan)
        except StereoInputError as error:
            if len(jobs) == 1:
                raise
            failures.append((job, error))
            print(f"error: {job.source}: {error}", file=sys.stderr)
            continue
        log.info("[%d/%d] %s: %d frames at %g fps", number, len(planned), job.output.name, plan.frames,
                 float(plan.info.fps))

    if failures:
        print(f"error: {len(failures)} of {len(jobs)} videos failed: "
              + ", ".join(str(job.source) for job, _ in failures), file=sys.stderr)
        return 1
    return 0


def quiet_libraries() -> None:
    """Only errors from the model libraries: no weight-loading bars, no advice (--quiet)."""
    import diffusers
    import huggingface_hub
    import transformers

    for library in (transformers, diffusers):
        library.utils.logging.set_verbosity_error()
        library.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["download"]:  # python -m stereo_core download / stereocrafter-3d download
        from .download import main as download

        return download(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        if args.preset is not None:
            args = with_preset(parser, argv, args)
        with logging_redirect_tqdm():  # log lines (resume notices...) print above the progress bar, not inside it
            return run(args)
    except StereoInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # outside a conversion (which reports its own): still one line
        print(f"error: {os_error_message(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted. Run the same command again to carry on from the last finished chunk.",
              file=sys.stderr)
        return 130


__all__ = ["main", "build_parser"]
