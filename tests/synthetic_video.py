"""Short synthetic video files (with an audio track) for the command-line and workflow tests."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

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
