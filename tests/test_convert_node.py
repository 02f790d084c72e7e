"""Stereo Convert Video without ComfyUI: a stand-in VIDEO, the streaming engine, progress, Cancel and resume."""

import importlib
import io
from fractions import Fraction

import pytest
import torch
from conftest import Cancelled
from synthetic_video import describe, make_depth_video, make_video

from stereo_core.disparity import DisparitySettings
from stereo_core.layouts import compose_stereo
from stereo_core.splatting import warp_clip
from stereo_core.video_io import read_video, to_bytes

FRAMES, WIDTH, HEIGHT, FPS = 12, 96, 64, Fraction(24)
NODE = "SC3D_StereoConvertVideo"


class PathVideo:
    """What core Load Video gives: a VIDEO whose stream source is the file's path."""

    def __init__(self, path):
        self.path = path

    def get_stream_source(self):
        return str(self.path)


class MemoryVideo:
    """A VIDEO held in memory (as comfy_api's VideoFromFile over a BytesIO)."""

    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)

    def get_stream_source(self):
        self.buffer.seek(0)
        return self.buffer


def defaults(cls, **overrides):
    """Every widget at the value a freshly added node shows, then `overrides`."""
    values = {}
    for name, spec in cls.INPUT_TYPES()["required"].items():
        kind, options = spec[0], spec[1] if len(spec) > 1 else {}
        if isinstance(kind, list):
            values[name] = options.get("default", kind[0])
        elif "default" in options:
            values[name] = options["default"]
    values.update(overrides)
    return values


