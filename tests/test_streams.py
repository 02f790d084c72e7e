"""Real-world streams survive a conversion: every audio track (exact, in sync), its language and title, and
the pixel aspect. Geometry-only conversions (a depth video, no inpainting): no models, a second of 64x36."""

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from stereo_core import cli
from stereo_core.engine import ConversionJob, ConversionSettings, plan_conversion
from stereo_core.layouts import LAYOUTS
from stereo_core.video_io import probe_video, write_video

FPS, FRAMES, WIDTH, HEIGHT = 24, 24, 64, 36
RATES = {"opus": 48000}
LANGUAGES = ("eng", "fra")


def signal(samples: int, rate: int, seed: int) -> np.ndarray:
    """A stereo chirp with noise [2, samples]: any offset or lost packet shows."""
    t = np.arange(samples) / rate
    chirp = 0.3 * np.sin(2 * np.pi * (200 + 3000 * t) * t)
    noise = 0.05 * np.random.default_rng(seed).standard_normal(samples)
    mono = (chirp + noise).astype(np.float32)
    return np.stack([mono, np.roll(mono, 11)])


def make_clip(path, codecs, container=None, sample_aspect=None, width=WIDTH):
    """A second of H.264 (64x36 unless told) with one audio stream per codec (language and title set on each)."""
    with av.open(str(path), "w", format=container) as output:
        video = output.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = width, HEIGHT, "yuv420p"
        if sample_aspect is not None:
            video.codec_context.sample_aspect_ratio = sample_aspect
        audio = []
        for number, codec in enumerate(codecs):
            rate = RATES.get(codec, 44100)
            stream = output.add_stream(codec, rate=rate, layout="stereo")
            stream.codec_context.options = {"strict": "experimental"}  # FFmpeg 7's own Opus encoder (PyAV 14)
            stream.metadata["language"] = LANGUAGES[number]
            stream.metadata["title"] = f"track {number}"
            audio.append((stream, rate))
        for index in range(FRAMES):
            picture = np.full((HEIGHT, width, 3), 120, np.uint8)
            picture[:, : 2 + 2 * index] = 220
            output.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        output.mux(video.encode(None))
        for seed, (stream, rate) in enumerate(audio):
            samples = signal(rate * FRAMES // FPS, rate, seed)
            names = [f.name for f in stream.codec_context.codec.audio_formats]
            sample_format = next(f for f in ("fltp", "flt", "s16p", "s16", "s32p", "s32") if f in names)
            if sample_format.startswith("s16"):
                samples = (samples * 32767).astype(np.int16)
            elif sample_format.startswith("s32"):
                samples = (samples * 2.0 ** 31).astype(np.int32)
            for start in range(0, samples.shape[1], 1024):
                block = samples[:, start:start + 1024]
                if not sample_format.endswith("p"):
                    block = block.T.reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format=sample_format, layout="stereo")
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                output.mux(stream.encode(frame))
            output.mux(stream.encode(None))
    return path


def decoded_audio(path):
    """Per audio stream: (time of its first decoded sample from the first video frame, samples [2, n] as floats,
    sample rate, codec, language, title)."""
    with av.open(str(path)) as container:
        video_start = next(container.decode(container.streams.video[0])).time
    tracks = []
    with av.open(str(path)) as container:
        indices = [(stream.index, stream.codec_context.name, dict(stream.metadata)) for stream in container.streams.audio]
    for index, codec, tags in indices:
        with av.open(str(path)) as container:
            stream = container.streams[index]
            first, parts = None, []
            for frame in container.decode(stream):
                samples = frame.to_ndarray()
                if not frame.format.is_planar:
                    samples = samples.reshape(-1, len(frame.layout.channels)).T
                scale = {"s16": 2.0 ** 15, "s32": 2.0 ** 31}.get(frame.format.name.rstrip("p"), 1.0)
                parts.append(samples.astype(np.float64) / scale)
                if first is None:
                    first = Fraction(frame.pts) * frame.time_base
            tracks.append((first - Fraction(video_start), np.concatenate(parts, axis=1), stream.rate, codec,
                           tags.get("language"), tags.get("title") or tags.get("name")))
    return tracks


