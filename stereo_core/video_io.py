"""Video files in and out (PyAV, which ComfyUI itself uses): frames, frame rate, and the audio track.

Frames are float [T, H, W, 3] in 0..1 on the CPU, as everywhere in stereo_core. Writing
goes to a temporary file that is renamed at the end, so an interrupted run never leaves
a truncated video under the final name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import StereoInputError
from .frames import DEFAULT_BATCH_FRAMES, check_clip, frame_batches

# Audio codecs an mp4 file can hold as they are (copied, not re-encoded).
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}


def _av():
    try:
        import av
    except ImportError as error:  # pragma: no cover - av ships with every current ComfyUI
        raise StereoInputError("Reading and writing video files needs PyAV: pip install av") from error
    return av


@dataclass
class Video:
    frames: torch.Tensor  # [T, H, W, 3] float32 in 0..1
    fps: Fraction
    path: Path


def read_video(path: str | Path, max_frames: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> Video:
    """Decode a video file's frames (the first `max_frames` if given) and its frame rate."""
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise StereoInputError(f"Video file '{path}' does not exist.")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise StereoInputError(f"'{path}' could not be opened as a video ({error}).") from error
    with container:
        if not container.streams.video:
            raise StereoInputError(f"'{path}' has no video stream.")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        expected = stream.frames or 0
        fps = stream.average_rate or stream.guessed_rate or Fraction(30)
        decoded = []
        for frame in container.decode(stream):
            decoded.append(frame.to_ndarray(format="rgb24"))
            if progress:
                progress(len(decoded), max(expected, len(decoded)))
            if max_frames is not None and len(decoded) >= max_frames:
                break
    if not decoded:
        raise StereoInputError(f"'{path}' has no frames that could be decoded.")
    frames = torch.from_numpy(np.stack(decoded)).float().div_(255.0)
    return Video(frames=frames, fps=Fraction(fps), path=path)


def to_bytes(frames: torch.Tensor) -> torch.Tensor:
    """0..1 floats to 8-bit, rounded."""
    return frames.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


def _even(frames: torch.Tensor) -> torch.Tensor:
    """yuv420p needs even sizes: repeat the last row/column instead of cropping picture away."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if not (pad_h or pad_w):
        return frames
    return F.pad(frames.permute(0, 3, 1, 2), (0, pad_w, 0, pad_h), mode="replicate").permute(0, 2, 3, 1)


def _add_audio(av, output, source: Path):
    """Output audio stream copied (or, for codecs mp4 cannot hold, re-encoded to AAC) from `source`."""
    with av.open(str(source)) as container:
        if not container.streams.audio:
            return None
        audio = container.streams.audio[0]
        if audio.codec_context.name in _MP4_AUDIO:
            return output.add_stream_from_template(audio), True
        return output.add_stream("aac", rate=audio.rate), False


def _mux_audio(av, output, source: Path, stream, copy: bool, duration: float) -> None:
    """Audio up to the video's duration, so a shortened clip (--max-frames) keeps in sync and ends together."""
    with av.open(str(source)) as container:
        audio = container.streams.audio[0]
        if copy:
            for packet in container.demux(audio):
                if packet.dts is None:
                    continue
                if packet.pts is not None and float(packet.pts * audio.time_base) >= duration:
                    break
                packet.stream = stream
                output.mux(packet)
            return
        for frame in container.decode(audio):
            if frame.time is not None and frame.time >= duration:
                break
            frame.pts = None
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))


def write_video(path: str | Path, frames: torch.Tensor, fps: float | Fraction, audio_from: str | Path | None = None,
                crf: int = 16, batch: int = DEFAULT_BATCH_FRAMES,
                progress: Callable[[int, int], None] | None = None) -> Path:
    """Encode frames [T, H, W, 3] (0..1) as H.264 mp4 at `fps`, with the audio of `audio_from` if it has any."""
    av = _av()
    frames = check_clip(frames, "frames")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix or '.mp4'}")
    fps = Fraction(fps).limit_denominator(1001)
    total = frames.shape[0]
    try:
        with av.open(str(partial), mode="w", format="mp4") as output:
            video = output.add_stream("libx264", rate=fps)
            _, video.height, video.width, _ = _even(frames[:1]).shape
            video.pix_fmt = "yuv420p"
            video.options = {"crf": str(crf)}
            audio = _add_audio(av, output, Path(audio_from)) if audio_from else None
            for frame_slice in frame_batches(total, batch):
                pixels = to_bytes(_even(frames[frame_slice])).numpy()
                for picture in pixels:
                    output.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
                if progress:
                    progress(frame_slice.stop, total)
            output.mux(video.encode(None))
            if audio is not None:
                _mux_audio(av, output, Path(audio_from), audio[0], audio[1], float(total / fps))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
