"""Scene splitting: cut detection, scenes and parts, aligned depth, joining, and resuming scene by scene."""

import json
import signal
import subprocess
import sys
import time
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from conftest import ROOT
from test_cli import FAST, ONE_THREAD, decoded

from stereo_core import cli
from stereo_core.convergence import AutoConvergence
from stereo_core.disparity import DisparitySettings
from stereo_core.engine import ConversionJob, ConversionSettings, LoadedModels, OutputSettings, convert
from stereo_core.engine.depth import DepthFrames, DepthStats
from stereo_core.engine.scenes import (
    Scene,
    SceneDepth,
    SceneSettings,
    align_parts,
    convert_scenes,
    detect_cuts,
    fit_scale_shift,
    plan_scenes,
    split_scene,
)
from stereo_core.errors import StereoInputError
from stereo_core.video_io import Segment, SegmentWriter, join_segments, probe_video, write_video
from synthetic_video import SAMPLE_RATE, describe, make_video

PALETTES = [((230, 60, 40), (40, 20, 90)), ((30, 80, 220), (200, 230, 250)), ((40, 200, 60), (250, 240, 30))]


def scene_picture(scene: int, index: int, width: int, height: int) -> np.ndarray:
    """Scene `scene`'s frame `index`: its own colours, a box moving slowly (no cut inside a scene)."""
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    first, second = (np.array(colour, np.float32) for colour in PALETTES[scene % len(PALETTES)])
    frame = first * (1 - x) * (1 - 0.5 * y) + second * x * (0.5 + 0.5 * y)
    left = 4 + 2 * index
    frame[height // 4: height // 2, left: left + width // 4] = 255 - first
    return frame.clip(0, 255).astype(np.uint8)


def make_scene_video(path, lengths, width=96, height=64, fps=Fraction(24)):
    """H.264 with hard cuts after each of `lengths` frames, and a tone as long as the video."""
    with av.open(str(path), "w") as output:
        video = output.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = output.add_stream("aac", rate=SAMPLE_RATE)
        for scene, count in enumerate(lengths):
            for index in range(count):
                picture = scene_picture(scene, index, width, height)
                output.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        output.mux(video.encode(None))
        samples = int(SAMPLE_RATE * sum(lengths) / fps)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / SAMPLE_RATE)).astype(np.float32)[None]
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, start:start + 1024].copy(), format="fltp", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            output.mux(audio.encode(frame))
        output.mux(audio.encode(None))
    return path


@pytest.fixture(scope="module")
def three_scenes(tmp_path_factory):
    return make_scene_video(tmp_path_factory.mktemp("scenes") / "three.mp4", [16, 16, 16])


# --- cuts, scenes, parts ---------------------------------------------------------------------------------


def test_cuts_are_found_at_the_known_frames(three_scenes, tmp_path):
    assert detect_cuts(probe_video(three_scenes), 48, SceneSettings()) == [16, 32]
    # Only the frames asked for are read.
    assert detect_cuts(probe_video(three_scenes), 20, SceneSettings()) == [16]
    # A short scene: found with a small minimum length, merged into its neighbour with the default 15.
    uneven = make_scene_video(tmp_path / "uneven.mp4", [20, 8, 18])
    assert detect_cuts(probe_video(uneven), 46, SceneSettings(min_scene_frames=4)) == [20, 28]
    cuts = detect_cuts(probe_video(uneven), 46, SceneSettings())
    assert len(cuts) == 1 and cuts[0] in (20, 28)
    # A moving picture without a cut has none.
    assert detect_cuts(probe_video(make_video(tmp_path / "one.mp4", frames=24)), 24, SceneSettings()) == []