def on_timeline(start, samples, rate, length):
    """Samples placed by their timestamps on [0, length) samples from the first video frame."""
    line = np.zeros((samples.shape[0], length))
    offset = round(start * rate)
    kept = samples[:, max(0, -offset): max(0, length - offset)]
    line[:, max(0, offset): max(0, offset) + kept.shape[1]] = kept
    return line


def lag(reference, candidate) -> int:
    """The shift (samples) that best aligns `candidate` with `reference` (cross-correlation)."""
    size = 2 * reference.shape[-1]
    spectrum = np.fft.rfft(reference[0], size) * np.conj(np.fft.rfft(candidate[0], size))
    shift = int(np.argmax(np.fft.irfft(spectrum, size)))
    return shift - size if shift > size // 2 else shift


def grey_depth(path, frames=FRAMES, width=WIDTH):
    depth = torch.linspace(0.2, 0.8, width).view(1, 1, width, 1).repeat(frames, HEIGHT, 1, 3)
    return write_video(path, depth, FPS)


def convert(source, output, depth, *extra):
    assert cli.main([str(source), "-o", str(output), "--depth-video", str(depth), "--no-inpaint", "--quiet",
                     *map(str, extra)]) == 0
    return output


SOURCES = {"aac": "mp4", "mp3": "mp4", "ac3": "mp4", "opus": "mkv", "pcm_s16le": "mov"}


@pytest.mark.parametrize("output_ext", ["mp4", "mov", "mkv"])
@pytest.mark.parametrize("codec", sorted(SOURCES))
def test_every_audio_stream_decodes_to_the_sources_samples(tmp_path, codec, output_ext):
    streams = [codec, codec] if codec in ("aac", "opus") else [codec, "aac"]  # two streams; the second another
    source = make_clip(tmp_path / f"clip.{SOURCES[codec]}", streams,
                       "matroska" if SOURCES[codec] == "mkv" else None)
    output = convert(source, tmp_path / f"out.{output_ext}", grey_depth(tmp_path / "depth.mp4"))
    expected, got = decoded_audio(source), decoded_audio(output)
    assert len(got) == len(expected) == 2, "every audio stream is kept"
    length = FRAMES * 48000 // FPS
    for (start, samples, rate, name, language, title), (out_start, out_samples, out_rate, out_name, out_language,
                                                         out_title) in zip(expected, got):
        assert (out_language, out_title) == (language, title)
        assert out_rate == rate
        reference = on_timeline(start, samples, rate, rate * FRAMES // FPS)
        result = on_timeline(out_start, out_samples, rate, rate * FRAMES // FPS)
        if out_name == name:  # copied: the same samples at the same times over the whole video
            # Matroska times blocks in whole milliseconds: where the source's first packet is shown in part
            # (MP3's and AC3's priming is shorter than their packets) and its delay is known only by that
            # packet's time (MP4/MOV), the copy starts up to half a millisecond off (video_io._first_block_on_tick).
            shown_in_part = output_ext == "mkv" and SOURCES[codec] != "mkv" and name.startswith(("mp3", "ac3"))
            slack = round(rate / 2000) if shown_in_part else 1
            errors = {shift: np.abs(np.roll(result, -shift, axis=1) - reference)[:, slack:-slack].max()
                      for shift in range(-slack, slack + 1)}
            best = min(errors, key=errors.get)
            assert errors[best] < 1e-6 and abs(best) <= slack, f"{name}: off by {best} samples ({errors[best]})"
        else:  # converted (the container cannot hold it): lossy, but in sync
            assert abs(lag(reference, result)) <= 1, f"{name} converted to {out_name} is out of sync"
            assert out_samples.shape[1] >= samples.shape[1] - 1024, "the converted audio covers the video"
    del length


def test_audio_the_container_cannot_hold_is_converted_at_planning_with_a_notice(tmp_path, caplog):
    source = make_clip(tmp_path / "clip.mkv", ["opus", "opus"], "matroska")
    depth = grey_depth(tmp_path / "depth.mp4")
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "out.mov"}, work_dir=tmp_path / "work",
                        depth_video=depth)
    with caplog.at_level("INFO"):
        plan = plan_conversion(job, ConversionSettings(inpaint=None))
    assert [choice.convert_to for choice in plan.streams["stereo"].streams] == ["aac", "aac"]
    notices = [record.getMessage() for record in caplog.records if "converted to AAC" in record.getMessage()]
    assert len(notices) == 2 and "eng" in notices[0] and "fra" in notices[1]


