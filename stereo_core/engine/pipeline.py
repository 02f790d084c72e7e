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
from contextlib import contextmanager
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
from ..depthcrafter import DepthCrafterSettings
from ..disparity import DisparitySettings, disparity_bounds, disparity_from_depth, normalized_depth
from ..errors import StereoInputError
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
    VideoInfo,
    container_format,
    join_segments,
    probe_video,
    to_bytes,
)
from .depth import (
    DEPTH_STATISTICS,
    DepthCrafterFrames,
    DepthFrames,
    DepthVideoFrames,
)
from .store import StageStore, WorkStore, generator_state, restore_generator, settings_key, source_identity

log = logging.getLogger(__name__)

OUTPUT_KINDS = ("stereo", "anaglyph", "depth")
STEREO = "stereo: warp, inpaint, encode"  # the progress stage after the depth's
# Colour matching pools statistics over the frames at hand: a chunk's, or one frame's. 'clip' would need
# every inpainted frame at once.
STREAM_COLOR_MODES = tuple(mode for mode in COLOR_MODES if mode != "clip")
COMPOSE_FRAMES = 2


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
        model = self.get(kind)
        return {"folders": model.folders, "dtype": str(model.dtype), "device": model.device.type}

    def get(self, kind: str) -> VideoDiffusionModel:
        if kind not in self.models:
            raise StereoInputError(f"This conversion needs a {model_files.TITLES[kind]} model; connect its loader.")
        return self.models[kind]


@dataclass(frozen=True)
class OutputSettings:
    layout: str = "sbs"
    swap_eyes: bool = False
    anaglyph: str = "color"  # mode of the anaglyph output, when one is asked for
    crf: int = DEFAULT_CRF
    segment_frames: int = 240  # frames per encoded piece (each starts with a keyframe)
    screen: VirtualScreen = field(default_factory=VirtualScreen)  # the flat screen of the vr180 layout
    metadata: bool = True  # stereo (st3d) and VR180 (sv3d) boxes in MP4/MOV, StereoMode in Matroska


@dataclass(frozen=True)
class ConversionSettings:
    depth: DepthCrafterSettings = field(default_factory=DepthCrafterSettings)
    disparity: DisparitySettings = field(default_factory=DisparitySettings)
    inpaint: InpaintSettings | None = field(default_factory=InpaintSettings)  # None: keep the holes
    output: OutputSettings = field(default_factory=OutputSettings)
    seed: int = 0
    warp_chunk: int = 8  # frames per chunk when there is no inpainting
    auto_convergence: AutoConvergence | None = None  # None: settings.disparity.convergence for every frame

    def check(self, width: int) -> None:
        """Refuse impossible settings before any work (and before any model loads)."""
        self.depth.check()
        self.disparity.validate(width)
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
    depth_info: VideoInfo | None
    start: int
    stop: int
    origin: int | None = None  # the frame shown at the output's time 0, when this run is a part of it

    @property
    def frames(self) -> int:
        return self.stop - self.start

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
            f"--max-frames {info.frames}.")
    stop = min(wanted, info.frames) if stop is None else stop
    settings.check(info.width)
    depth_info = None
    if job.depth_video is not None:
        depth_info = probe_video(job.depth_video)
        if depth_info.frames < stop:
            raise StereoInputError(
                f"The depth video '{job.depth_video}' has {depth_info.frames} frames but '{job.source}' has "
                f"{info.frames}{f' (using {stop})' if stop < info.frames else ''}: give one depth frame per frame.")
        if job.max_frames is None and depth_info.frames > info.frames:
            raise StereoInputError(
                f"The depth video '{job.depth_video}' has {depth_info.frames} frames but '{job.source}' has only "
                f"{info.frames}: it belongs to another (longer) clip. Use the depth video made from this clip, or "
                f"--max-frames to convert only the start.")
    if info.variable_rate:
        log.info("'%s' has a variable frame rate; every frame keeps its own timestamp.", job.source)
    return Plan(job=job, settings=settings, info=info, depth_info=depth_info, start=start, stop=stop)


# --- stage keys: what each stage's result depends on -----------------------------------------------


