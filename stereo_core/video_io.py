"""Video files in and out (PyAV, which ComfyUI itself uses), streamed: frames, timestamps, rotation, audio.

Reading: `probe_video` learns a file's frame count, timestamps and orientation without
decoding it; a `FrameReader` then decodes any range of frames (seeking when it jumps), as
8-bit [n, H, W, 3] tensors turned upright. Writing: `SegmentWriter` encodes consecutive
frames into an H.264 piece; `join_segments` copies pieces (no re-encoding) into the final
container with the source's other streams, as `plan_streams` decided before any work: every audio,
subtitle and data stream copied with its delay and first packet (so it decodes to the same samples
at the same times), or converted where the container cannot hold it. Every file is written under a temporary name and renamed
when complete, so an interruption never leaves a truncated file under a final name.
`read_video` / `write_video` are the whole-clip forms (float frames [T, H, W, 3] in 0..1).
"""

from __future__ import annotations

import heapq
import io
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import StereoInputError
from .files import atomic_output, partial_path, publish
from .frames import DEFAULT_BATCH_FRAMES, check_clip, frame_batches

# Output containers by file extension (PyAV format names).
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# What an audio stream the output's container cannot hold is converted to (its delay compensated).
CONVERTED_AUDIO = "aac"
# Pieces encoded in different processes (before and after a resume, on other machines) must be
# identical. x264's output depends on its thread count, so it is fixed; and its macroblock tree reads
# memory it never wrote on small frames (the same frames gave different bitstreams from run to run),
# so it is off (a few percent more bitrate at the same quality).
ENCODER_OPTIONS = {"threads": "8", "x264-params": "mbtree=0"}
DEFAULT_CRF = 16


def _av():
    try:
        import av
    except ImportError as error:  # pragma: no cover - av ships with every current ComfyUI
        raise StereoInputError("Reading and writing video files needs PyAV: pip install av") from error
    return av