def test_a_shorter_run_keeps_the_audio_of_its_frames_exactly(tmp_path):
    source = make_clip(tmp_path / "clip.mp4", ["aac"])
    output = convert(source, tmp_path / "out.mp4", grey_depth(tmp_path / "depth.mp4"), "--max-frames", 12)
    (start, samples, rate, *_), = decoded_audio(source)
    (out_start, out_samples, *_), = decoded_audio(output)
    half = rate // 2
    assert out_start == start == 0
    assert half <= out_samples.shape[1] < half + 2048, "the audio ends with the frames (to the packet)"
    np.testing.assert_allclose(out_samples[:, :half], samples[:, :half], atol=1e-6)


def display_shape(path) -> Fraction:
    """Width over height as shown: the frame's pixels times the stream's sample aspect ratio."""
    info = probe_video(path)
    return Fraction(info.width) * info.sample_aspect / info.height


@pytest.mark.parametrize("output_ext", ["mp4", "mov", "mkv"])
def test_a_non_square_pixel_source_keeps_its_display_shape_in_every_layout(tmp_path, output_ext):
    # 48x36 pixels shown 4:3 wide each: 64x36 on screen, as the square-pixel clip beside it.
    source = make_clip(tmp_path / "clip.mp4", [], sample_aspect=Fraction(4, 3), width=48)
    square = make_clip(tmp_path / "square.mp4", [])
    assert probe_video(source).sample_aspect == Fraction(4, 3)
    shown = Fraction(WIDTH, HEIGHT)
    for layout in LAYOUTS:
        vr180 = ["--vr180-eye-size", 96] if layout == "vr180" else []
        output = convert(source, tmp_path / f"{layout}.{output_ext}", grey_depth(tmp_path / "depth.mp4", width=48),
                         "--format", layout, *vr180)
        frame = display_shape(output)
        eyes = {"sbs": frame / 2, "half-sbs": frame / 2, "tb": frame * 2, "half-tb": frame * 2}.get(layout)
        if layout.startswith("half"):  # the eyes are squeezed into the frame: a 3D player shows each full size
            eyes = frame
        if eyes is not None:
            assert eyes == shown, f"{layout}: each eye shows {eyes}, the source {shown}"
            if output_ext == "mkv":  # under its StereoMode each eye is resampled to square pixels (64x36)
                info = probe_video(output)
                assert info.sample_aspect == 1
                assert (info.width, info.height) == {"sbs": (128, 36), "half-sbs": (64, 36), "tb": (64, 72),
                                                     "half-tb": (64, 36)}[layout]
        else:  # vr180: square pixels on the sphere; the screen shows the picture as the square clip's
            reference = convert(square, tmp_path / f"square_vr180.{output_ext}", grey_depth(tmp_path / "depth64.mp4"),
                                "--format", layout, *vr180)
            assert probe_video(output).sample_aspect == 1
            assert _lit_box(output) == _lit_box(reference)


def _lit_box(path) -> tuple[int, int]:
    """Width and height of the lit part of the left eye of a VR180 frame (its flat screen)."""
    with av.open(str(path)) as container:
        frame = next(container.decode(container.streams.video[0])).to_ndarray(format="gray").astype(np.float32)
    eye = frame[:, : frame.shape[1] // 2]
    rows, cols = np.nonzero(eye > 40)
    return int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1)