def test_long_scenes_are_split_into_overlapping_parts():
    for length in range(1, 400, 7):
        parts = split_scene(100, 100 + length, 60, 12)
        assert parts[0].start == 100 and parts[-1].stop == 100 + length
        for part, following in zip(parts, parts[1:]):
            assert part.stop == following.start == following.depth_start
            assert part.depth_stop == following.start + 12, "neighbours share the overlap's depth"
        for part in parts:
            assert part.depth_stop - part.depth_start <= 60
            assert part.stop - part.start >= (12 if len(parts) > 1 else 1), "a part holds its whole overlap"
        assert len(parts) == (1 if length <= 60 else -(-length // 48))
    assert split_scene(0, 5000, 0, 12) == split_scene(0, 5000, 10**6, 12), "0: never split"

    scenes = plan_scenes(10, 100, [5, 40, 70, 120], SceneSettings(part_frames=40, part_overlap=5))
    assert [(scene.start, scene.stop, len(scene.parts)) for scene in scenes] == [(10, 40, 1), (40, 70, 1),
                                                                                  (70, 100, 1)]


@pytest.mark.parametrize("settings, message", [
    (SceneSettings(threshold=0), "threshold must be above 0"),
    (SceneSettings(min_scene_frames=0), "at least 1 frame"),
    (SceneSettings(part_overlap=0), "at least 1 frame"),
    (SceneSettings(part_frames=50, part_overlap=20), "three times the overlap"),
])
def test_impossible_scene_settings_are_refused(settings, message):
    with pytest.raises(StereoInputError, match=message):
        settings.check()


# --- a long scene's depth in parts -------------------------------------------------------------------------


class ListDepth(DepthFrames):
    """Depth frames held in memory, normalised to 0..1 over themselves as DepthCrafter's parts are."""

    def __init__(self, depth):
        depth = (depth - depth.min()) / (depth.max() - depth.min())
        self.depth, self.frames = depth, depth.shape[0]
        self.stats = DepthStats.of_frames(depth)

    def read(self, start, stop):
        return self.depth[start:stop].clone()

    def close(self):
        pass


def true_depth(frames, height=12, width=16):
    """Smooth depth that changes from frame to frame (what every part estimates, each on its own scale)."""
    t = torch.arange(frames, dtype=torch.float32).view(-1, 1, 1)
    y = torch.linspace(0, 1, height).view(1, -1, 1)
    x = torch.linspace(0, 1, width).view(1, 1, -1)
    return 0.3 + 0.4 * x * y + 0.2 * torch.sin(t / 9 + 3 * x) + 0.01 * t


def test_parts_are_aligned_on_their_overlap_so_the_depth_does_not_jump():
    truth = true_depth(100)
    scene = Scene(0, 0, 100, split_scene(0, 100, 40, 8))
    count = len(scene.parts)
    assert count == 4
    # Each part sees its frames on a different scale (as separate DepthCrafter runs normalised on their own).
    parts = [ListDepth(truth[part.depth_start:part.depth_stop]) for part in scene.parts]
    # The truth on part 0's scale: the same affine map part 0's normalisation applied.
    first = truth[:scene.parts[0].depth_stop]
    expected = (truth - first.min()) / (first.max() - first.min())
    unaligned = SceneDepth(scene, parts.__getitem__, [1.0] * count, [0.0] * count)
    assert (unaligned.read(0, 100) - expected).abs().max() > 0.05, "without alignment the parts disagree"

    depth = SceneDepth(scene, parts.__getitem__, [1.0] * count, [0.0] * count)
    align_parts(depth)
    joined = depth.read(0, 100)
    assert torch.allclose(joined, expected, atol=1e-5)
    steps = (joined[1:] - joined[:-1]).abs().amax(dim=(1, 2))
    true_steps = (expected[1:] - expected[:-1]).abs().amax(dim=(1, 2))
    assert torch.allclose(steps, true_steps, atol=1e-5), "no jump where a part starts"
    # Reading in any pieces gives the same frames.
    assert torch.equal(torch.cat([depth.read(a, min(a + 7, 100)) for a in range(0, 100, 7)]), joined)
    # The scene's statistics, from the parts' own and the cross-faded frames, are exactly the frames'.
    measured, actual = depth.measure(), DepthStats.of_frames(joined)
    for name in ("low", "high", "median"):
        assert torch.equal(getattr(measured, name), getattr(actual, name)), name
    for name in ("subject", "q_low", "q_high"):  # interpolated: equal up to rounding
        assert torch.allclose(getattr(measured, name), getattr(actual, name), atol=1e-6), name


def test_the_cross_fade_blends_from_one_part_to_the_next():
    scene = Scene(0, 0, 24, split_scene(0, 24, 18, 4))
    assert len(scene.parts) == 2
    zeros, ones = torch.zeros(24, 2, 2), torch.ones(24, 2, 2)
    parts = {0: zeros, 1: ones}
    views = [ListDepth.__new__(ListDepth) for _ in scene.parts]
    for view, (index, part) in zip(views, enumerate(scene.parts)):
        view.depth = parts[index][part.depth_start:part.depth_stop]
        view.frames = view.depth.shape[0]
    depth = SceneDepth(scene, views.__getitem__, [1.0, 1.0], [0.0, 0.0])
    shared = scene.parts[1].start
    values = depth.read(0, 24)[:, 0, 0]
    assert values[:shared].eq(0).all() and values[shared + 4:].eq(1).all()
    assert torch.allclose(values[shared:shared + 4], torch.tensor([0.2, 0.4, 0.6, 0.8]))


def test_fit_scale_shift_is_least_squares_and_never_flips_depth():
    x = torch.linspace(0, 1, 50)
    assert fit_scale_shift(iter([(x, 3 * x - 0.5)])) == pytest.approx((3.0, -0.5), abs=1e-6)
    assert fit_scale_shift(iter([(x[:20], 2 * x[:20] + 1), (x[20:], 2 * x[20:] + 1)])) == pytest.approx((2, 1))
    assert fit_scale_shift(iter([(x, 1 - x)]))[0] == 1.0, "an inverted fit keeps the scale"
    assert fit_scale_shift(iter([(torch.full((9,), 0.5), torch.full((9,), 0.7))])) == pytest.approx((1, 0.2))


# --- joining pieces from several scenes --------------------------------------------------------------------


def test_pieces_of_any_length_join_in_order(tmp_path):
    """A scene's last piece may be one or two frames (no reordering delay): the next piece still joins."""
    pictures = torch.randint(0, 255, (10, 32, 48, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    pieces, first = [], 0
    for index, count in enumerate((2, 5, 1, 2)):
        writer = SegmentWriter(tmp_path / f"p{index}.mp4", 48, 32, Fraction(1, 24), rate=Fraction(24))
        writer.write(pictures[first:first + count], [Fraction(frame, 24) for frame in range(first, first + count)])
        pieces.append(Segment(writer.close(), Fraction(first, 24)))
        first += count
    joined = join_segments(tmp_path / "joined.mp4", pieces)
    with av.open(str(joined)) as container:
        stream = container.streams.video[0]
        frames = [(frame.pts * stream.time_base, frame.to_ndarray(format="rgb24")) for frame in container.decode(stream)]
    assert [time for time, _ in frames] == [Fraction(frame, 24) for frame in range(10)]
    originals = [frame for piece in pieces for frame in decoded(piece.path)]
    assert all(np.array_equal(a, b) for (_, a), b in zip(frames, originals))


# --- conversions scene by scene ------------------------------------------------------------------------------


def test_a_video_without_a_cut_gives_the_same_video_with_split_scenes(tmp_path, depthcrafter_model,
                                                                        stereocrafter_model):
    from test_engine import DEPTH, INPAINT

    source = make_video(tmp_path / "clip.mp4", frames=14)
    models = LoadedModels({"depthcrafter": depthcrafter_model, "stereocrafter": stereocrafter_model})
    settings = ConversionSettings(depth=DEPTH, inpaint=INPAINT, seed=3, output=OutputSettings(segment_frames=5))
    outputs = {}
    for name in ("whole", "scenes"):
        job = ConversionJob(source=source, outputs={"stereo": tmp_path / f"{name}.mp4"}, work_dir=tmp_path / name)
        if name == "whole":
            convert(job, settings, models)
        else:
            convert_scenes(job, settings, SceneSettings(), models)
        outputs[name] = decoded(tmp_path / f"{name}.mp4")
    assert len(outputs["whole"]) == 14
    assert all(np.array_equal(a, b) for a, b in zip(outputs["whole"], outputs["scenes"]))
    assert describe(tmp_path / "scenes.mp4")["audio"] == "aac"
    assert not (tmp_path / "scenes").exists(), "the work folder is removed after success"


def scene_depth_video(path, lengths, ranges, width=96, height=64):
    """A grey depth video whose scenes span the given depth ranges (a ramp with a near box, whose
    nearest value changes from frame to frame)."""
    frames = []
    for count, (low, high) in zip(lengths, ranges):
        for index in range(count):
            ramp = torch.linspace(low, high, width).view(1, width, 1).repeat(height, 1, 3)
            ramp[height // 4: height // 2, width // 3: width // 2] = high + 0.03 * (index % 3)
            frames.append(ramp)
    return write_video(path, torch.stack(frames), 24)


@pytest.fixture
def pictures(monkeypatch):
    """Every picture handed to the encoder, by output kind and time (the frames before H.264, which
    codes pieces cut at other frames differently)."""
    seen = {}
    original = SegmentWriter.write

    def record(self, frames, times):
        kind = self.path.name.split("-")[0]
        for frame, shown in zip(frames, times):
            seen.setdefault(kind, {})[shown] = frame.clone()
        return original(self, frames, times)

    monkeypatch.setattr(SegmentWriter, "write", record)
    return seen


def in_order(pictures, kind):
    frames = pictures.pop(kind)
    return torch.stack([frames[time] for time in sorted(frames)])


def test_depth_is_normalised_per_scene_and_parts_change_nothing_with_a_depth_video(three_scenes, tmp_path,
                                                                                     pictures):
    depth = scene_depth_video(tmp_path / "depth.mp4", [16, 16, 16], [(0.1, 0.3), (0.5, 0.9), (0.2, 0.25)])

    def run(name, scenes, normalize="clip", auto=None):
        settings = ConversionSettings(inpaint=None, warp_chunk=5, output=OutputSettings(segment_frames=6),
                                      disparity=DisparitySettings(normalize=normalize), auto_convergence=auto)
        outputs = {"stereo": tmp_path / f"{name}.mp4", "depth": tmp_path / f"{name}_depth.mp4"}
        job = ConversionJob(source=three_scenes, outputs=outputs, work_dir=tmp_path / f"{name}.work",
                            depth_video=depth, comfort_report=tmp_path / f"{name}_comfort.png")
        if scenes is None:
            convert(job, settings, LoadedModels({}))
        else:
            convert_scenes(job, settings, scenes, LoadedModels({}))
        assert describe(outputs["stereo"])["frames"] == 48
        return in_order(pictures, "stereo"), in_order(pictures, "depth")[..., 0]

    whole_stereo, whole_depth = run("whole", None)
    scene_stereo, scene_depth = run("scenes", SceneSettings())
    parts_stereo, parts_depth = run("parts", SceneSettings(part_frames=9, part_overlap=3))
    # Each scene's depth spans the whole range on its own; over the clip only the extremes do.
    for first in (0, 16, 32):
        assert scene_depth[first:first + 16].min() == 0 and scene_depth[first:first + 16].max() == 255, first
    assert whole_depth[32:].max() < 128, "without splitting, the last scene keeps its small range"
    assert not torch.equal(whole_stereo, scene_stereo)
    # Parts of a scene share its depth statistics and its screen plane: the warp of every frame is the same
    # as the whole scene's (with the scene's range or each frame's own, with auto-convergence), and so is
    # the comfort report of every frame.
    assert torch.equal(scene_stereo, parts_stereo) and torch.equal(scene_depth, parts_depth)
    auto = AutoConvergence(strength=1.0, smoothing_seconds=0.2)
    assert torch.equal(run("scenes", SceneSettings(), "frame", auto)[0],
                       run("parts", SceneSettings(part_frames=9, part_overlap=3), "frame", auto)[0])
    reports = [json.loads((tmp_path / f"{name}_comfort.json").read_text()) for name in ("scenes", "parts")]
    assert reports[0]["frames"] == list(range(48)) and reports[0] == reports[1]


def test_split_scene_with_depthcrafter_runs_through_every_task(three_scenes, tmp_path, depthcrafter_model,
                                                               stereocrafter_model, monkeypatch):
    from stereo_core.engine import pipeline
    from stereo_core.engine.depth import DepthCrafterFrames
    from test_engine import DEPTH, INPAINT

    models = LoadedModels({"depthcrafter": depthcrafter_model, "stereocrafter": stereocrafter_model})
    settings = ConversionSettings(depth=DEPTH, inpaint=INPAINT, seed=2, output=OutputSettings(segment_frames=4))
    job = ConversionJob(source=three_scenes, outputs={"stereo": tmp_path / "out.mp4"}, work_dir=tmp_path / "work",
                        max_frames=30, keep_work=True)
    scenes = SceneSettings(part_frames=12, part_overlap=3)
    convert_scenes(job, settings, scenes, models)
    assert describe(tmp_path / "out.mp4")["frames"] == 30
    work = tmp_path / "work"
    assert len(list(work.glob("scene-00000-*/part-*/depth-*"))) == 2
    assert len(list(work.glob("scene-00001-*/part-*/depth-*"))) == 2, "scene 2 (14 of its frames) in two parts"
    assert len(list(work.glob("scene-0000[01]-*/align-*.safetensors"))) == 2
    before = {path: path.stat().st_mtime_ns for path in work.rglob("*.mp4")}

    def no_work(*args, **kwargs):
        raise AssertionError("a finished task ran again")

    # Run again: every task finds its record; nothing is computed.
    (tmp_path / "out.mp4").unlink()
    monkeypatch.setattr(pipeline.Conversion, "run", no_work)
    monkeypatch.setattr(DepthCrafterFrames, "__init__", no_work)
    monkeypatch.setattr(SceneDepth, "measure", no_work)
    convert_scenes(job, settings, scenes, models)
    assert {path: path.stat().st_mtime_ns for path in work.rglob("*.mp4")} == before
    assert describe(tmp_path / "out.mp4")["frames"] == 30


# --- the command line: killed and started again ---------------------------------------------------------------


def scenes_command(source, output, models, *extra):
    argv = [a for a in FAST if a != "--quiet"]
    return [sys.executable, "-m", "stereo_core", str(source), "-o", str(output), "--models", str(models),
            "--segment-frames", "4", "--split-scenes", *argv, *extra]


def scenes_reference(tmp_path_factory, model_tree):
    """The three-scene clip and its --split-scenes conversion in one process (made once per test session:
    the Ray tests compare with it too)."""
    folder = tmp_path_factory.getbasetemp() / "scenes-reference"
    source, output = folder / "three.mp4", folder / "reference.mp4"
    if not output.is_file():
        folder.mkdir(exist_ok=True)
        make_scene_video(source, [16, 16, 16])
        subprocess.run(scenes_command(source, output, model_tree["svd"].parent, "--quiet"), cwd=ROOT,
                       env=ONE_THREAD, check=True, capture_output=True, timeout=600)
    return source, output


def test_split_scenes_resume_at_scene_and_chunk_level(tmp_path_factory, tmp_path, model_tree, models_dir):
    three_scenes, reference = scenes_reference(tmp_path_factory, model_tree)
    output = tmp_path / "resumed.mp4"
    command = scenes_command(three_scenes, output, models_dir)
    work = tmp_path / ".resumed.work"
    process = subprocess.Popen(command, cwd=ROOT, env=ONE_THREAD, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not list(work.glob("scene-00001-*/right-*/chunk-000001.safetensors")):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert list(work.glob("scene-00000-*/done-convert.json")) and not list(work.glob("scene-00001-*/done-*"))

    log = subprocess.run(command, cwd=ROOT, env=ONE_THREAD, check=True, capture_output=True, text=True,
                         timeout=600).stderr
    assert "scene 1/3: finished by an earlier run" in log
    assert "scene 2/3: Resuming" in log, "the interrupted scene continues from its last finished chunk"
    ours, expected = decoded(output), decoded(reference)
    assert len(ours) == len(expected) == 48
    assert all(np.array_equal(a, b) for a, b in zip(ours, expected))
    assert describe(output)["audio"] == "aac"
    assert not work.exists()


@pytest.mark.parametrize("extra, message", [
    (["--scene-threshold", "0"], "threshold must be above 0"),
    (["--scene-part-frames", "30", "--scene-overlap", "24"], "three times the overlap"),
    (["--ray", "--ray-workers", "0"], "--ray-workers must be at least 1"),
])
def test_bad_scene_options_are_one_clear_line(extra, message, three_scenes, tmp_path, capsys):
    code = cli.main([str(three_scenes), "-o", str(tmp_path / "o.mp4"), "--no-inpaint", "--split-scenes",
                     "--depth-video", str(three_scenes), "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("module, extra, message", [
    ("scenedetect", ["--split-scenes"], "--split-scenes needs PySceneDetect: pip install scenedetect"),
    ("ray", ["--ray"], "--ray needs Ray: pip install 'stereocrafter-3d[ray]'"),
])
def test_a_missing_extra_is_named_before_any_work(module, extra, message, three_scenes, tmp_path, capsys,
                                                  monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: importing it fails
    monkeypatch.setattr(cli, "plan_conversion", lambda *args: pytest.fail("work started"))
    code = cli.main([str(three_scenes), "-o", str(tmp_path / "o.mp4"), "--no-inpaint", "--depth-video",
                     str(three_scenes), "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
