"""The streaming engine: the same frames as the whole-clip functions, its work store, and file handling."""

import shutil
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from stereo_core import model_files
from stereo_core.anaglyph import anaglyph
from stereo_core.depthcrafter import DepthCrafterSettings, DepthSampler, estimate_depth
from stereo_core.disparity import DisparitySettings
from stereo_core.engine import ConversionJob, ConversionSettings, LoadedModels, OutputSettings, convert
from stereo_core.engine import pipeline
from stereo_core.errors import StereoInputError
from stereo_core.inpainting import InpaintSettings, inpaint_clip
from stereo_core.layouts import compose_stereo
from stereo_core.splatting import warp_clip
from stereo_core.video_io import FrameReader, SegmentWriter, probe_video, read_video, to_bytes, write_video
from synthetic_video import describe, make_video

DEPTH = DepthCrafterSettings(steps=2, window=6, overlap=2, max_res=64, encode_chunk=4, decode_chunk=4)
INPAINT = InpaintSettings(steps=2, frames_chunk=6, overlap=2)
FRAMES, WIDTH, HEIGHT = 14, 96, 64


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("engine") / "clip.mp4", frames=FRAMES, width=WIDTH, height=HEIGHT)


@pytest.fixture
def encoded(monkeypatch):
    """Every picture the engine hands to the encoder, per output kind (the 8-bit frames before H.264)."""
    pictures = {}

    original = SegmentWriter.write

    def record(self, frames, times):
        kind = self.path.name.split("-")[0]
        pictures.setdefault(kind, []).append(frames.clone())
        return original(self, frames, times)

    monkeypatch.setattr(SegmentWriter, "write", record)
    return pictures


def joined(pictures, kind):
    return torch.cat(pictures[kind])


def test_streaming_equals_the_whole_clip_functions_with_both_models(source, tmp_path, depthcrafter_model,
                                                                    stereocrafter_model, encoded):
    """Windows, chunks, encode pieces and segments all cut the clip in different places."""
    settings = ConversionSettings(depth=DEPTH, inpaint=INPAINT, seed=5,
                                  output=OutputSettings(anaglyph="dubois", segment_frames=5))
    outputs = {"stereo": tmp_path / "out.mp4", "anaglyph": tmp_path / "out_anaglyph.mp4",
               "depth": tmp_path / "out_depth.mp4"}
    job = ConversionJob(source=source, outputs=outputs, work_dir=tmp_path / "work")
    convert(job, settings, LoadedModels({"depthcrafter": depthcrafter_model, "stereocrafter": stereocrafter_model}))

    video = read_video(source).frames
    depth = estimate_depth(depthcrafter_model, video, DEPTH, seed=5).depth
    warped, occlusion = warp_clip(video, depth, DisparitySettings())
    right = to_bytes(inpaint_clip(stereocrafter_model, warped, occlusion, INPAINT, left=video, seed=5).frames)
    # The engine composes from the 8-bit right eye it keeps, so a resumed run reads the same thing.
    right = right.float() / 255
    assert torch.equal(joined(encoded, "stereo"), to_bytes(compose_stereo(video, right, "sbs")))
    assert torch.equal(joined(encoded, "anaglyph"), to_bytes(anaglyph(video, right, "dubois")))
    assert torch.equal(joined(encoded, "depth")[..., 0], to_bytes(depth))
    assert describe(outputs["stereo"]) == {"frames": FRAMES, "width": 2 * WIDTH, "height": HEIGHT,
                                           "fps": Fraction(24), "audio": "aac"}
    assert describe(outputs["depth"])["audio"] is None
    assert not (tmp_path / "work").exists(), "the work folder is removed after success"


def grey_depth_video(path, frames=FRAMES, width=WIDTH, height=HEIGHT):
    ramp = torch.linspace(0.1, 0.9, width).view(1, 1, width, 1).repeat(frames, height, 1, 3)
    ramp[:, height // 4: height // 2, width // 3: width // 2] = 1.0
    return write_video(path, ramp, 24)


def test_streaming_equals_the_whole_clip_warp_with_a_depth_video(source, tmp_path, encoded):
    depth_path = grey_depth_video(tmp_path / "depth.mp4", width=48, height=32)  # any size: resized
    disparity = DisparitySettings(max_disp=6, convergence=0.4)
    settings = ConversionSettings(inpaint=None, disparity=disparity, warp_chunk=4,
                                  output=OutputSettings(layout="half-tb", segment_frames=6))
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "tb.mkv"}, work_dir=tmp_path / "work",
                        depth_video=depth_path)
    convert(job, settings, LoadedModels({}))

    video = read_video(source).frames
    # A depth video is read as luma (its grey value), one channel.
    with FrameReader(probe_video(depth_path), grey=True) as reader:
        depth = reader.read(0, FRAMES).float() / 255
    right, _ = warp_clip(video, depth, disparity)
    assert torch.equal(joined(encoded, "stereo"), to_bytes(compose_stereo(video, right, "half-tb")))
    with av.open(str(tmp_path / "tb.mkv")) as container:
        assert "matroska" in container.format.name


