"""Short synthetic video files (with an audio track) for the command-line and workflow tests."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from stereo_core.layouts import compose_splat_grid
from stereo_core.video_io import read_video, write_video

SAMPLE_RATE = 44100


def picture(index: int, width: int, height: int) -> np.ndarray:
    """A frame with depth-like structure: a gradient background and a bright square that moves."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    frame = np.empty((height, width, 3), np.float32)
    frame[..., 0] = x
    frame[..., 1] = 255 - x
    frame[..., 2] = 90
    left = 4 + 2 * index
    frame[height // 4: height // 2, left: left + width // 4] = (240, 220, 40)
    return frame.astype(np.uint8)


def make_video(path: Path, frames: int = 10, width: int = 96, height: int = 64, fps: Fraction = Fraction(24),
               audio_codec: str | None = "aac") -> Path:
    """H.264 video with a 440 Hz tone as long as the video (audio_codec None: silent, no audio stream)."""
    container_format = "mov" if audio_codec and audio_codec.startswith("pcm") else None
    with av.open(str(path), "w", format=container_format) as output:
        video = output.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = output.add_stream(audio_codec, rate=SAMPLE_RATE) if audio_codec else None
        for index in range(frames):
            output.mux(video.encode(av.VideoFrame.from_ndarray(picture(index, width, height), format="rgb24")))
        output.mux(video.encode(None))
        if audio is not None:
            samples = int(SAMPLE_RATE * frames / fps)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / SAMPLE_RATE)).astype(np.float32)
            sample_format = "s16" if audio_codec.startswith("pcm_s16") else "fltp"
            block = tone[None] if sample_format == "fltp" else (tone * 32767).astype(np.int16)[None]
            for start in range(0, samples, 1024):
                frame = av.AudioFrame.from_ndarray(block[:, start:start + 1024].copy(), format=sample_format,
                                                   layout="mono")
                frame.sample_rate = SAMPLE_RATE
                output.mux(audio.encode(frame))
            output.mux(audio.encode(None))
    return path


def make_photo(path: Path, width: int = 96, height: int = 64) -> Path:
    """A still image (the first frame of make_video's pictures), in the format its extension names."""
    from PIL import Image

    Image.fromarray(picture(0, width, height)).save(path)
    return path


def make_depth_video(path: Path, frames: int, width: int, height: int, fps: Fraction) -> Path:
    """A depth clip (white = near): a left-to-right ramp with a near box in the middle."""
    depth = torch.linspace(0.1, 0.5, width).view(1, 1, width, 1).repeat(frames, height, 1, 3)
    depth[:, height // 4: 3 * height // 4, width * 5 // 16: width * 45 // 64] = 0.9
    return write_video(path, depth, fps)


def make_grid_video(path: Path, clip: Path, depth: Path) -> Path:
    """A 2x2 splatting-grid video of `clip` (with its audio), holes in a vertical band, as stage 1 writes it."""
    left, depth_vis = read_video(clip), read_video(depth).frames
    occlusion = torch.zeros(left.frames.shape[:3])
    occlusion[:, :, left.frames.shape[2] * 15 // 32: left.frames.shape[2] * 35 // 64] = 1
    warped = left.frames * (1 - occlusion).unsqueeze(-1)
    return write_video(path, compose_splat_grid(left.frames, depth_vis, occlusion, warped), left.fps, audio_from=clip)


def describe(path: Path) -> dict:
    """Frame count, size, fps and audio codec of a video file, as a player sees them."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
    with av.open(str(path)) as container:
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        stream = container.streams.video[0]
        return {"frames": count, "width": stream.codec_context.width, "height": stream.codec_context.height,
                "fps": stream.average_rate, "audio": audio}
