"""Command line: 2D video files to stereo 3D, with the same code and defaults as the ComfyUI nodes.

    python -m stereo_core input.mp4 -o output_sbs.mp4 --models /path/to/models

Finished outputs are skipped and each stage's result is kept in a work folder until the
output is written, so running the same command again after an interruption (or over a
folder of videos) carries on where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import model_files
from .anaglyph import MODES as ANAGLYPH_MODES
from .anaglyph import anaglyph
from .color import MODES as COLOR_MODES
from .depthcrafter import DepthCrafterSettings, estimate_depth
from .disparity import NORMALIZATIONS, UNITS, DisparitySettings
from .errors import StereoInputError
from .inpainting import InpaintSettings, inpaint_clip
from .layouts import LAYOUTS, compose_stereo
from .placement import DTYPE_CHOICES, POLICIES
from .splatting import warp_clip
from .video_diffusion import VideoDiffusionModel, load_video_diffusion
from .video_io import Video, read_video, to_bytes, write_video
from .visualize import visualize_depth

log = logging.getLogger("stereo_core")
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
_DEPTH, _INPAINT, _DISPARITY = DepthCrafterSettings(), InpaintSettings(), DisparitySettings()


class ProgressBar:
    """A tqdm bar driven by the library's progress(done, total) callbacks (totals may grow)."""

    def __init__(self, description: str, enabled: bool, unit: str):
        from tqdm.auto import tqdm

        self._bar = tqdm(desc=description, total=1, unit=unit, disable=not enabled, leave=False)

    def __call__(self, done: int, total: int) -> None:
        self._bar.total = max(total, 1)
        self._bar.n = done
        self._bar.refresh()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._bar.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stereo_core",
        description="Turn 2D videos into stereo 3D: DepthCrafter depth, forward warp, StereoCrafter inpainting, "
                    "then side-by-side (or top-bottom) video and an optional red/cyan anaglyph. Audio and frame "
                    "rate are kept.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="Video file(s), or folders of videos.")
    parser.add_argument("-o", "--output", type=Path,
                        help="Output file for one input, or a folder for several (default: next to each input, "
                             "named <input>_<format>.mp4).")
    parser.add_argument("--format", choices=LAYOUTS, default="sbs",
                        help="sbs: full side-by-side (the reference); half-sbs/half-tb keep the source size (3D TVs); "
                             "tb: top-bottom.")
    parser.add_argument("--swap-eyes", action="store_true", help="Right eye first (cross-eyed viewing).")
    parser.add_argument("--anaglyph", nargs="?", const="color", choices=ANAGLYPH_MODES,
                        help="Also write <output>_anaglyph.mp4 (red/cyan; mode defaults to color).")
    parser.add_argument("--save-depth", action="store_true", help="Also write the depth as <output>_depth.mp4.")

    group = parser.add_argument_group("depth")
    group.add_argument("--depth-video", type=Path,
                       help="Use this depth video (white = near, any size) instead of running DepthCrafter. With "
                            "several inputs, a folder holding <input name>_depth.mp4 for each.")
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

    group = parser.add_argument_group("inpainting")
    group.add_argument("--no-inpaint", action="store_true",
                       help="Skip StereoCrafter: the right eye keeps black holes (fast preview).")
    group.add_argument("--steps", type=int, default=_INPAINT.steps)
    group.add_argument("--frames-chunk", type=int, default=_INPAINT.frames_chunk)
    group.add_argument("--overlap", type=int, default=_INPAINT.overlap)
    group.add_argument("--tile-num", type=int, default=_INPAINT.tile_num,
                       help="n x n spatial tiles; raise on out-of-memory at high resolution.")
    group.add_argument("--color-match", choices=COLOR_MODES, default=_INPAINT.color_match)

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

    group = parser.add_argument_group("run")
    group.add_argument("--max-frames", type=int, help="Only the first N frames (for trying settings).")
    group.add_argument("--overwrite", action="store_true", help="Redo outputs that already exist.")
    group.add_argument("--work-dir", type=Path,
                       help="Where stage results are kept until the output is written (default: beside it).")
    group.add_argument("--keep-work", action="store_true", help="Keep the stage results after success.")
    group.add_argument("--quiet", action="store_true", help="No progress bars.")
    return parser


def pick_device(choice: str) -> torch.device:
    if choice != "auto":
        return torch.device(choice)
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


@dataclass
class Job:
    source: Path
    output: Path
    depth_video: Path | None = None
    extras: dict = field(default_factory=dict)  # kind -> path of the extra outputs (anaglyph, depth)


