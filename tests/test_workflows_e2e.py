"""Every shipped workflow executed end to end on the tiny models and a short synthetic clip with audio.

The saved videos must have the input's frame count and fps, the layout's size, the source's
audio, and (for stereo outputs) a left half equal to the input up to the video codec.
"""

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stereo_core.video_io import read_video
from synthetic_video import describe, make_depth_video, make_grid_video, make_photo, make_video
from workflow_executor import run_workflow

ROOT = Path(__file__).resolve().parents[1]
FRAMES, WIDTH, HEIGHT, FPS = 8, 128, 64, Fraction(24)
CODEC_TOLERANCE = 0.03  # mean absolute difference after one or two H.264 passes


@pytest.fixture(scope="module")
def input_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("input")
    make_video(folder / "input_video.mp4", frames=FRAMES, width=WIDTH, height=HEIGHT, fps=FPS)
    make_depth_video(folder / "input_depth.mp4", FRAMES, WIDTH, HEIGHT, FPS)
    make_photo(folder / "input_photo.png", WIDTH, HEIGHT)
    return folder


def run(name, nodes, input_dir, tmp_path, shown=None):
    saved = run_workflow(ROOT / "workflows" / f"{name}.json", nodes, input_dir, tmp_path, shown)
    return {path.relative_to(tmp_path).as_posix().rsplit("_", 2)[0]: path for path in saved}


def assert_left_eye_is_input(path, input_path, width=WIDTH, height=HEIGHT):
    left = read_video(path).frames[:, :height, :width]
    assert (left - read_video(input_path).frames).abs().mean() < CODEC_TOLERANCE


STEREO_WORKFLOWS = ["auto_convergence", "bring_your_own_depth", "full_pipeline", "videohelpersuite_full_pipeline",
                    "video_depth_anything"]


@pytest.mark.parametrize("name", STEREO_WORKFLOWS)
def test_stereo_workflows_write_sbs_and_anaglyph(name, nodes, models_dir, input_dir, tmp_path):
    outputs = run(name, nodes, input_dir, tmp_path)
    assert sorted(outputs) == ["stereo3d/anaglyph", "stereo3d/sbs"]
    common = {"frames": FRAMES, "fps": FPS, "audio": "aac"}
    assert describe(outputs["stereo3d/sbs"]) == {**common, "width": 2 * WIDTH, "height": HEIGHT}
    assert describe(outputs["stereo3d/anaglyph"]) == {**common, "width": WIDTH, "height": HEIGHT}
    assert_left_eye_is_input(outputs["stereo3d/sbs"], input_dir / "input_video.mp4")


@pytest.mark.parametrize("name", ["long_video_bring_your_own_depth", "long_video_full_pipeline",
                                  "long_video_video_depth_anything"])
