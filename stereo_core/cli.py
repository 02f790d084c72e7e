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

from . import model_files
from .anaglyph import MODES as ANAGLYPH_MODES
from .convergence import AutoConvergence
from .depthcrafter import DepthCrafterSettings
from .disparity import NORMALIZATIONS, UNITS, DisparitySettings
from .engine import (
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
from .inpainting import TILE_BLENDS, InpaintSettings
from .layouts import LAYOUTS, VirtualScreen
from .spatial_media import filename_tag
from .placement import DTYPE_CHOICES, POLICIES, resolve_dtype
from .presets import CLI_NAMES, PRESETS, describe, preset_values
from .video_diffusion import VideoDiffusionModel, load_video_diffusion
from .video_io import CONTAINERS, is_complete_video

log = logging.getLogger("stereo_core")
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
_DEPTH, _INPAINT, _DISPARITY, _OUTPUT = DepthCrafterSettings(), InpaintSettings(), DisparitySettings(), OutputSettings()
_SCREEN, _AUTO, _SCENES = VirtualScreen(), AutoConvergence(), SceneSettings()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stereo_core",
        description="Turn 2D videos into stereo 3D: DepthCrafter depth, forward warp, StereoCrafter inpainting, "
                    "then side-by-side (or top-bottom) video and an optional red/cyan anaglyph. Audio, frame "
                    "timing and orientation are kept. Long videos stream in bounded memory; an interrupted run "
                    "continues where it stopped when the same command is run again. First fetch the models with: "
                    "python -m stereo_core download --models DIR",
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="Video file(s), or folders of videos.")
    parser.add_argument("-o", "--output", type=Path,
                        help="Output file for one input (.mp4, .mov or .mkv), or a folder for several (default: next "
                             "to each input, named <input>_<format>.mp4).")
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
                        help="Do not write the stereo layout into the file (st3d/sv3d boxes, Matroska StereoMode).")
    parser.add_argument("--comfort-report", action="store_true",
                        help="Also write <output>_comfort.png (disparity over time against comfort limits) and "
                             ".json, and print a one-line verdict.")
    parser.add_argument("--screen-width", type=int, default=1920,
                        help="Screen width in pixels the comfort report's pixel figures are for.")
    parser.add_argument("--crf", type=int, default=_OUTPUT.crf, help="H.264 quality (lower = better, larger).")
    parser.add_argument("--segment-frames", type=int, default=_OUTPUT.segment_frames,
                        help="Frames per encoded piece: the unit an interrupted run never redoes once finished "
                             "(each piece starts with a keyframe).")

    group = parser.add_argument_group("depth")
    group.add_argument("--depth-video", type=Path,
                       help="Use this depth video (grey, white = near, any size) instead of running DepthCrafter. "
                            "With several inputs, a folder holding <input name>_depth.mp4 for each.")
    group.add_argument("--max-res", type=int, default=_DEPTH.max_res,
                       help="DepthCrafter's working resolution (longest side); 512-768 is much faster.")
    group.add_argument("--depth-steps", type=int, default=_DEPTH.steps)
    group.add_argument("--depth-guidance", type=float, default=_DEPTH.guidance)
    group.add_argument("--depth-window", type=int, default=_DEPTH.window, help="Frames per DepthCrafter window.")
    group.add_argument("--depth-overlap", type=int, default=_DEPTH.overlap)

    group = parser.add_argument_group("3D effect")
    group.add_argument("--max-disp", type=float, default=_DISPARITY.max_disp,
                       help="Strength: parallax of the nearest point, in --disp-unit (20 px = the reference).")
    group.add_argument("--disp-unit", choices=UNITS, default=_DISPARITY.unit)
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
    group.add_argument("--quiet", action="store_true", help="No progress bars.")
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
    settings_of(args).check(width=1 << 30)  # the width-dependent checks run per video, before any model
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
    return ConversionSettings(depth=depth, disparity=disparity, inpaint=inpaint, output=output, seed=args.seed,
                              auto_convergence=auto)


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


def _videos_in(path: Path) -> list[Path]:
    if path.is_dir():  # a rerun over a folder must not take the outputs it wrote there for inputs
        return sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES
                      and not p.name.startswith(".") and not _is_our_output(p))
    if not path.is_file():
        raise StereoInputError(f"Input '{path}' does not exist.")
    return [path]