def _is_our_output(path: Path) -> bool:
    return path.stem.endswith(tuple(f"_{kind}" for kind in (*LAYOUTS, "anaglyph", "depth")))


def _videos_in(path: Path) -> list[Path]:
    if path.is_dir():  # a rerun over a folder must not take the outputs it wrote there for inputs
        return sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES
                      and not p.name.startswith(".") and not _is_our_output(p))
    if not path.is_file():
        raise StereoInputError(f"Input '{path}' does not exist.")
    return [path]


def plan_jobs(args) -> list[Job]:
    """One job per input video, with its output paths, checked before any work starts."""
    sources = [video for path in args.inputs for video in _videos_in(path)]
    if not sources:
        raise StereoInputError("No video files found in the given inputs.")
    several = len(sources) > 1
    if several and args.output is not None and args.output.suffix:
        raise StereoInputError(f"With {len(sources)} inputs, -o must be a folder, not the file '{args.output}'.")
    if several and args.depth_video is not None and not args.depth_video.is_dir():
        raise StereoInputError("With several inputs, --depth-video must be a folder of <input name>_depth.mp4 files.")
    jobs = []
    for source in sources:
        name = f"{source.stem}_{args.format}.mp4"
        if args.output is None:
            output = source.with_name(name)
        elif several or args.output.is_dir() or not args.output.suffix:
            output = args.output / name
        else:
            output = args.output
        if output.resolve() == source.resolve():
            raise StereoInputError(f"The output '{output}' would overwrite its input.")
        depth = args.depth_video
        if depth is not None and depth.is_dir():
            depth = depth / f"{source.stem}_depth.mp4"
        if depth is not None and not depth.is_file():
            raise StereoInputError(f"Depth video '{depth}' does not exist.")
        extras = {}
        if args.anaglyph:
            extras["anaglyph"] = output.with_name(f"{output.stem}_anaglyph.mp4")
        if args.save_depth:
            extras["depth"] = output.with_name(f"{output.stem}_depth.mp4")
        jobs.append(Job(source=source, output=output, depth_video=depth, extras=extras))
    return jobs


