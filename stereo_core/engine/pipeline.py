"""The streaming conversion: a video file in, stereo video files out, in chunks, resumable.

Stages over chunks of frames (see engine/__init__.py for the picture):
    depth    -> DepthFrames (a depth video, or DepthCrafter passes kept in the store)
    right    -> per chunk: source frames + depth -> warp + mask -> inpainting (carrying the previous
                chunk's output frames) -> the right eye, kept as 8-bit frames until encoded
    encode   -> per segment (a run of chunks): SBS/TB, anaglyph, depth pictures encoded as H.264 pieces
    finish   -> pieces joined without re-encoding, the source's audio muxed once, renamed into place

Everything a later chunk needs from an earlier one (inpainted overlap frames, the noise generator,
the tile count) is stored with each chunk, and every stage reads its inputs from what is stored, so a
run killed at any moment and started again produces the identical video.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, ContextManager, Iterator

import torch

from .. import model_files
from ..anaglyph import anaglyph
from ..anaglyph import check_mode as check_anaglyph_mode
from ..color import MODES as COLOR_MODES
from ..comfort import ComfortLimits, ComfortReport
from ..convergence import AutoConvergence, auto_convergence
from ..depth_anything_v2 import DEFAULT_INPUT_SIZE, EmaSettings
from ..depthcrafter import DepthCrafterSettings
from ..disparity import DisparitySettings, disparity_bounds, disparity_from_depth, normalized_depth
from ..errors import StereoInputError
from ..files import os_errors_explained
from ..frames import frame_batches, resize_frames
from ..inpainting import Chunk, ChunkInpainter, InpaintSettings, finish_frames, plan_chunks
from ..layouts import VirtualScreen, check_layout, compose_stereo, stereo_frame_size
from ..spatial_media import metadata_for_layout, write_spatial_metadata
from ..video_diffusion import VideoDiffusionModel
from ..warp import forward_warp
from ..video_io import (
    DEFAULT_CRF,
    FrameReader,
    Segment,
    SegmentWriter,
    StreamPlan,
    VideoInfo,
    container_format,
    is_complete_video,
    join_segments,
    plan_streams,
    probe_video,
    to_bytes,
)
from .depth import DepthFrames, DepthStats
from .sources import DEFAULT_DEPTH_MODEL, DepthSource, DepthVideoSource, depth_model
from .store import StageStore, WorkStore, generator_state, restore_generator, settings_key, source_identity

log = logging.getLogger(__name__)

OUTPUT_KINDS = ("stereo", "anaglyph", "depth")
STEREO = "stereo: warp, inpaint, encode"  # the progress stage after the depth's
# Colour matching pools statistics over the frames at hand: a chunk's, or one frame's. 'clip' would need
# every inpainted frame at once.
STREAM_COLOR_MODES = tuple(mode for mode in COLOR_MODES if mode != "clip")
COMPOSE_FRAMES = 2
# How messages name the job's options when the face gives no words of its own (the command line's).
OPTION_NAMES = {"max_frames": "--max-frames", "work_dir": "--work-dir"}


class Models:
    """The models a conversion may need, loaded only when a stage really runs.

    `identity(kind)` says what results depend on (folders, precision, device) without loading anything,
    so a finished stage is recognised without loading its model.
    """

    def identity(self, kind: str) -> dict:
        raise NotImplementedError

    def get(self, kind: str) -> VideoDiffusionModel:
        raise NotImplementedError


class LoadedModels(Models):
    """Models already loaded (e.g. by ComfyUI's loader nodes), by kind."""

    def __init__(self, models: dict[str, VideoDiffusionModel]):
        self.models = {kind: model for kind, model in models.items() if model is not None}

    def identity(self, kind: str) -> dict:
        self.require([kind])
        model = self.models[kind]
        # A video-diffusion model names its folders; the depth models their one folder or their size.
        folders = getattr(model, "folders", None) or getattr(model, "folder", None) or getattr(model, "kind", None)
        return {"folders": folders, "dtype": str(model.dtype), "device": model.device.type}

    def get(self, kind: str) -> VideoDiffusionModel:
        self.require([kind])
        return self.models[kind]

    def require(self, kinds, messages: dict[str, str] | None = None) -> None:
        """Refuse a run that may need a model not given (`messages`: the face's words, per kind)."""
        for kind in kinds:
            if kind not in self.models:
                raise StereoInputError((messages or {}).get(kind) or
                                       f"This conversion needs a {model_files.TITLES[kind]} model; connect its loader.")


@dataclass(frozen=True)
class OutputSettings:
    layout: str = "sbs"
    swap_eyes: bool = False
    anaglyph: str = "color"  # mode of the anaglyph output, when one is asked for
    crf: int = DEFAULT_CRF
    segment_frames: int = 240  # frames per encoded piece (each starts with a keyframe)
    screen: VirtualScreen = field(default_factory=VirtualScreen)  # the flat screen of the vr180 layout
    metadata: bool = True  # st3d, sv3d (VR180) and Apple's vexu/hfov boxes in MP4/MOV, StereoMode in Matroska


@dataclass(frozen=True)
class ConversionSettings:
    depth_model: str = DEFAULT_DEPTH_MODEL  # a name in sources.DEPTH_MODELS (used where no depth video is given)
    depth: DepthCrafterSettings = field(default_factory=DepthCrafterSettings)
    depth_input_size: int = DEFAULT_INPUT_SIZE  # Video Depth Anything's and Depth Anything V2's working size
    depth_ema: EmaSettings = field(default_factory=EmaSettings)  # Depth Anything V2's temporal normalisation
    disparity: DisparitySettings = field(default_factory=DisparitySettings)
    inpaint: InpaintSettings | None = field(default_factory=InpaintSettings)  # None: keep the holes
    output: OutputSettings = field(default_factory=OutputSettings)
    seed: int = 0
    warp_chunk: int = 8  # frames per chunk when there is no inpainting
    auto_convergence: AutoConvergence | None = None  # None: settings.disparity.convergence for every frame

    def check(self) -> None:
        """Refuse impossible settings before any work (and before any model loads); what depends on the
        frame size is checked_for_frames (plan_conversion runs both)."""
        depth_model(self.depth_model).check_settings(self)
        self.disparity.check()
        if self.inpaint is not None:
            self.inpaint.check()
            if self.inpaint.color_match not in STREAM_COLOR_MODES:
                raise StereoInputError(
                    "color_match 'clip' pools the whole clip's colours at once, which a streaming conversion does "
                    "not hold; use 'chunk' (per inpainting chunk), 'frame' or 'off'.")
        check_layout(self.output.layout, self.output.swap_eyes)
        if self.output.layout == "vr180":
            self.output.screen.validate()
        if self.auto_convergence is not None:
            self.auto_convergence.validate()
        check_anaglyph_mode(self.output.anaglyph)
        if not 0 <= self.output.crf <= 51:
            raise StereoInputError(f"crf must be 0..51 (H.264 quality, lower is better), got {self.output.crf}.")
        if self.output.segment_frames < 1 or self.warp_chunk < 1:
            raise StereoInputError("segment_frames and warp_chunk must be at least 1 frame.")

    def check_frames(self, width: int) -> None:
        """Refuse settings impossible for frames `width` pixels wide."""
        self.disparity.check_width(width)


@dataclass
class ConversionJob:
    source: Path
    outputs: dict[str, Path]  # "stereo" (always), "anaglyph", "depth"
    work_dir: Path
    depth_video: Path | None = None
    max_frames: int | None = None
    keep_work: bool = False
    comfort_report: Path | None = None  # PNG of the comfort report (its JSON summary beside it)
    comfort_limits: ComfortLimits = field(default_factory=ComfortLimits)
    comfort_screen_px: int = 1920  # screen width the report's pixel figures are for
    option_names: dict[str, str] = field(default_factory=dict)  # the face's words for options (see OPTION_NAMES)

    def option(self, name: str) -> str:
        """How messages name option `name` to the user of the face that made this job."""
        return self.option_names.get(name, OPTION_NAMES[name])
    wait: bool = False  # another run on the same work folder: wait for it to end (else refuse at once)


class Reporter:
    """Progress and notices of a conversion. The default reports nothing but log lines."""

    def bar(self, name: str, total: int) -> ContextManager[Callable[[int, int], None]]:
        """A progress bar for one stage, counted in frames; calling it may raise to cancel."""
        return _silent_bar()

    def notice(self, message: str) -> None:
        log.info("%s", message)


@contextmanager
def _silent_bar():
    yield lambda done, total: None


# --- planning: everything checked before any work ---------------------------------------------------


@dataclass
class Plan:
    job: ConversionJob
    settings: ConversionSettings
    info: VideoInfo
    depth: DepthSource  # where the depth comes from, chosen once here
    start: int
    stop: int
    origin: int | None = None  # the frame shown at the output's time 0, when this run is a part of it
    streams: dict[str, StreamPlan] = field(default_factory=dict)  # the source's audio etc. per output kind

    @property
    def frames(self) -> int:
        return self.stop - self.start

    @property
    def stages(self) -> tuple[str, ...]:
        """The progress stages of the run, in the order they run."""
        return (*self.depth.stages, STEREO)

    @property
    def model_kinds(self) -> tuple[str, ...]:
        """The models the run may load (each only when a stage of it really runs)."""
        inpaint = (model_files.STEREOCRAFTER,) if self.settings.inpaint is not None else ()
        return (*self.depth.model_kinds, *inpaint)

    def time_of(self, frame: int) -> Fraction:
        """When frame `frame` (of the file) is shown in the output, seconds from the output's start."""
        origin = self.start if self.origin is None else self.origin
        return self.info.times(frame, frame + 1)[0] - self.info.times(origin, origin + 1)[0]


def plan_conversion(job: ConversionJob, settings: ConversionSettings, start: int = 0,
                    stop: int | None = None) -> Plan:
    """Probe the inputs and check the job: bad input is refused here, not an hour into the work."""
    if "stereo" not in job.outputs:
        raise StereoInputError("A conversion needs a stereo output path.")
    for kind, path in job.outputs.items():
        if kind not in OUTPUT_KINDS:
            raise StereoInputError(f"Unknown output kind '{kind}'.")
        container_format(path)
    info = probe_video(job.source)
    if job.max_frames is not None and job.max_frames < 1:
        raise StereoInputError(f"max_frames must be at least 1, got {job.max_frames}.")
    wanted = max(info.frames, info.declared_frames) if job.max_frames is None else job.max_frames
    if wanted > info.frames and info.declared_frames > info.frames:
        raise StereoInputError(
            f"'{job.source}' says it has {info.declared_frames} frames but only {info.frames} are in the file: it is "
            f"cut short (an interrupted download or copy?). Re-copy it, or convert the readable part with "
            f"{job.option('max_frames')} {info.frames}.")
    stop = min(wanted, info.frames) if stop is None else stop
    settings.check()
    settings.check_frames(info.width)
    # The one place that knows which kind of depth a run has.
    depth = (DepthVideoSource.probe(job, info, stop) if job.depth_video is not None
             else depth_model(settings.depth_model))
    if info.variable_rate:
        log.info("'%s' has a variable frame rate; every frame keeps its own timestamp.", job.source)
    streams = {kind: plan_streams(job.source, path, log.info) for kind, path in job.outputs.items() if kind != "depth"}
    return Plan(job=job, settings=settings, info=info, depth=depth, start=start, stop=stop, streams=streams)


def work_key(source: Path, depth_video: Path | None = None, *more) -> str:
    """A short key of a job's input files (by content identity) and anything else given: a name for its
    work folder that a run queued again finds, and another input does not."""
    return settings_key(source_identity(source), depth_video and source_identity(depth_video), *more)


# --- stage keys: what each stage's result depends on -----------------------------------------------


def _right_key(plan: Plan, depth_key: str, models: Models) -> str:
    inpaint = None if plan.settings.inpaint is None else asdict(plan.settings.inpaint)
    model = None if plan.settings.inpaint is None else models.identity(model_files.STEREOCRAFTER)
    auto = plan.settings.auto_convergence
    return settings_key(depth_key, asdict(plan.settings.disparity), None if auto is None else asdict(auto), inpaint,
                        plan.settings.seed, model, plan.settings.warp_chunk)


def _output_key(plan: Plan, right_key: str) -> str:
    return settings_key(right_key, asdict(plan.settings.output), sorted(plan.job.outputs))


# --- chunks and segments ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """Frames one encoded segment covers, and the chunks that make them."""

    index: int
    start: int
    stop: int
    chunks: tuple[int, ...]


def plan_pieces(chunks: list[Chunk], segment_frames: int) -> list[Piece]:
    pieces, current = [], []
    for index, chunk in enumerate(chunks):
        current.append(index)
        first = chunks[current[0]]
        if chunk.end - (first.start + first.reused) >= segment_frames or index == len(chunks) - 1:
            pieces.append(Piece(len(pieces), first.start + first.reused, chunk.end, tuple(current)))
            current = []
    return pieces


class _Outputs:
    """The encoders of one segment: every output kind's frames composed from the two eyes and the depth."""

    def __init__(self, plan: Plan, store: StageStore, piece: Piece):
        self.plan, self.store, self.piece = plan, store, piece
        output = plan.settings.output
        height, width = plan.info.height, plan.info.width
        self.square_stereo = stereo_square_pixels(plan)
        sizes = {"stereo": stereo_frame_size(output.layout, height, width, output.screen,
                                             plan.info.sample_aspect if self.square_stereo else 1),
                 "anaglyph": (height, width), "depth": (height, width)}
        time_base = _time_base(plan.info)
        # Every output is shown with the source's pixel shape; a VR180 frame's pixels are square (its sphere).
        aspect = {kind: 1 if kind == "stereo" and (output.layout == "vr180" or self.square_stereo)
                  else plan.info.sample_aspect for kind in OUTPUT_KINDS}
        self.writers = {kind: SegmentWriter(store.path(segment_name(kind, piece.index)), sizes[kind][1],
                                            sizes[kind][0], time_base, output.crf, rate=plan.info.fps,
                                            sample_aspect=aspect[kind])
                        for kind in plan.job.outputs}

    def write(self, first: int, left: torch.Tensor, right: torch.Tensor, depth: torch.Tensor | None) -> None:
        """Encode frames [first, first + n) of the run: left, right float [n, H, W, 3], depth [n, H, W] 0..1."""
        plan, output = self.plan, self.plan.settings.output
        # A few frames at a time: a composed 4K frame in float32 is 100 MB.
        for part in frame_batches(left.shape[0], COMPOSE_FRAMES):
            frames = range(plan.start + first + part.start, plan.start + first + part.stop)
            times = [plan.time_of(frame) for frame in frames]
            pictures = {
                "stereo": lambda: compose_stereo(left[part], right[part], output.layout, swap=output.swap_eyes,
                                                 screen=output.screen, sample_aspect=plan.info.sample_aspect,
                                                 square_pixels=self.square_stereo),
                "anaglyph": lambda: anaglyph(left[part], right[part], output.anaglyph),
                "depth": lambda: depth[part].clamp(0, 1).unsqueeze(-1).expand(-1, -1, -1, 3),
            }
            for kind, writer in self.writers.items():
                writer.write(to_bytes(pictures[kind]()), times)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

    def abandon(self) -> None:
        for writer in self.writers.values():
            writer.abandon()


def stereo_square_pixels(plan: Plan) -> bool:
    """Whether the stereo output's eyes are resampled to square pixels (at their displayed shape) because the
    file cannot carry a non-square aspect: under a StereoMode, FFmpeg's Matroska muxer writes each view's
    DisplayWidth from the AVStream's aspect, which PyAV cannot set (it sets the codec's), so the views would
    show at their pixel count. MP4/MOV (pasp) and a Matroska file without StereoMode keep the aspect."""
    return (plan.info.sample_aspect != 1 and plan.settings.output.metadata and plan.settings.output.layout != "vr180"
            and container_format(plan.job.outputs["stereo"]) == "matroska")


def segment_name(kind: str, index: int) -> str:
    return f"{kind}-{index:05d}.mp4"


def _time_base(info: VideoInfo) -> Fraction:
    if info.timestamps is not None:
        return info.time_base
    return 1 / Fraction(info.fps).limit_denominator(1001)


# --- the conversion ---------------------------------------------------------------------------------


@dataclass
class ConversionResult:
    """What a run hands back: the encoded pieces of each output, per frame the disparity extremes for the
    comfort report (nearest, median, farthest, in pixels) and the screen plane (None: the fixed one)."""

    segments: dict[str, list[Segment]]
    comfort: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    convergence: torch.Tensor | None


def convergence_curve(settings: ConversionSettings, stats: DepthStats, fps: float) -> torch.Tensor | None:
    """Per-frame screen-plane depth for auto-convergence over the frames `stats` covers (None: the fixed
    convergence)."""
    auto = settings.auto_convergence
    if auto is None:
        return None
    subject = normalized_depth(stats.subject.view(-1, 1, 1), stats.depth_range, slice(0, stats.subject.shape[0]),
                               settings.disparity).flatten()
    return auto_convergence(subject, (), fps, settings.disparity.convergence, auto)


@dataclass(frozen=True)
class WarpStage:
    """What the right-eye stage reads of its run: the plan, the reporter, the device and the screen plane
    (per frame of the depth's statistics, or None); with them it warps and draws the depth output."""

    plan: Plan
    device: torch.device
    reporter: Reporter
    convergence: torch.Tensor | None

    @property
    def settings(self) -> ConversionSettings:
        return self.plan.settings

    def disparity_extremes(self, depth: DepthFrames) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per frame: nearest, median and farthest disparity in pixels, from the depth statistics."""
        settings, stats = self.settings.disparity, depth.stats
        width = self.plan.info.width
        frames = depth.stats_index(slice(0, depth.frames))
        curve = None if self.convergence is None else self.convergence[frames]
        values = [disparity_from_depth(normalized_depth(quantity[frames].view(-1, 1, 1), stats.depth_range,
                                                        frames, settings),
                                       settings, width, curve).flatten()
                  for quantity in (stats.q_low, stats.median, stats.q_high)]
        low, median, high = values
        return torch.maximum(low, high), median, torch.minimum(low, high)

    def warp(self, left: torch.Tensor, depth: torch.Tensor, frames: slice, depth_frames: DepthFrames):
        """Right view and occlusion mask of left frames [n, H, W, 3] (float) for run frames `frames`, from
        their depth [n, h, w] (a fresh tensor: it is reused in place for the disparity, then the mask)."""
        settings = self.settings.disparity
        height, width = left.shape[1:3]
        depth_range = depth_frames.stats.depth_range
        values = resize_frames(depth.to(self.device), height, width)
        frames = depth_frames.stats_index(frames)
        normalized_depth(values, depth_range, frames, settings, out=values)
        curve = None if self.convergence is None else self.convergence[frames]
        disparity = disparity_from_depth(values, settings, width, curve, out=values)
        bounds = disparity_bounds(depth_range, settings, width, self.convergence)
        right = torch.empty_like(left)
        # Each row's disparity is read before its mask is written: one buffer serves both.
        forward_warp(left.to(self.device), disparity, *bounds, right, out_occlusion=disparity)
        return right, disparity.cpu()

    def depth_picture(self, depth: torch.Tensor, frames: slice, depth_frames: DepthFrames) -> torch.Tensor:
        """The depth output's frames: normalised over the clip (white = near), at the eye size."""
        values = resize_frames(depth, self.plan.info.height, self.plan.info.width)
        return normalized_depth(values, depth_frames.stats.depth_range, depth_frames.stats_index(frames),
                                DisparitySettings())


class Conversion:
    """One run over frames [plan.start, plan.stop) of a source: its stages, chunk by chunk.

    `depth`: where the run's depth comes from, where not the plan's source (a part of a split scene reads
    its scene's)."""

    def __init__(self, plan: Plan, models: Models, device: torch.device | str = "cpu",
                 reporter: Reporter | None = None, store: WorkStore | None = None, depth: DepthSource | None = None):
        self.plan, self.models, self.device = plan, models, torch.device(device)
        self.reporter = reporter or Reporter()
        self.store = store or WorkStore(plan.job.work_dir, plan.job.option("work_dir"))
        self.settings = plan.settings
        self.depth_source = depth or plan.depth
        self.depth_key = self.depth_source.key(plan, models)

    def run(self) -> ConversionResult:
        plan = self.plan
        with FrameReader(plan.info) as reader:
            depth = self.depth_source.open(plan, reader, self.store, self.models, self.reporter)
            try:
                # The screen plane over the frames the statistics cover (a part's: its scene's), indexed as they are.
                curve = convergence_curve(self.settings, depth.stats, float(plan.info.fps))
                stage = WarpStage(plan, self.device, self.reporter, curve)
                comfort = stage.disparity_extremes(depth)
                return ConversionResult(self._right_and_encode(reader, depth, stage), comfort, curve)
            finally:
                depth.close()

    def _chunks(self) -> list[Chunk]:
        inpaint = self.settings.inpaint
        if inpaint is not None:
            return plan_chunks(self.plan.frames, inpaint.frames_chunk, inpaint.overlap)
        return [Chunk(part.start, part.stop, 0) for part in frame_batches(self.plan.frames, self.settings.warp_chunk)]

    def right_key(self) -> str:
        """What the right eye depends on (the depth and the settings that make the right eye from it)."""
        return _right_key(self.plan, self.depth_key, self.models)

    def output_key(self) -> str:
        """What the encoded pieces depend on."""
        return _output_key(self.plan, self.right_key())

    def _right_and_encode(self, reader: FrameReader, depth: DepthFrames,
                          stage: WarpStage) -> dict[str, list[Segment]]:
        plan, settings = self.plan, self.settings
        right_store = self.store.stage("right", self.right_key())
        out_store = self.store.stage("encode", self.output_key())
        chunks = self._chunks()
        pieces = plan_pieces(chunks, settings.output.segment_frames)

        done = 0
        while done < len(pieces) and all(out_store.has(segment_name(kind, pieces[done].index))
                                         for kind in plan.job.outputs):
            done += 1
        if done < len(pieces):
            model = self.models.get(model_files.STEREOCRAFTER) if settings.inpaint is not None else None
            eyes = _RightEyes(stage, reader, depth, chunks, right_store, model)
            if done:
                self.reporter.notice(f"Resuming: {pieces[done].start} of {plan.frames} frames already encoded")
            with self.reporter.bar(STEREO, plan.frames) as bar:
                bar(pieces[done].start, plan.frames)
                for piece in pieces[done:]:
                    outputs = _Outputs(plan, out_store, piece)
                    try:
                        for first, left, right, depth_frames in eyes.frames(piece):
                            outputs.write(first, left, right, depth_frames)
                            bar(first + left.shape[0], plan.frames)
                        outputs.close()
                    except BaseException:
                        outputs.abandon()
                        raise
                    if not plan.job.keep_work:
                        eyes.forget(piece)
        return {kind: [Segment(out_store.path(segment_name(kind, piece.index)), plan.time_of(plan.start + piece.start))
                       for piece in pieces] for kind in plan.job.outputs}


class _RightEyes:
    """The right eye, chunk by chunk: from the store where a chunk is finished, else computed (and stored).

    Yields, per chunk of a piece: (first run frame, left, right, depth picture or None) for the chunk's
    new frames. Without inpainting nothing is stored: the warp is recomputed (it is exact and cheap).
    """

    def __init__(self, conversion: WarpStage, reader: FrameReader, depth: DepthFrames, chunks: list[Chunk],
                 store: StageStore, model: VideoDiffusionModel | None):
        # `conversion`: what this stage reads of its run (plan, settings, reporter, warp and depth picture).
        self.conversion, self.reader, self.depth, self.chunks = conversion, reader, depth, chunks
        self.store, self.model = store, model
        self.want_depth = "depth" in conversion.plan.job.outputs
        self.inpainter: ChunkInpainter | None = None
        self.next_to_compute = 0  # the chunk whose state the inpainter is at
        self.carry: torch.Tensor | None = None
        self.encoded: set[int] = set()

    def _left(self, start: int, stop: int) -> torch.Tensor:
        plan = self.conversion.plan
        return self.reader.read(plan.start + start, plan.start + stop).float().div_(255.0)

    def frames(self, piece: Piece) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        for index in piece.chunks:
            chunk = self.chunks[index]
            new = slice(chunk.start + chunk.reused, chunk.end)
            if self.model is None:  # chunks without inpainting reuse nothing: `new` is the whole chunk
                left = self._left(new.start, new.stop)
                depth = self.depth.read(new.start, new.stop)
                picture = self._picture(depth, new)  # before the warp, which reuses the depth in place
                right, _ = self.conversion.warp(left, depth, new, self.depth)
            else:
                left, right, picture = self._inpainted(index)
            yield new.start, left, right, picture

    def _picture(self, depth: torch.Tensor, frames: slice) -> torch.Tensor | None:
        """The depth output's frames, where one is asked for; `depth` is left as it is."""
        return self.conversion.depth_picture(depth, frames, self.depth) if self.want_depth else None

    # inpainting, with its state kept per chunk

    def _name(self, index: int) -> str:
        return f"chunk-{index:06d}.safetensors"

    def _inpainted(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Left eye, 8-bit right eye (as floats: what every later step reads) and depth picture (or None) of
        chunk `index`'s new frames."""
        chunk = self.chunks[index]
        saved = self.store.load_tensors(self._name(index))
        if saved is not None:
            new = slice(chunk.start + chunk.reused, chunk.end)
            picture = self._picture(self.depth.read(new.start, new.stop), new) if self.want_depth else None
            return self._left(new.start, new.stop), saved[0]["right"].float().div_(255.0), picture
        self._catch_up(index)
        return self._compute(index)

    def _catch_up(self, index: int) -> None:
        """Bring the inpainter to the state it has before chunk `index`: from the kept state of chunk
        index - 1, else by recomputing from the first chunk."""
        if self.inpainter is not None and self.next_to_compute == index:
            return
        settings = self.conversion.settings
        generator = torch.Generator().manual_seed(int(settings.seed))
        self.inpainter = ChunkInpainter(self.model, settings.inpaint, generator)
        self.carry, self.next_to_compute = None, 0
        saved = self.store.load_tensors(self._name(index - 1)) if index else None
        if saved is not None:
            tensors, meta = saved
            restore_generator(generator, tensors)
            self.inpainter.tile_num = meta["tile_num"]
            self.carry, self.next_to_compute = tensors.get("carry"), index
            self.conversion.reporter.notice(
                f"Resuming: inpainting continues at frame {self.conversion.plan.start + self.chunks[index].start}")
            return
        if index:
            self.conversion.reporter.notice("Resuming: the inpainting state was not kept; recomputing from the start")
        while self.next_to_compute < index:
            self._compute(self.next_to_compute)

    def _compute(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        chunk, settings = self.chunks[index], self.conversion.settings
        left = self._left(chunk.start, chunk.end)
        depth = self.depth.read(chunk.start, chunk.end)
        new = slice(chunk.reused, chunk.frames)
        picture = self._picture(depth[new], slice(chunk.start + chunk.reused, chunk.end))  # before the warp
        warped, occlusion = self.conversion.warp(left, depth, slice(chunk.start, chunk.end), self.depth)
        with torch.no_grad():
            done = self.inpainter.chunk(warped, occlusion, self.carry, chunks_after=len(self.chunks) - index - 1)
        right = to_bytes(finish_frames(done.frames[new], warped[new], occlusion[new], left[new], settings.inpaint,
                                       done.skipped))
        # The next chunk starts from the model's raw output (at its working size) of its reused frames: this
        # chunk's frames, where the ones it reused itself are the carried ones.
        stored = {"right": right, **generator_state(self.inpainter.denoise.generator)}
        if index + 1 < len(self.chunks):
            following = self.chunks[index + 1]
            outputs = done.frames
            first = following.start - chunk.start
            stored["carry"] = outputs[first:first + following.reused].clone()
        # One file per chunk holds its frames and the state after it: both exist, or neither.
        self.store.save_tensors(self._name(index), stored,
                                {"tile_num": self.inpainter.tile_num})
        if index - 1 in self.encoded:  # its frames are encoded and its state is superseded
            self.store.remove(self._name(index - 1))
        self.carry, self.next_to_compute = stored.get("carry"), index + 1
        return left[new], right.float().div_(255.0), picture

    def forget(self, piece: Piece) -> None:
        """Drop the kept chunks of an encoded piece (its encoded files hold the frames now), except the
        last one, whose state the next chunk starts from."""
        for index in piece.chunks[:-1]:
            self.store.remove(self._name(index))
        self.encoded.update(piece.chunks)


# --- the whole conversion ------------------------------------------------------------------------------


def finish_outputs(plan: Plan, segments: dict[str, list[Segment]]) -> None:
    """Join each output's pieces into its file, with the source's audio (not for the depth output), and
    the stereo output's layout in its metadata where players look for it."""
    start = plan.info.times(plan.start, plan.start + 1)[0]
    audio_range = (start, plan.info.end_time(plan.stop))
    output = plan.settings.output
    metadata = metadata_for_layout(output.layout, output.swap_eyes) if output.metadata else None
    for kind, path in plan.job.outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tagged = kind == "stereo" and metadata is not None
        matroska = container_format(path) == "matroska"
        join_segments(path, segments[kind], audio_from=None if kind == "depth" else plan.info.path,
                      audio_range=audio_range, streams=plan.streams.get(kind),
                      stream_metadata=_matroska_stereo_mode(metadata) if tagged and matroska else None,
                      finish=(lambda partial: write_spatial_metadata(partial, metadata)) if tagged and not matroska
                      else None)


def _matroska_stereo_mode(metadata) -> dict[str, str]:
    """Matroska's StereoMode for a layout (FFmpeg's muxer reads it from the stream's metadata)."""
    names = {"left-right": "left_right", "right-left": "right_left", "top-bottom": "top_bottom"}
    return {"stereo_mode": names[metadata.stereo_mode]} if metadata.stereo_mode in names else {}


def write_comfort_report(plan: Plan, extremes: list[tuple[int, tuple[torch.Tensor, ...]]]) -> str:
    """The comfort report (PNG plot + JSON summary) from per-frame disparity extremes in pixels, given as
    (first frame of the run, (nearest, median, farthest)) parts; returns its one-line verdict."""
    job = plan.job
    report = ComfortReport(plan.info.width, job.comfort_limits, job.comfort_screen_px, float(plan.info.fps))
    for first, (nearest, median, farthest) in extremes:
        report.record(nearest, median, farthest, first_frame=first)
    report.save(job.comfort_report, job.comfort_report.with_suffix(".json"))
    return report.verdict()


WAITING = "waiting for the other run"


@contextmanager
def claimed(job: ConversionJob, store: WorkStore, reporter: Reporter) -> Iterator[bool]:
    """The job's work folder held by this run for the duration (WorkStore.claim). Yields True when it
    waited for another run that has meanwhile written every output (nothing is left to do). An OS error
    (disk full, permission, ...) in the work ends it as one StereoInputError line; the finished work stays."""
    with ExitStack() as waiting_bar:
        tick = None

        def waiting(pid: int | None) -> None:
            nonlocal tick
            if tick is None:
                reporter.notice(f"Waiting for the other run on '{job.outputs['stereo']}' (process {pid or '?'}) "
                                f"to end ...")
                tick = waiting_bar.enter_context(reporter.bar(WAITING, 1))
            tick(0, 1)

        with os_errors_explained(job.work_dir), store.claim(job.wait, waiting):
            waiting_bar.close()
            finished = tick is not None and all(is_complete_video(path) for path in job.outputs.values())
            if finished:
                reporter.notice(f"'{job.outputs['stereo']}' was written by the other run.")
            yield finished


def convert(job: ConversionJob, settings: ConversionSettings, models: Models, device: torch.device | str = "cpu",
            reporter: Reporter | None = None, plan: Plan | None = None) -> Plan:
    """Convert one video file (see ConversionJob); returns the plan it ran. `plan`: the job's plan where the
    caller has made it already (planning probes every packet of the inputs)."""
    plan = plan or plan_conversion(job, settings)
    store = WorkStore(job.work_dir, job.option("work_dir"))
    reporter = reporter or Reporter()
    with claimed(job, store, reporter) as finished:
        if not finished:
            result = Conversion(plan, models, device, reporter, store).run()
            finish_conversion(plan, result.segments, [(0, result.comfort)], reporter, store)
    return plan


def finish_conversion(plan: Plan, segments: dict[str, list[Segment]],
                      comfort: list[tuple[int, tuple[torch.Tensor, ...]]], reporter: Reporter,
                      store: WorkStore) -> None:
    """The outputs joined from their pieces, the comfort report where asked for, the work folder removed
    unless it is to be kept."""
    finish_outputs(plan, segments)
    if plan.job.comfort_report is not None:
        reporter.notice(write_comfort_report(plan, comfort))
    if not plan.job.keep_work:
        store.remove()