def test_changed_settings_redo_exactly_the_stages_they_affect(source, tmp_path, depthcrafter_model, monkeypatch):
    models = LoadedModels({"depthcrafter": depthcrafter_model})
    settings = ConversionSettings(depth=DEPTH, inpaint=None, seed=1)
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "a.mp4"}, work_dir=tmp_path / "work",
                        max_frames=8, keep_work=True)
    convert(job, settings, models)
    windows = sorted((tmp_path / "work").glob("depth-*/window-*"))
    assert windows

    def no_depthcrafter(*args, **kwargs):
        raise AssertionError("DepthCrafter ran again")

    # Another strength or layout keeps the depth.
    monkeypatch.setattr(DepthSampler, "denoise", no_depthcrafter)
    other = ConversionSettings(depth=DEPTH, inpaint=None, seed=1, disparity=DisparitySettings(max_disp=4),
                               output=OutputSettings(layout="tb"))
    convert(job, other, models)
    assert sorted((tmp_path / "work").glob("depth-*/window-*")) == windows
    # Another depth setting does not.
    with pytest.raises(AssertionError, match="DepthCrafter ran again"):
        convert(job, ConversionSettings(depth=DepthCrafterSettings(**{**DEPTH.__dict__, "steps": 1}), inpaint=None,
                                        seed=1), models)
    assert len(list((tmp_path / "work").glob("depth-*"))) == 1, "stale stage folders are removed"


def test_store_writes_are_atomic_and_unreadable_pieces_are_redone(tmp_path):
    from stereo_core.engine.store import WorkStore

    stage = WorkStore(tmp_path).stage("depth", "abc")
    stage.save_tensors("x.safetensors", {"a": torch.arange(4)}, {"n": 1})
    assert stage.load_tensors("x.safetensors")[1] == {"n": 1}
    assert not list(stage.folder.glob(".*")), "no temporary file is left"
    stage.path("y.safetensors").write_bytes(b"cut short")
    assert stage.load_tensors("y.safetensors") is None and not stage.has("y.safetensors")


def test_a_damaged_kept_window_is_reported_removed_and_redone(source, tmp_path, depthcrafter_model):
    """A kept piece that a later pass reads (here the first DepthCrafter window, read again to decode the
    depth for the warp) damaged on disk: a clear message, then the same command gives the same video."""
    from stereo_core.video_io import is_complete_video

    models = LoadedModels({"depthcrafter": depthcrafter_model})
    settings = ConversionSettings(depth=DEPTH, inpaint=None, seed=1)
    reference = ConversionJob(source=source, outputs={"stereo": tmp_path / "reference.mp4"},
                              work_dir=tmp_path / "reference", max_frames=8)
    convert(reference, settings, models)
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "a.mp4"}, work_dir=tmp_path / "work",
                        max_frames=8, keep_work=True)
    convert(job, settings, models)
    for encoded_piece in (tmp_path / "work").glob("encode-*"):  # the warp must read the depth again
        shutil.rmtree(encoded_piece)
    (tmp_path / "a.mp4").unlink()
    (window,) = (tmp_path / "work").glob("depth-*/window-000000.safetensors")
    window.write_bytes(b"cut short")

    with pytest.raises(StereoInputError, match="window-000000.safetensors' was damaged on disk and has been removed; "
                                               "run the same command again"):
        convert(job, settings, models)
    assert not window.exists() and not is_complete_video(tmp_path / "a.mp4")
    convert(job, settings, models)
    assert torch.equal(read_video(tmp_path / "a.mp4").frames, read_video(tmp_path / "reference.mp4").frames)


def test_phone_rotation_is_honoured(tmp_path):
    path = tmp_path / "phone.mp4"
    picture = np.zeros((48, 64, 3), np.uint8)
    picture[:8, :8] = 255  # a white corner, top left as stored
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(90)
        for _ in range(3):
            output.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        output.mux(stream.encode(None))
    info = probe_video(path)
    assert (info.width, info.height, info.rotation) == (48, 64, 90)
    frame = read_video(path).frames[0]
    # Turned 90 degrees counterclockwise for display: the stored top-left corner is now bottom left.
    assert frame.shape == (64, 48, 3) and frame[-4, 4, 0] > 0.9 and frame[4, 4, 0] < 0.1

    out = tmp_path / "phone_sbs.mp4"
    depth = grey_depth_video(tmp_path / "d.mp4", frames=3, width=48, height=64)
    convert(ConversionJob(source=path, outputs={"stereo": out}, work_dir=tmp_path / "w", depth_video=depth),
            ConversionSettings(inpaint=None), LoadedModels({}))
    assert describe(out)["width"] == 96 and describe(out)["height"] == 64