def _depth_key(plan: Plan, models: Models) -> str:
    base = {"source": source_identity(plan.info.path), "range": [plan.start, plan.stop]}
    if plan.depth_info is not None:
        return settings_key(base, {"depth_video": source_identity(plan.depth_info.path)})
    return settings_key(base, asdict(plan.settings.depth), plan.settings.seed,
                        models.identity(model_files.DEPTHCRAFTER))


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
        sizes = {"stereo": stereo_frame_size(output.layout, height, width, output.screen),
                 "anaglyph": (height, width), "depth": (height, width)}
        time_base = _time_base(plan.info)
        self.writers = {kind: SegmentWriter(store.path(segment_name(kind, piece.index)), sizes[kind][1],
                                            sizes[kind][0], time_base, output.crf, rate=plan.info.fps)
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
                                                 screen=output.screen),
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


def segment_name(kind: str, index: int) -> str:
    return f"{kind}-{index:05d}.mp4"


def _time_base(info: VideoInfo) -> Fraction:
    if info.timestamps is not None:
        return info.time_base
    return 1 / Fraction(info.fps).limit_denominator(1001)


# --- the conversion ---------------------------------------------------------------------------------


class Conversion:
    """One run over frames [plan.start, plan.stop) of a source: its stages, chunk by chunk."""

    def __init__(self, plan: Plan, models: Models, device: torch.device | str = "cpu",
                 reporter: Reporter | None = None, store: WorkStore | None = None):
        self.plan, self.models, self.device = plan, models, torch.device(device)
        self.reporter = reporter or Reporter()
        self.store = store or WorkStore(plan.job.work_dir)
        self.settings = plan.settings
        self.depth_key = _depth_key(plan, models)
        self.convergence: torch.Tensor | None = None
        self.comfort: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    # depth

    def depth(self, reader: FrameReader) -> DepthFrames:
        plan = self.plan
        store = self.store.stage("depth", self.depth_key)
        if plan.depth_info is not None:
            with self.reporter.bar(DEPTH_STATISTICS, plan.frames) as bar:
                depth = DepthVideoFrames(plan.depth_info, plan.start, plan.stop, store, bar)
        else:
            depth = DepthCrafterFrames(self.models.get(model_files.DEPTHCRAFTER), self.settings.depth, reader,
                                       plan.start, plan.stop, store, self.settings.seed, self.reporter.bar,
                                       self.reporter.notice)
        self.convergence = self.convergence_curve(depth)
        return depth

    def convergence_curve(self, depth: DepthFrames, shot_starts: tuple[int, ...] = ()) -> torch.Tensor | None:
        """Per-frame screen-plane depth for auto-convergence (None: the fixed convergence)."""
        auto = self.settings.auto_convergence
        if auto is None:
            return None
        settings, stats = self.settings.disparity, depth.stats
        subject = normalized_depth(stats.subject.view(-1, 1, 1), stats.depth_range, slice(0, depth.frames),
                                   settings).flatten()
        return auto_convergence(subject, shot_starts, float(self.plan.info.fps), settings.convergence, auto)

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

    # warp

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

    # the right eye and the encoded pieces

    def run(self) -> dict[str, list[Segment]]:
        plan = self.plan
        with FrameReader(plan.info) as reader:
            depth = self.depth(reader)
            try:
                self.comfort = self.disparity_extremes(depth)
                return self._right_and_encode(reader, depth)
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

    def _right_and_encode(self, reader: FrameReader, depth: DepthFrames) -> dict[str, list[Segment]]:
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
            eyes = _RightEyes(self, reader, depth, chunks, right_store, model)
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

    def __init__(self, conversion: Conversion, reader: FrameReader, depth: DepthFrames, chunks: list[Chunk],
                 store: StageStore, model: VideoDiffusionModel | None):
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
                      audio_range=audio_range,
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


def convert(job: ConversionJob, settings: ConversionSettings, models: Models, device: torch.device | str = "cpu",
            reporter: Reporter | None = None, plan: Plan | None = None) -> Plan:
    """Convert one video file (see ConversionJob); returns the plan it ran. `plan`: the job's plan where the
    caller has made it already (planning probes every packet of the inputs)."""
    plan = plan or plan_conversion(job, settings)
    store = WorkStore(job.work_dir)
    reporter = reporter or Reporter()
    conversion = Conversion(plan, models, device, reporter, store)
    finish_conversion(plan, conversion.run(), [(0, conversion.comfort)], reporter, store)
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