def container_format(path: Path) -> str:
    """The PyAV format for an output path, refusing extensions we cannot write."""
    fmt = CONTAINERS.get(Path(path).suffix.lower())
    if fmt is None:
        choices = ", ".join(sorted(CONTAINERS))
        raise StereoInputError(f"Cannot write '{path}': the extension '{Path(path).suffix}' is not supported. "
                               f"Name the output with one of {choices} (H.264 video).")
    return fmt


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    frames: int  # frames present in the file (its packets), which is what can be decoded
    declared_frames: int  # what the container's index claims (0 if it does not say)
    width: int  # upright size (after rotation)
    height: int
    rotation: int  # degrees the stored picture is turned counterclockwise for display
    fps: Fraction
    time_base: Fraction
    timestamps: tuple[int, ...] | None  # presentation time of each frame (time_base units), if the file has them
    audio_codec: str | None
    sample_aspect: Fraction = Fraction(1)  # width of a stored pixel over its height, as the file asks to show it

    @property
    def variable_rate(self) -> bool:
        if self.timestamps is None or len(self.timestamps) < 3:
            return False
        steps = np.diff(np.asarray(self.timestamps, dtype=np.int64))
        return int(steps.max() - steps.min()) > max(1, int(steps.min()) // 100)

    def times(self, start: int, stop: int) -> list[Fraction]:
        """Presentation times (seconds) of frames [start, stop), relative to the first frame of the file."""
        if self.timestamps is None:
            return [Fraction(index) / self.fps for index in range(start, stop)]
        first = self.timestamps[0]
        return [(pts - first) * self.time_base for pts in self.timestamps[start:stop]]

    def end_time(self, stop: int) -> Fraction:
        """When frame `stop - 1` stops being shown (seconds from the first frame)."""
        if self.timestamps is not None and stop < len(self.timestamps):
            return (self.timestamps[stop] - self.timestamps[0]) * self.time_base
        last = self.times(stop - 1, stop)[0]
        return last + 1 / self.fps


def _open(path: Path):
    av = _av()
    if not path.is_file():
        raise StereoInputError(f"Video file '{path}' does not exist.")
    try:
        container = av.open(str(path))
    except av.error.PermissionError as error:
        raise StereoInputError(f"'{path}' cannot be read: permission denied.") from error
    except av.error.FFmpegError as error:
        raise StereoInputError(f"'{path}' could not be opened as a video ({error}).") from error
    if not container.streams.video:
        container.close()
        raise StereoInputError(f"'{path}' has no video stream.")
    return container


def probe_video(path: str | Path) -> VideoInfo:
    """What a video file holds, read from its packets (fast: nothing is decoded but the first frame)."""
    av = _av()
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        declared = stream.frames or 0
        stamps, complete = [], True
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.pts is None:
                    complete = False
                stamps.append(packet.pts)
        except av.error.FFmpegError:  # a damaged tail: what came before still counts
            pass
        audio = container.streams.audio[0].codec_context.codec.canonical_name if container.streams.audio else None
        time_base = stream.time_base or Fraction(1, 90000)
        fps = stream.average_rate or stream.guessed_rate or Fraction(30)
        sample_aspect = _sample_aspect(stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio)
    first = _first_frame(path)
    if first is None:
        raise StereoInputError(f"'{path}' has no frames that could be decoded.")
    rotation = int(round(first.rotation or 0)) % 360
    width, height = first.width, first.height
    if rotation in (90, 270):
        width, height = height, width
        sample_aspect = 1 / sample_aspect
    timestamps = tuple(sorted(stamps)) if complete and stamps else None
    return VideoInfo(path=path, frames=len(stamps), declared_frames=declared, width=width, height=height,
                     rotation=rotation, fps=Fraction(fps), time_base=Fraction(time_base), timestamps=timestamps,
                     audio_codec=audio, sample_aspect=sample_aspect)


def _sample_aspect(value) -> Fraction:
    """A frame's sample aspect ratio as a Fraction; 1 where the file does not say (0/0, 0/1, None)."""
    if value is None:
        return Fraction(1)
    value = Fraction(value)
    return value if value > 0 else Fraction(1)


def _first_frame(path: Path):
    av = _av()
    with _open(path) as container:
        try:
            return next(container.decode(container.streams.video[0]), None)
        except av.error.FFmpegError:
            return None


def _upright(picture: np.ndarray, rotation: int) -> np.ndarray:
    """The stored picture turned as the file's display matrix says (counterclockwise degrees)."""
    if rotation == 0:
        return picture
    return np.ascontiguousarray(np.rot90(picture, k=rotation // 90))


class FrameReader:
    """Decodes frames by index, upright, as uint8 [n, H, W, 3]; sequential reads cost one decode each.

    Reading frames before the last ones read, or far ahead, seeks to the nearest keyframe first.
    """

    # Decoding this many frames to skip ahead is cheaper than a seek.
    _SEEK_AHEAD = 48

    def __init__(self, info: VideoInfo, grey: bool = False):
        """grey: frames come as [n, H, W] luma (a grey depth video's values, a third of the memory); the
        largest colour seen in them is kept in `colour` (mean channel spread, 0..1, of a thumbnail)."""
        self.info, self.grey = info, grey
        self.colour = 0.0
        self._container = None
        self._frames = None  # iterator over (index, picture)
        self._next = 0  # index of the frame the iterator yields next
        self._index_of: dict[int, int] | None = None  # frame index by timestamp, made at the first seek

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._frames = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _restart(self, start: int) -> None:
        self.close()
        self._container = _open(self.info.path)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        stamps = self.info.timestamps
        if start > 0 and stamps is not None:
            self._container.seek(stamps[start], stream=stream, backward=True, any_frame=False)
            if self._index_of is None:
                self._index_of = {pts: index for index, pts in enumerate(stamps)}
            index_of = self._index_of
            self._frames = ((index_of.get(frame.pts, -1), frame) for frame in self._container.decode(stream))
            self._next = -1  # unknown until the first frame after the seek arrives
        else:
            self._frames = enumerate(self._container.decode(stream))
            self._next = 0

    def read(self, start: int, stop: int) -> torch.Tensor:
        av = _av()
        info = self.info
        if not 0 <= start < stop <= info.frames:
            raise ValueError(f"frames {start}..{stop} outside 0..{info.frames}")
        if self._frames is None or start < self._next or start > self._next + self._SEEK_AHEAD:
            self._restart(start)
        pictures = []
        try:
            for index, frame in self._frames:
                self._next = index + 1
                if index < start:
                    continue
                pictures.append(_upright(self._picture(frame), info.rotation))
                if index + 1 >= stop:
                    break
        except av.error.FFmpegError as error:
            raise StereoInputError(f"'{info.path}' is damaged: decoding failed near frame "
                                   f"{start + len(pictures)} ({error}).") from error
        if len(pictures) != stop - start:
            got = start + len(pictures)
            raise StereoInputError(
                f"'{info.path}' lists {info.frames} frames but only {got} could be decoded: the file is damaged or "
                f"cut short. Re-copy or re-encode it, or convert only the readable part (--max-frames {got}).")
        return torch.from_numpy(np.stack(pictures))

    def _picture(self, frame) -> np.ndarray:
        if not self.grey:
            return frame.to_ndarray(format="rgb24")
        thumbnail = frame.to_ndarray(format="rgb24", width=64, height=36).astype(np.int16)
        spread = float((thumbnail.max(axis=-1) - thumbnail.min(axis=-1)).mean()) / 255
        self.colour = max(self.colour, spread)
        return frame.to_ndarray(format="gray")


@dataclass
class Video:
    frames: torch.Tensor  # [T, H, W, 3] float32 in 0..1
    fps: Fraction
    path: Path


def read_video(path: str | Path, max_frames: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> Video:
    """Decode a whole video file's frames (the first `max_frames` if given), upright, and its frame rate."""
    info = probe_video(path)
    total = info.frames if max_frames is None else min(max_frames, info.frames)
    frames = torch.empty((total, info.height, info.width, 3))
    with FrameReader(info) as reader:
        for part in frame_batches(total, DEFAULT_BATCH_FRAMES):
            frames[part] = reader.read(part.start, part.stop).float().div_(255.0)
            if progress:
                progress(part.stop, total)
    return Video(frames=frames, fps=info.fps, path=info.path)


def to_bytes(frames: torch.Tensor) -> torch.Tensor:
    """0..1 floats to 8-bit, rounded."""
    return frames.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


def _even(pictures: torch.Tensor) -> torch.Tensor:
    """yuv420p needs even sizes: repeat the last row/column of uint8 [n, H, W, 3] instead of cropping."""
    pad_h, pad_w = pictures.shape[1] % 2, pictures.shape[2] % 2
    if not (pad_h or pad_w):
        return pictures
    return F.pad(pictures.permute(0, 3, 1, 2), (0, pad_w, 0, pad_h), mode="replicate").permute(0, 2, 3, 1)


class SegmentWriter:
    """Encodes consecutive frames into one H.264 piece (its own closed GOPs, timestamps from 0).

    Pieces made with the same size and settings join without re-encoding (join_segments). The
    file appears under `path` only when close() completes.
    """

    def __init__(self, path: Path, width: int, height: int, time_base: Fraction, crf: int = DEFAULT_CRF,
                 rate: Fraction | None = None, sample_aspect: Fraction = Fraction(1)):
        """sample_aspect: how wide a pixel is shown (over its height), written into the stream where not 1."""
        av = _av()
        self.path = Path(path)
        self._partial = partial_path(self.path)
        self.time_base = time_base
        self._container = av.open(str(self._partial), mode="w", format="mp4")
        stream = self._container.add_stream("libx264", rate=rate or Fraction(30))
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.options = {"crf": str(crf), **ENCODER_OPTIONS}
        if sample_aspect != 1:
            stream.codec_context.sample_aspect_ratio = Fraction(sample_aspect)
        self._stream = stream
        self._first: Fraction | None = None

    def write(self, pictures: torch.Tensor, times: Sequence[Fraction]) -> None:
        """Encode uint8 frames [n, H, W, 3] shown at `times` (seconds)."""
        av = _av()
        if self._first is None:
            self._first = times[0]
        for picture, time in zip(_even(pictures).numpy(), times):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = round((time - self._first) / self.time_base)
            frame.time_base = self.time_base
            self._container.mux(self._stream.encode(frame))

    def close(self) -> Path:
        self._container.mux(self._stream.encode(None))
        self._container.close()
        publish(self._partial, self.path)
        return self.path

    def abandon(self) -> None:
        """Drop an unfinished piece (nothing appears under its name)."""
        try:
            self._container.close()
        except Exception:  # already closed, or the encoder died with the run
            pass
        self._partial.unlink(missing_ok=True)


@dataclass(frozen=True)
class Segment:
    path: Path
    start: Fraction  # when its first frame is shown in the output (seconds)


@dataclass(frozen=True)
class StreamChoice:
    """One stream of the source that goes into an output besides the video."""

    index: int  # the stream's index in the source file
    kind: str  # "audio", "subtitle" or "data"
    convert_to: str | None = None  # None: copied as it is; else the encoder it is converted with


@dataclass(frozen=True)
class StreamPlan:
    """What an output carries of its source's streams other than the video, decided before any work."""

    source: Path
    streams: tuple[StreamChoice, ...]
    notices: tuple[str, ...]  # one line each for what is converted or left out


# The stream metadata an output keeps: the track's language and its title (which MP4/MOV read back as 'name').
_KEPT_TAGS = {"language": ("language",), "title": ("title", "name")}


def _describe(stream) -> str:
    codec = stream.codec_context.name if stream.codec_context is not None else "data"
    language = stream.metadata.get("language")
    return f"{stream.type} stream {stream.index} ({codec}{', ' + language if language and language != 'und' else ''})"


def _container_holds(av, fmt: str, stream) -> bool:
    """Whether the muxer for `fmt` takes `stream` as it is: asked of the muxer itself, by writing a header. PCM in
    MP4 (which FFmpeg 8 writes) is refused: few players play it; MOV and Matroska hold it."""
    if fmt == "mp4" and stream.type == "audio" and stream.codec_context.name.startswith("pcm_"):
        return False
    probe = av.open(io.BytesIO(), mode="w", format=fmt)
    try:
        probe.add_stream_from_template(stream)
        probe.start_encoding()
        return True
    except (ValueError, TypeError, NotImplementedError, av.error.FFmpegError):
        return False
    finally:
        try:
            probe.close()
        except av.error.FFmpegError:  # a trailer with no packets; only the header was the question
            pass


def plan_streams(source: str | Path, output: str | Path, notify: Callable[[str], None] | None = None) -> StreamPlan:
    """Which of `source`'s streams besides its (first) video go into `output`, and how: every audio, subtitle
    and data stream is copied where `output`'s container holds it as it is; audio it cannot hold is converted
    (to AAC, in sync); anything else is left out. Each conversion and omission is named in a notice (one line,
    also given to `notify`)."""
    av = _av()
    source = Path(source)
    fmt = container_format(output)
    streams, notices = [], []
    with _open(source) as container:
        video = container.streams.video[0]
        for stream in container.streams:
            if stream.index == video.index:
                continue
            kind = stream.type if stream.type in ("audio", "subtitle", "data") else None
            if kind is not None and _container_holds(av, fmt, stream):
                streams.append(StreamChoice(stream.index, kind))
            elif kind == "audio":
                streams.append(StreamChoice(stream.index, kind, CONVERTED_AUDIO))
                notices.append(f"{Path(output).name}: the {_describe(stream)} of '{source.name}' cannot go into a "
                               f"{Path(output).suffix} file as it is; it is converted to {CONVERTED_AUDIO.upper()}, "
                               f"in sync (a .mkv output keeps it exactly).")
            else:
                notices.append(f"{Path(output).name}: the {_describe(stream)} of '{source.name}' is left out (a "
                               f"{Path(output).suffix} file cannot hold it{'; a .mkv can' if kind else ''}).")
    for notice in notices if notify is not None else ():
        notify(notice)
    return StreamPlan(source, tuple(streams), tuple(notices))


def _stream_packets(av, output, source: Path, choice: StreamChoice, start: Fraction, end: Fraction):
    """An output stream for one of `source`'s streams over `start`..`end` (seconds of its video) and an iterator
    over its packets in output time (0 = the source's video at `start`)."""
    container = av.open(str(source))
    stream = container.streams[choice.index]
    video = container.streams.video[0]
    offset = Fraction(video.start_time or 0) * (video.time_base or 1) + start
    stop = offset + (end - start)
    if choice.convert_to is None:
        target = output.add_stream_from_template(stream)
        packets = _copied(container, stream, target, offset, stop)
    else:
        rate = stream.rate
        rates = av.Codec(choice.convert_to, "w").audio_rates
        if rates and rate not in rates:
            rate = 48000
        target = output.add_stream(choice.convert_to, rate=rate)
        target.layout = stream.layout
        target.time_base = Fraction(1, rate)
        packets = _converted(av, container, stream, target, offset, stop)
    for key, names in _KEPT_TAGS.items():
        value = next((stream.metadata[name] for name in names if stream.metadata.get(name)), None)
        if value is not None:
            target.metadata[key] = value
    target.disposition = stream.disposition
    return target, packets


def _copied(container, stream, target, offset: Fraction, stop: Fraction):
    """The packets of `stream` shown between `offset` and `stop`, and the one before the first of them: it holds
    the codec's priming (an encoder delay, an MDCT overlap), which the output's first samples decode from. It
    lands before time 0, where the output's edit list (MP4/MOV) or timestamps (Matroska) skip it, as the
    source's did; into Matroska it starts on a millisecond tick (_first_block_on_tick)."""
    rate = stream.rate if stream.type == "audio" else None
    # Timed to the sample with no codec delay of its own (MP4/MOV): into Matroska its first packet lands on a tick.
    on_tick = target.container.format.name == "matroska" and bool(rate) and not stream.codec_context.delay \
        and stream.time_base <= Fraction(1, rate)
    with container:
        for kept in _packets_in(container, stream, offset, stop):
            if on_tick:
                _first_block_on_tick(kept, rate)
                on_tick = False
            kept.stream = target
            yield kept


def _first_block_on_tick(packet, rate: int) -> None:
    """Matroska times blocks in whole milliseconds, and FFmpeg writes a copy's codec delay (CodecDelay) only from
    a field PyAV cannot set (AVCodecParameters.initial_padding), so a first packet timed between ticks (AAC's
    priming at -1024/44100 s) would land up to half a millisecond off. A first packet that ends by the output's
    start (AAC's priming packet, or the one before a cut) is all pre-roll: it starts instead at the next time
    that is both a tick and a whole sample (every 1/gcd(rate, 1000) s: 10 ms at 44.1 kHz, 1 ms at 48 kHz) and
    drops as many samples from its end (DiscardPadding, from its SKIP_SAMPLES side data), so it still ends where
    the next packet begins and every sample after it plays at its source time. A first packet shown in part
    (MP3's and AC3's priming is shorter than their packets) keeps its rounded time."""
    start = packet.pts * packet.time_base
    length = round((packet.duration or 0) * packet.time_base * rate)
    step = Fraction(1, math.gcd(rate, 1000))
    tick = -((-start) // step) * step  # the first such time at or after the packet's start
    dropped = round((tick - start) * rate)
    side_data = getattr(_av().packet, "PacketSideData", None)  # PyAV 18
    if not dropped or dropped >= length or start + Fraction(length, rate) > 0 or side_data is None:
        return
    skip = side_data(_av().packet.packet_sidedata_type_from_literal("skip_samples"), 10)
    skip.update(bytes(4) + dropped.to_bytes(4, "little") + bytes(2))  # skip none at the start, `dropped` at the end
    packet.set_sidedata(skip)
    packet.pts = packet.dts = round(tick / packet.time_base)
    packet.duration = round(Fraction(length - dropped, rate) / packet.time_base)


def _packets_in(container, stream, offset: Fraction, stop: Fraction):
    """`stream`'s packets shown between `offset` and `stop` and the one before them, timed from `offset`. Audio
    timed coarser than its samples (Matroska's milliseconds) is timed again to the sample: from its codec delay,
    by whole packets."""
    rate = stream.rate if stream.type == "audio" else None
    retime = bool(rate) and stream.time_base > Fraction(1, rate)
    frame_size = stream.codec_context.frame_size if retime else 0
    sample = None  # the next packet's first sample, when retimed
    previous = None
    for packet in container.demux(stream):
        if packet.dts is None or packet.pts is None:
            continue
        duration = (packet.duration or 0) * stream.time_base
        if retime:
            if sample is None:
                delay = stream.codec_context.delay
                sample = -delay if delay else round(packet.pts * stream.time_base * rate)
            time = Fraction(sample, rate)
            length = frame_size or round(duration * rate)
            packet.time_base = Fraction(1, rate)
            packet.pts = packet.dts = sample
            packet.duration = length
            sample += length
            duration = Fraction(length, rate)
        else:
            time = packet.pts * stream.time_base
        if time >= stop:
            break
        if time + duration <= offset:
            previous = packet
            continue
        for kept in (previous, packet):
            if kept is not None:
                shift = round(offset / kept.time_base)
                kept.pts -= shift
                kept.dts -= shift
                yield kept
        previous = None


def _converted(av, container, stream, target, offset: Fraction, stop: Fraction):
    """`stream` decoded between `offset` and `stop` (cut to the sample) and encoded for `target`. Frames carry
    their times, so the encoder's delay goes before time 0 (its priming packet), where the edit list (MP4/MOV)
    or the codec delay (Matroska) skips it: the converted audio stays in sync."""
    with container:
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            if frame.pts * frame.time_base >= stop:
                break
            frame = _cut(av, frame, offset, stop)
            if frame is not None:
                yield from target.encode(frame)
        yield from target.encode(None)


def _cut(av, frame, offset: Fraction, stop: Fraction):
    """`frame`'s samples between `offset` and `stop` (seconds), timed from `offset` in 1/rate; None if none."""
    rate = frame.sample_rate
    first = round((frame.pts * frame.time_base - offset) * rate)  # the frame's first sample, from offset
    last = round((stop - offset) * rate)
    begin, end = max(0, -first), min(frame.samples, last - first)
    if end <= begin:
        return None
    if (begin, end) != (0, frame.samples):
        samples = frame.to_ndarray()
        kept = samples[:, begin:end] if frame.format.is_planar else \
            samples.reshape(-1, len(frame.layout.channels))[begin:end].reshape(1, -1)
        cut = av.AudioFrame.from_ndarray(np.ascontiguousarray(kept), format=frame.format.name,
                                         layout=frame.layout.name)
        cut.sample_rate = rate
        frame = cut
    frame.pts = first + begin
    frame.time_base = Fraction(1, rate)
    return frame


def _time(packet) -> Fraction:
    return (packet.dts if packet.dts is not None else packet.pts or 0) * packet.time_base


def join_segments(path: Path, segments: Sequence[Segment], audio_from: Path | None = None,
                  audio_range: tuple[Fraction, Fraction] | None = None,
                  finish: Callable[[Path], None] | None = None, stream_metadata: dict | None = None,
                  streams: StreamPlan | None = None) -> Path:
    """Copy H.264 pieces (no re-encoding) into one file at `path`, with the audio (and subtitle and data) streams
    of `audio_from` over `audio_range` (seconds of its video), interleaved by time, as `streams` (plan_streams,
    made here where not given) says. `stream_metadata` goes into the video stream's tags; `finish(partial)` may
    rewrite the complete file before it is renamed into place (e.g. to add stereo metadata)."""
    av = _av()
    path = Path(path)
    fmt = container_format(path)
    if not segments:
        raise ValueError("no segments to join")
    with atomic_output(path) as partial:
        with av.open(str(partial), mode="w", format=fmt) as output:
            with av.open(str(segments[0].path)) as first:
                video = output.add_stream_from_template(first.streams.video[0])
            video.metadata.update(stream_metadata or {})
            if audio_from is not None and streams is None:
                streams = plan_streams(audio_from, path)
            others = [] if audio_from is None else \
                [_stream_packets(av, output, Path(audio_from), choice, *audio_range)[1] for choice in streams.streams]

            def video_packets():
                last_dts = None
                for segment in segments:
                    with av.open(str(segment.path)) as piece:
                        stream = piece.streams.video[0]
                        shift = round(segment.start / stream.time_base)
                        for packet in piece.demux(stream):
                            if packet.dts is None:
                                continue
                            packet.pts += shift
                            packet.dts += shift
                            # A piece of one or two frames has no reordering delay, so the next piece's
                            # first decode times can fall before its last: nudged after it (still before
                            # their presentation times; decoding order and frames are unchanged).
                            if last_dts is not None and packet.dts <= last_dts:
                                packet.dts = last_dts + 1
                            last_dts = packet.dts
                            packet.stream = video
                            yield packet

            for packet in heapq.merge(video_packets(), *others, key=_time):
                output.mux(packet)
        if finish is not None:
            finish(partial)
    return path


def is_complete_video(path: Path) -> bool:
    """Whether `path` is a video file a player can open with at least one frame (not empty or cut short)."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    try:
        return _first_frame(path) is not None
    except (StereoInputError, OSError):
        return False


def write_video(path: str | Path, frames: torch.Tensor, fps: float | Fraction, audio_from: str | Path | None = None,
                crf: int = DEFAULT_CRF, batch: int = DEFAULT_BATCH_FRAMES,
                progress: Callable[[int, int], None] | None = None) -> Path:
    """Encode frames [T, H, W, 3] (0..1) as H.264 at `fps` (container from the extension: mp4, mov, mkv),
    with the audio of `audio_from` if it has any."""
    frames = check_clip(frames, "frames")
    path = Path(path)
    container_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fps = Fraction(fps).limit_denominator(1001)
    total = frames.shape[0]
    piece = path.with_name(f".{path.stem}.video.mp4")
    writer = SegmentWriter(piece, frames.shape[2], frames.shape[1], 1 / fps, crf, rate=fps)
    try:
        for part in frame_batches(total, batch):
            writer.write(to_bytes(frames[part]), [Fraction(index) / fps for index in range(part.start, part.stop)])
            if progress:
                progress(part.stop, total)
        writer.close()
        join_segments(path, [Segment(piece, Fraction(0))], audio_from=audio_from,
                      audio_range=(Fraction(0), Fraction(total) / fps))
    except BaseException:
        writer.abandon()
        raise
    finally:
        piece.unlink(missing_ok=True)
    return path