def _check_writable(folder: Path, what: str) -> None:
    """Create `folder` and prove a file can be written there, before any work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise StereoInputError(f"Cannot write the {what} in '{folder}' ({reason}). Choose another place "
                               f"({'-o' if what == 'output' else '--work-dir'}).") from error


def plan_jobs(args) -> list[Job]:
    """One job per input video, with its output paths; no output may land on any input or on another output."""
    sources = [video for path in args.inputs for video in _videos_in(path)]
    if not sources:
        raise StereoInputError("No video files found in the given inputs.")
    several = len(sources) > 1
    if several and args.output is not None and args.output.suffix:
        raise StereoInputError(f"With {len(sources)} inputs, -o must be a folder, not the file '{args.output}'.")
    if several and args.depth_video is not None and not args.depth_video.is_dir():
        raise StereoInputError("With several inputs, --depth-video must be a folder of <input name>_depth.mp4 files.")
    jobs = []
    label = _layout_label(args)
    for source in sources:
        name = f"{source.stem}{label}.mp4"
        if args.output is None:
            output = source.with_name(name)
        elif several or args.output.is_dir() or not args.output.suffix:
            output = args.output / name
        else:
            output = args.output
        if output.suffix.lower() not in CONTAINERS:
            raise StereoInputError(f"Cannot write '{output}': the extension '{output.suffix}' is not supported. Name "
                                   f"the output with one of {', '.join(sorted(CONTAINERS))} (H.264 video).")
        depth = args.depth_video
        if depth is not None and depth.is_dir():
            depth = depth / f"{source.stem}_depth.mp4"
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


# --- models -------------------------------------------------------------------------------------------


class CommandLineModels(Models):
    """The models under --models, loaded once each, and only when a stage needs them."""

    def __init__(self, args, device: torch.device):
        self.args, self.device = args, device
        self._loaded: dict[str, VideoDiffusionModel] = {}

    def folders(self, kind: str) -> tuple[Path, Path]:
        """The SVD folder and the `kind` model's folder under --models."""
        root = models_folder(self.args)
        return root / model_files.FOLDER_NAMES[model_files.SVD], root / model_files.FOLDER_NAMES[kind]

    def check(self, kinds: list[str]) -> None:
        """Fail before any work when a model the jobs need is not downloaded (not an hour into a batch)."""
        for kind in kinds:
            svd_folder, unet_folder = self.folders(kind)
            model_files.check_svd_folder(svd_folder)
            model_files.check_unet_folder(unet_folder, kind)

    def identity(self, kind: str) -> dict:
        svd_folder, unet_folder = self.folders(kind)
        dtype = resolve_dtype(self.args.dtype, self.device)
        return {"folders": {"svd": str(svd_folder), "unet": str(unet_folder)}, "dtype": str(dtype),
                "device": self.device.type}

    def get(self, kind: str) -> VideoDiffusionModel:
        if kind not in self._loaded:
            svd_folder, unet_folder = self.folders(kind)
            log.info("Loading %s from %s ...", model_files.TITLES[kind], unet_folder)
            self._loaded[kind] = load_video_diffusion(kind, svd_folder, unet_folder, dtype=self.args.dtype,
                                                      policy=self.args.placement, device=self.device)
        return self._loaded[kind]


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


def _needed_models(jobs: list[Job], args) -> list[str]:
    kinds = []
    if any(job.depth_video is None for job in jobs):
        kinds.append(model_files.DEPTHCRAFTER)
    if not args.no_inpaint:
        kinds.append(model_files.STEREOCRAFTER)
    return kinds


def run(args) -> int:
    check_arguments(args)
    jobs = plan_jobs(args)
    device = pick_device(args.device)
    models = CommandLineModels(args, device)
    models.check(_needed_models(jobs, args))
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
                                       comfort_screen_px=args.screen_width)
        try:
            planned.append((job, plan_conversion(conversion_job, settings)))
        except StereoInputError as error:
            if len(jobs) == 1:
                raise
            failures.append((job, error))
            print(f"error: {job.source}: {error}", file=sys.stderr)

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
        return run(args)
    except StereoInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted. Run the same command again to carry on from the last finished chunk.",
              file=sys.stderr)
        return 130


__all__ = ["main", "build_parser"]