class StageCache:
    """Stage results of one job on disk, each valid only for the input, frames and settings that made it."""

    def __init__(self, folder: Path, source: Path, frames: int):
        self.folder = folder
        stat = source.stat()
        self._source = {"path": str(source.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns,
                        "frames": frames}

    def _key(self, settings: dict) -> str:
        text = json.dumps({"source": self._source, **settings}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def load(self, stage: str, settings: dict) -> torch.Tensor | None:
        from safetensors import safe_open

        path = self.folder / f"{stage}.safetensors"
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as stored:
                if stored.metadata().get("key") != self._key(settings):
                    return None
                return stored.get_tensor(stage)
        except Exception:  # a file cut short by an interruption: redo the stage
            return None

    def save(self, stage: str, settings: dict, values: torch.Tensor) -> None:
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".{stage}.partial"
        save_file({stage: values.contiguous()}, str(partial), metadata={"key": self._key(settings)})
        os.replace(partial, self.folder / f"{stage}.safetensors")


class Converter:
    """Runs jobs, loading each model once and only when a job needs it."""

    def __init__(self, args):
        self.args = args
        self.device = pick_device(args.device)
        self._models: dict[str, VideoDiffusionModel] = {}

    def check_models(self, jobs: list[Job]) -> None:
        """Fail before any work when a model the jobs need is not downloaded (not an hour into a batch)."""
        kinds = []
        if any(job.depth_video is None for job in jobs):
            kinds.append(model_files.DEPTHCRAFTER)
        if not self.args.no_inpaint:
            kinds.append(model_files.STEREOCRAFTER)
        for kind in kinds:
            svd_folder, unet_folder = self._folders(kind)
            model_files.check_svd_folder(svd_folder)
            model_files.check_unet_folder(unet_folder, kind)

    def _folders(self, kind: str) -> tuple[Path, Path]:
        """The SVD folder and the `kind` model's folder under --models."""
        root = models_folder(self.args)
        return root / model_files.FOLDER_NAMES[model_files.SVD], root / model_files.FOLDER_NAMES[kind]

    def model(self, kind: str) -> VideoDiffusionModel:
        if kind not in self._models:
            svd_folder, unet_folder = self._folders(kind)
            log.info("Loading %s from %s ...", model_files.TITLES[kind], unet_folder)
            self._models[kind] = load_video_diffusion(kind, svd_folder, unet_folder, dtype=self.args.dtype,
                                                      policy=self.args.placement, device=self.device)
        return self._models[kind]

    def _bar(self, description: str, unit: str = "frame") -> ProgressBar:
        return ProgressBar(description, enabled=not self.args.quiet, unit=unit)

    def depth(self, job: Job, video: Video, cache: StageCache) -> tuple[torch.Tensor, dict]:
        """The clip's depth, and what it came from (part of the later stages' cache keys)."""
        args = self.args
        frames = video.frames.shape[0]
        if job.depth_video is not None:
            stat = job.depth_video.stat()
            key = {"depth_video": str(job.depth_video.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns}
            with self._bar("read depth") as bar:
                return read_video(job.depth_video, max_frames=frames, progress=bar).frames, key
        settings = DepthCrafterSettings(steps=args.depth_steps, guidance=args.depth_guidance,
                                        window=args.depth_window, overlap=args.depth_overlap, max_res=args.max_res)
        key = {"depthcrafter": asdict(settings), "seed": args.seed}
        depth = cache.load("depth", key)
        if depth is not None:
            log.info("Depth: reusing the finished stage in %s", cache.folder)
            return depth.float(), key
        model = self.model(model_files.DEPTHCRAFTER)
        with self._bar("depth (DepthCrafter)", unit="step") as bar:
            depth = estimate_depth(model, video.frames, settings, seed=args.seed, progress=bar).depth
        cache.save("depth", key, depth.half())  # fp16 keeps 1/1000 steps: far finer than any disparity
        return depth, key

    def right_eye(self, video: Video, depth: torch.Tensor, depth_key: dict, cache: StageCache) -> torch.Tensor:
        args = self.args
        disparity = DisparitySettings(max_disp=args.max_disp, unit=args.disp_unit, convergence=args.convergence,
                                      invert=args.invert_depth, normalize=args.normalize)
        settings = InpaintSettings(steps=args.steps, frames_chunk=args.frames_chunk, overlap=args.overlap,
                                   tile_num=args.tile_num, color_match=args.color_match)
        key = {"depth": depth_key, "disparity": asdict(disparity), "inpaint": asdict(settings), "seed": args.seed}
        right = None if args.no_inpaint else cache.load("right", key)
        if right is not None:
            log.info("Inpainting: reusing the finished stage in %s", cache.folder)
            return right.float().div_(255.0)
        with self._bar("warp") as bar:
            warped, occlusion = warp_clip(video.frames, depth, disparity, device=self.device, progress=bar)
        if args.no_inpaint:
            return warped
        model = self.model(model_files.STEREOCRAFTER)
        with self._bar("inpaint (StereoCrafter)", unit="step") as bar:
            right = inpaint_clip(model, warped, occlusion, settings, left=video.frames, seed=args.seed,
                                 progress=bar).frames
        cache.save("right", key, to_bytes(right))
        return right

    def run(self, job: Job) -> str:
        args = self.args
        outputs = [job.output, *job.extras.values()]
        if not args.overwrite and all(path.is_file() for path in outputs):
            return "already done"
        work = (args.work_dir / job.output.stem if args.work_dir else
                job.output.with_name(f".{job.output.stem}.work"))
        with self._bar("read video") as bar:
            video = read_video(job.source, max_frames=args.max_frames, progress=bar)
        cache = StageCache(work, job.source, video.frames.shape[0])
        depth, depth_key = self.depth(job, video, cache)
        right = self.right_eye(video, depth, depth_key, cache)
        results = {"output": compose_stereo(video.frames, right, args.format, swap=args.swap_eyes)}
        if "anaglyph" in job.extras:
            results["anaglyph"] = anaglyph(video.frames, right, args.anaglyph)
        if "depth" in job.extras:
            results["depth"] = visualize_depth(depth, "gray")
        for kind, frames in results.items():
            path = job.output if kind == "output" else job.extras[kind]
            with self._bar(f"write {path.name}") as bar:
                write_video(path, frames, video.fps, audio_from=job.source if kind != "depth" else None,
                            progress=bar)
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        return f"{video.frames.shape[0]} frames at {float(video.fps):g} fps"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        jobs = plan_jobs(args)
        converter = Converter(args)
        converter.check_models(jobs)
        for number, job in enumerate(jobs, 1):
            log.info("[%d/%d] %s -> %s", number, len(jobs), job.source, job.output)
            log.info("[%d/%d] %s: %s", number, len(jobs), job.output.name, converter.run(job))
    except StereoInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted. Run the same command again to carry on from the last finished stage.", file=sys.stderr)
        return 130
    return 0