@pytest.fixture
def pipeline(pack):
    """The engine module the node runs (the pack's own copy of stereo_core, as ComfyUI imports it)."""
    return pack.stereo_core.engine.pipeline


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """ComfyUI's output and temp folders, as the adapter finds them outside ComfyUI."""
    output, temp = tmp_path / "output", tmp_path / "temp"
    monkeypatch.setenv("STEREOCRAFTER_OUTPUT", str(output))
    monkeypatch.setenv("STEREOCRAFTER_TEMP", str(temp))
    return {"output": output, "temp": temp}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("convert_inputs")
    video = make_video(folder / "clip.mp4", frames=FRAMES, width=WIDTH, height=HEIGHT, fps=FPS)
    depth = make_depth_video(folder / "clip_depth.mp4", FRAMES, WIDTH // 2, HEIGHT // 2, FPS)
    return video, depth


def run(nodes, video, **overrides):
    cls = nodes[NODE]
    return getattr(cls(), cls.FUNCTION)(video, **{k: v for k, v in defaults(cls, **overrides).items() if k != "video"})


def frames_of(path):
    return read_video(path).frames


def test_converts_a_file_with_a_depth_video_into_sbs_with_fps_and_audio(nodes, clip, folders):
    video, depth = clip
    result = run(nodes, PathVideo(video), depth_video=PathVideo(depth), max_disp=4.0, disp_unit="pixels",
                 convergence=0.4)
    stereo, path, anaglyph, anaglyph_path = result["result"]
    assert path == str(folders["output"] / "stereo3d" / "convert_00001_LR.mp4")
    assert stereo.get_stream_source() == path and anaglyph is None and anaglyph_path == ""
    assert describe(path) == {"frames": FRAMES, "width": 2 * WIDTH, "height": HEIGHT, "fps": FPS, "audio": "aac"}
    assert result["ui"] == {"images": [{"filename": "convert_00001_LR.mp4", "subfolder": "stereo3d",
                                        "type": "output"}], "animated": (True,)}
    # The frames are the engine's: the warp of the decoded clip by the decoded depth, composed side by side.
    left = frames_of(video)
    right, _ = warp_clip(left, frames_of(depth), DisparitySettings(max_disp=4.0, convergence=0.4))
    expected = to_bytes(compose_stereo(left, to_bytes(right).float() / 255, "sbs")).float() / 255
    assert (frames_of(path) - expected).abs().mean() < 0.02  # up to the video codec
    assert not (folders["output"] / ".stereo3d-work").exists(), "the work folder is removed after success"


def test_numbered_like_save_video_into_temp_with_anaglyph_and_never_over_an_input(nodes, clip, folders):
    video, depth = clip
    # An input that sits where the first output would go is left alone: the next number is taken.
    taken = folders["temp"] / "stereo3d" / "convert_00001_TB.mp4"
    taken.parent.mkdir(parents=True)
    taken.write_bytes(video.read_bytes())
    result = run(nodes, PathVideo(taken), depth_video=PathVideo(depth), save_output=False, layout="tb",
                 anaglyph="dubois")
    _, path, anaglyph, anaglyph_path = result["result"]
    assert taken.read_bytes() == video.read_bytes()
    assert path == str(folders["temp"] / "stereo3d" / "convert_00002_TB.mp4")
    assert anaglyph_path == str(folders["temp"] / "stereo3d" / "convert_00002_anaglyph.mp4")
    assert anaglyph.get_stream_source() == anaglyph_path
    assert describe(path)["height"] == 2 * HEIGHT and describe(anaglyph_path)["width"] == WIDTH
    assert result["ui"]["images"][0]["type"] == "temp"
    assert not folders["output"].joinpath("stereo3d").exists()


def test_an_in_memory_video_is_copied_once_not_decoded_and_gives_the_same_file(nodes, clip, folders, pipeline,
                                                                               monkeypatch):
    video, depth = clip
    _, from_path, _, _ = run(nodes, PathVideo(video), depth_video=PathVideo(depth))["result"]
    spilled = []
    original = pipeline.probe_video

    def probe(path):
        spilled.append(path)
        return original(path)

    monkeypatch.setattr(pipeline, "probe_video", probe)
    monkeypatch.setattr(importlib.import_module(f"{pipeline.__package__}.sources"), "probe_video", probe)
    _, from_memory, _, _ = run(nodes, MemoryVideo(video.read_bytes()),
                               depth_video=MemoryVideo(depth.read_bytes()))["result"]
    assert torch.equal(frames_of(from_memory), frames_of(from_path))
    assert describe(from_memory)["audio"] == "aac"
    assert len(spilled) == 2 and all(path.parent == folders["output"] / ".stereo3d-work" / "sources"
                                     for path in spilled)
    assert not spilled[0].exists(), "the copies are removed after success"


@pytest.fixture(scope="module")
def longer_clip(tmp_path_factory):
    """40 frames: without inpainting the warp runs in chunks of 8, so 5 chunks."""
    folder = tmp_path_factory.mktemp("convert_longer")
    video = make_video(folder / "clip.mp4", frames=40, width=WIDTH, height=HEIGHT, fps=FPS)
    return video, make_depth_video(folder / "clip_depth.mp4", 40, WIDTH, HEIGHT, FPS)


def test_one_progress_bar_over_the_stages_with_a_tick_per_chunk(nodes, longer_clip, folders, fake_comfy):
    video, depth = longer_clip
    run(nodes, PathVideo(video), depth_video=PathVideo(depth))
    # The depth video's statistics (a pass over it, per 16 frames), then the stereo frames (per chunk of 8),
    # as one bar of 2 x 40 steps.
    assert fake_comfy.updates == [(value, 80) for value in (0, 16, 32, 40, 40, 40, 48, 56, 64, 72, 80)]


def test_cancel_then_queue_again_resumes_to_the_identical_video(nodes, longer_clip, folders, fake_comfy, pipeline,
                                                                monkeypatch):
    video, depth = longer_clip
    settings = dict(depth_video=PathVideo(depth), segment_frames=16, max_disp=5.0, disp_unit="pixels")
    _, uninterrupted, _, _ = run(nodes, PathVideo(video), filename_prefix="whole", **settings)["result"]
    ticks = [value for value, _ in fake_comfy.updates]
    assert ticks[-3:] == [40 + 24, 40 + 32, 40 + 40], "a tick per chunk of the stereo stage"

    warped = []
    original = pipeline.WarpStage.warp

    def counting_warp(self, left, *args):
        warped.append(left.shape[0])
        return original(self, left, *args)

    monkeypatch.setattr(pipeline.WarpStage, "warp", counting_warp)
    fake_comfy.updates.clear()
    fake_comfy.cancel_after = len(ticks) - 2  # Cancel pressed while the second piece is encoded
    with pytest.raises(Cancelled):
        run(nodes, PathVideo(video), **settings)
    assert warped == [8, 8, 8, 8]
    work = folders["output"] / ".stereo3d-work"
    assert len(list(work.glob("*/encode-*/stereo-*.mp4"))) == 1, "the finished piece is kept"
    assert not list(work.rglob(".*partial*")), "the unfinished piece is dropped"
    assert not list((folders["output"] / "stereo3d").iterdir()), "no output file before the end"

    fake_comfy.cancel_after = None
    fake_comfy.updates.clear()
    warped.clear()
    _, resumed, _, _ = run(nodes, PathVideo(video), **settings)["result"]
    assert warped == [8, 8, 8], "the finished piece is not computed again"
    assert fake_comfy.updates[-4][0] == 40 + 16, "the bar starts the stereo stage where the kept work ends"
    assert torch.equal(frames_of(resumed), frames_of(uninterrupted))
    assert describe(resumed) == describe(uninterrupted)


def test_cancel_during_inpainting_resumes_from_the_last_chunk(nodes, clip, folders, fake_comfy, pipeline,
                                                               depthcrafter_model, stereocrafter_model, monkeypatch):
    """With both models: DepthCrafter's passes and the inpainted chunks are kept and resumed."""
    video, _ = clip
    frames = 8
    models = dict(depth_model=depthcrafter_model, stereocrafter_model=stereocrafter_model, max_frames=frames,
                  depth_max_res=64, depth_steps=1, depth_window=6, depth_overlap=2, inpaint_steps=1, frames_chunk=4,
                  inpaint_overlap=1, segment_frames=3, seed=3)
    _, uninterrupted, _, _ = run(nodes, PathVideo(video), filename_prefix="whole", **models)["result"]
    ticks = list(fake_comfy.updates)
    assert [total for _, total in ticks] == [4 * frames] * len(ticks)  # encode, windows, decode, stereo
    # Cancel pressed while the second inpainted chunk is encoded: two chunks are finished and kept.
    chunk_ticks = [index for index, (value, _) in enumerate(ticks) if value > 3 * frames]

    computed = []
    original = pipeline._RightEyes._compute

    def counting(self, index):
        computed.append(index)
        return original(self, index)

    monkeypatch.setattr(pipeline._RightEyes, "_compute", counting)
    fake_comfy.updates.clear()
    fake_comfy.cancel_after = chunk_ticks[1]
    with pytest.raises(Cancelled):
        run(nodes, PathVideo(video), **models)
    assert computed == [0, 1]

    fake_comfy.cancel_after = None
    computed.clear()
    _, resumed, _, _ = run(nodes, PathVideo(video), **models)["result"]
    assert computed == [2], "inpainting continues after the last kept chunk"
    assert torch.equal(frames_of(resumed), frames_of(uninterrupted))


@pytest.mark.parametrize("overrides, message", [
    ({"depth_video": None}, "needs depth: connect a depth video to 'depth_video', or a depth model loader .* to "
                             "'depth_model'"),
    ({"filename_prefix": "../escape"}, "must name a file inside ComfyUI's output folder"),
    ({"filename_prefix": "/tmp/x"}, "must name a file inside ComfyUI's output folder"),
    ({"depth_video": "depth.mp4"}, "'depth_video' must be a VIDEO .* got str"),
    ({"depth_video": PathVideo("/nowhere/depth.mp4")}, "'/nowhere/depth.mp4' given to 'depth_video' does not exist"),
    ({"max_disp": 200.0, "disp_unit": "pixels"},
     "max_disp of 200 pixels is 200 px: the nearest and farthest points would move 400 px"),
    ({"inpaint_overlap": 30, "stereocrafter_model": object()}, r"overlap \(30\) must be at least 0 and smaller"),
    ({"video": "longer"}, "The depth video .* has 12 frames but .* has 40"),
])
def test_bad_input_is_a_clear_message_before_any_work(overrides, message, nodes, clip, longer_clip, folders):
    video, depth = clip
    if overrides.pop("video", None) == "longer":
        video = longer_clip[0]
    overrides = {"depth_video": PathVideo(depth), **overrides}
    with pytest.raises(ValueError, match=message):
        run(nodes, PathVideo(video), **overrides)
    assert not list(folders["output"].rglob("*.mp4"))


def test_an_anaglyph_output_wired_while_anaglyph_is_off_is_refused(nodes, clip, folders):
    video, depth = clip
    prompt = {"7": {"class_type": NODE, "inputs": {}},
              "9": {"class_type": "SaveVideo", "inputs": {"video": ["7", 2], "filename_prefix": "x"}}}
    with pytest.raises(ValueError, match="'anaglyph' output is connected but 'anaglyph' is off"):
        run(nodes, PathVideo(video), depth_video=PathVideo(depth), prompt=prompt, unique_id="7")
    prompt["9"]["inputs"]["video"] = ["7", 0]
    run(nodes, PathVideo(video), depth_video=PathVideo(depth), prompt=prompt, unique_id="7")


def test_vr180_with_its_screen_and_spherical_metadata(nodes, clip, folders):
    from stereo_core.spatial_media import VR180, read_spatial_metadata

    video, depth = clip
    result = run(nodes, PathVideo(video), depth_video=PathVideo(depth), layout="vr180", vr180_eye_size=96,
                 vr180_screen_fov=60.0)["result"]
    path = result[1]
    assert path.endswith("_180_LR.mp4") and read_spatial_metadata(path) == VR180
    facts = describe(path)
    assert (facts["width"], facts["height"], facts["frames"]) == (192, 96, FRAMES)
    sbs = run(nodes, PathVideo(video), depth_video=PathVideo(depth))["result"][1]
    assert read_spatial_metadata(sbs).stereo_mode == "left-right"


def test_a_full_disk_is_one_clear_message_and_queueing_again_finishes(nodes, clip, folders, pack, monkeypatch):
    import errno
    import os

    video, depth = clip
    writer = pack.stereo_core.video_io.SegmentWriter
    original = writer.write

    def full(self, pictures, times):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    monkeypatch.setattr(writer, "write", full)
    with pytest.raises(ValueError, match="the disk is full .*run the same conversion again"):
        run(nodes, PathVideo(video), depth_video=PathVideo(depth))
    monkeypatch.setattr(writer, "write", original)
    stereo_path = run(nodes, PathVideo(video), depth_video=PathVideo(depth))["result"][1]
    assert describe(stereo_path)["frames"] == FRAMES