def write_vfr_video(path, durations):
    """H.264 with the given frame durations (in 1/600 s), and an mp3 audio track."""
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 600)
        audio = output.add_stream("libmp3lame", rate=44100)
        pts = 0
        for index, duration in enumerate(durations):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * index, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 600)
            output.mux(stream.encode(frame))
            pts += duration
        output.mux(stream.encode(None))
        for start in range(0, int(44100 * pts / 600), 1152):
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.float32), format="fltp", layout="mono")
            samples.sample_rate = 44100
            output.mux(audio.encode(samples))
        output.mux(audio.encode(None))
    return path


def frame_times(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float(frame.pts * stream.time_base) for frame in container.decode(stream)]


def test_variable_frame_rate_timestamps_and_mp3_audio_are_kept(tmp_path):
    source = write_vfr_video(tmp_path / "vfr.mp4", [20, 20, 40, 20, 60, 20, 20, 20])
    depth = grey_depth_video(tmp_path / "d.mp4", frames=8, width=64, height=48)
    out = tmp_path / "vfr_sbs.mp4"
    convert(ConversionJob(source=source, outputs={"stereo": out}, work_dir=tmp_path / "w", depth_video=depth),
            ConversionSettings(inpaint=None, output=OutputSettings(segment_frames=3), warp_chunk=3),
            LoadedModels({}))
    assert probe_video(source).variable_rate
    expected = frame_times(source)
    assert frame_times(out) == pytest.approx([t - expected[0] for t in expected], abs=1e-3)
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.codec.canonical_name == "mp3", "copied, not re-encoded"


def truncated_video(path, frames=24):
    """A video whose index (written first) lists every frame but whose data stops half-way."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as output:
        stream = output.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(frames):
            noise = np.random.default_rng(index).integers(0, 255, (48, 64, 3), dtype=np.uint8)
            output.mux(stream.encode(av.VideoFrame.from_ndarray(noise, format="rgb24")))
        output.mux(stream.encode(None))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def test_a_truncated_file_is_reported_with_what_can_be_done(tmp_path):
    source = truncated_video(tmp_path / "cut.mp4")
    info = probe_video(source)
    assert info.declared_frames == 24 and 0 < info.frames < 24
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "o.mp4"}, work_dir=tmp_path / "w")
    with pytest.raises(StereoInputError, match=rf"says it has 24 frames but only {info.frames} .*--max-frames "
                                               rf"{info.frames}"):
        pipeline.plan_conversion(job, ConversionSettings(inpaint=None))
    job.max_frames = info.frames  # what can be read converts
    pipeline.plan_conversion(job, ConversionSettings(inpaint=None))


def test_depth_video_problems_are_refused(source, tmp_path):
    longer = grey_depth_video(tmp_path / "long.mp4", frames=FRAMES + 6)
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "o.mp4"}, work_dir=tmp_path / "w",
                        depth_video=longer)
    with pytest.raises(StereoInputError, match=f"has {FRAMES + 6} frames but .* has only {FRAMES}"):
        pipeline.plan_conversion(job, ConversionSettings(inpaint=None))
    job.max_frames = 6  # the start of a clip, with the clip's full depth video, is fine
    pipeline.plan_conversion(job, ConversionSettings(inpaint=None))

    # A colormapped depth video (inferno) must not be averaged to grey.
    from stereo_core.visualize import visualize_depth

    ramp = torch.linspace(0, 1, WIDTH).view(1, 1, WIDTH).expand(FRAMES, HEIGHT, WIDTH)
    coloured = write_video(tmp_path / "inferno.mp4", visualize_depth(ramp, "inferno"), 24)
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "o.mp4"}, work_dir=tmp_path / "w",
                        depth_video=coloured)
    with pytest.raises(StereoInputError, match="is in colour"):
        convert(job, ConversionSettings(inpaint=None), LoadedModels({}))
    assert not (tmp_path / "o.mp4").exists()


def test_a_missing_model_is_named(source, tmp_path):
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "o.mp4"}, work_dir=tmp_path / "w")
    with pytest.raises(StereoInputError, match=model_files.TITLES["depthcrafter"]):
        convert(job, ConversionSettings(inpaint=None), LoadedModels({}))


def test_auto_convergence_is_part_of_what_the_right_eye_depends_on(source, tmp_path):
    depth_path = grey_depth_video(tmp_path / "depth.mp4")
    job = ConversionJob(source=source, outputs={"stereo": tmp_path / "o.mp4"}, work_dir=tmp_path / "w",
                        depth_video=depth_path, keep_work=True)
    convert(job, ConversionSettings(inpaint=None), LoadedModels({}))
    first = {p.name for p in (tmp_path / "w").iterdir()}
    from stereo_core.convergence import AutoConvergence

    job.outputs = {"stereo": tmp_path / "o2.mp4"}
    convert(job, ConversionSettings(inpaint=None, auto_convergence=AutoConvergence()), LoadedModels({}))
    second = {p.name for p in (tmp_path / "w").iterdir()}
    assert [n for n in first if n.startswith("depth-")] == [n for n in second if n.startswith("depth-")]
    assert [n for n in first if n.startswith("right-")] != [n for n in second if n.startswith("right-")]