def test_long_video_workflows_stream_through_stereo_convert_video(name, nodes, models_dir, input_dir, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("STEREOCRAFTER_OUTPUT", str(tmp_path / "node_output"))
    monkeypatch.setenv("STEREOCRAFTER_TEMP", str(tmp_path / "node_temp"))
    outputs = run(name, nodes, input_dir, tmp_path / "saved")
    assert sorted(outputs) == ["stereo3d/sbs"]
    assert describe(outputs["stereo3d/sbs"]) == {"frames": FRAMES, "fps": FPS, "audio": "aac", "width": 2 * WIDTH,
                                                 "height": HEIGHT}
    assert_left_eye_is_input(outputs["stereo3d/sbs"], input_dir / "input_video.mp4")
    # save_output is off in the shipped workflows: the node's own file went to the temp folder.
    (written,) = (tmp_path / "node_temp" / "stereo3d").glob("*.mp4")
    assert written.name == "convert_00001_LR.mp4" and written.read_bytes() == outputs["stereo3d/sbs"].read_bytes()
    assert not list((tmp_path / "node_output").rglob("*.*")), "nothing is left in the output folder"


def assert_comfort_plot_and_verdict(shown):
    (plot,) = shown["Comfort plot"]["images"]
    assert plot.shape == (520, 1200, 3) and plot.std() > 0.05, "the chart, not a blank image"
    (verdict,) = shown["Comfort verdict"]["text"]
    return verdict


def test_comfort_check_shows_the_plot_and_the_verdict(nodes, models_dir, input_dir, tmp_path):
    shown = {}
    assert run("comfort_check", nodes, input_dir, tmp_path, shown) == {}, "a check saves no video"
    assert sorted(shown) == ["Comfort plot", "Comfort verdict"]
    verdict = assert_comfort_plot_and_verdict(shown)
    # The default strength is the reference's look, up to 20/1024 of the width (about 2%) in front: past the
    # 1% limit in front, not near the 15% that 20 px of a 128 px frame would be.
    assert verdict.startswith("Uncomfortable: ") and "in front > 1%" in verdict, verdict
    nearest = float(verdict.split("nearest +")[1].split("%")[0])
    assert 1.0 < nearest <= 100 * 20 / 1024, verdict
    assert verdict.endswith("of the width on a 1920 px screen."), verdict


def test_auto_convergence_shows_the_planes_and_checks_the_depth_it_warps_by(nodes, models_dir, input_dir, tmp_path):
    shown = {}
    run("auto_convergence", nodes, input_dir, tmp_path, shown)
    assert sorted(shown) == ["Comfort plot", "Comfort verdict", "Screen plane per shot"]
    assert_comfort_plot_and_verdict(shown)
    ((planes,),) = shown["Screen plane per shot"].values()
    start, plane = planes.split(": ")
    assert start == "0" and abs(float(plane) - 0.5) <= 0.25, "one shot, its plane within max_shift of 0.5"


def test_depthcrafter_depth_writes_grey_and_inferno_depth(nodes, models_dir, input_dir, tmp_path):
    outputs = run("depthcrafter_depth", nodes, input_dir, tmp_path)
    assert sorted(outputs) == ["depth/depth", "depth/depth_inferno"]
    for path in outputs.values():
        assert describe(path) == {"frames": FRAMES, "fps": FPS, "audio": None, "width": WIDTH, "height": HEIGHT}
    grey = read_video(outputs["depth/depth"]).frames
    assert (grey[..., 0] - grey[..., 2]).abs().mean() < 0.02 and grey.std() > 0.01


def test_stage1_grid_feeds_stage2(nodes, models_dir, input_dir, tmp_path):
    stage1 = run("stage1_splatting", nodes, input_dir, tmp_path / "stage1")
    grid = stage1["stereo3d/splatting_grid"]
    assert describe(grid) == {"frames": FRAMES, "fps": FPS, "audio": "aac", "width": 2 * WIDTH, "height": 2 * HEIGHT}
    assert_left_eye_is_input(grid, input_dir / "input_video.mp4")

    stage2_inputs = tmp_path / "stage2_input"
    stage2_inputs.mkdir()
    shutil.copy(grid, stage2_inputs / "input_grid.mp4")
    stage2 = run("stage2_inpainting", nodes, stage2_inputs, tmp_path / "stage2")
    assert describe(stage2["stereo3d/sbs"]) == {"frames": FRAMES, "fps": FPS, "audio": "aac",
                                                "width": 2 * WIDTH, "height": HEIGHT}
    assert_left_eye_is_input(stage2["stereo3d/sbs"], input_dir / "input_video.mp4")


def test_stage2_rejects_a_video_that_is_not_a_grid(nodes, models_dir, input_dir, tmp_path):
    not_a_grid = tmp_path / "input"
    not_a_grid.mkdir()
    shutil.copy(input_dir / "input_video.mp4", not_a_grid / "input_grid.mp4")
    with pytest.raises(ValueError, match="does not look like a 2x2 splatting grid"):
        run("stage2_inpainting", nodes, not_a_grid, tmp_path / "out")


@pytest.mark.parametrize("name", ["full_pipeline", "stage2_inpainting", "depthcrafter_depth"])
def test_without_weights_the_loader_says_what_to_download_where(name, nodes, input_dir, tmp_path, monkeypatch):
    empty = tmp_path / "models" / "stereocrafter"
    empty.mkdir(parents=True)
    monkeypatch.setenv("STEREOCRAFTER_MODELS", str(empty))
    grid_input = tmp_path / "input"
    shutil.copytree(input_dir, grid_input)
    make_grid_video(grid_input / "input_grid.mp4", input_dir / "input_video.mp4", input_dir / "input_depth.mp4")
    with pytest.raises(ValueError) as error:
        run(name, nodes, grid_input, tmp_path / "out")
    message = str(error.value)
    assert "No model folder 'stable-video-diffusion-img2vid-xt-1-1' found" in message
    assert f'--local-dir "{empty / "stable-video-diffusion-img2vid-xt-1-1"}"' in message


def test_photo_3d_saves_a_numbered_side_by_side_png(nodes, models_dir, input_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("STEREOCRAFTER_OUTPUT", str(tmp_path / "node_output"))
    monkeypatch.setenv("STEREOCRAFTER_TEMP", str(tmp_path / "node_temp"))
    shown = {}
    for _ in range(2):  # queued twice: the second file is numbered on
        assert run("photo_3d", nodes, input_dir, tmp_path / "saved", shown) == {}, "no video"
    folder = tmp_path / "node_output" / "stereo3d"
    assert sorted(p.name for p in folder.iterdir()) == ["photo_00001_.png", "photo_00002_.png"]
    assert shown["SC3D_SaveStereoImage"]["images"] == [
        {"filename": "photo_00002_.png", "subfolder": "stereo3d", "type": "output"}]
    with Image.open(folder / "photo_00001_.png") as image:
        assert image.size == (2 * WIDTH, HEIGHT)
        picture = np.asarray(image.convert("RGB"))
    with Image.open(input_dir / "input_photo.png") as original:
        assert np.array_equal(picture[:, :WIDTH], np.asarray(original.convert("RGB"))), "lossless left eye"
    assert np.abs(picture[:, WIDTH:].astype(int) - picture[:, :WIDTH]).mean() > 1, "the right eye differs"
