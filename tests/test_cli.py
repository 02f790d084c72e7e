"""The command line end to end on the tiny models: outputs, audio and fps, resuming, and its errors."""

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import pytest
import torch
from conftest import ROOT

from stereo_core import cli
from stereo_core.video_io import read_video, write_video
from synthetic_video import describe, make_video

# Small windows and chunks so the tiny models see several of each in 10 frames.
FAST = ["--max-res", "64", "--depth-window", "6", "--depth-overlap", "2", "--depth-steps", "2",
        "--steps", "2", "--frames-chunk", "6", "--overlap", "2", "--quiet",
        "--disp-unit", "pixels"]  # 20 px on 96-px frames: wide holes for the inpainting to fill


# Subprocess runs compute with one thread, as the in-process tests do, so their numbers agree.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


@pytest.fixture
def source(tmp_path):
    return make_video(tmp_path / "clip.mp4", frames=10, width=96, height=64, fps=Fraction(24))


def run(*argv):
    return cli.main([str(a) for a in argv])


def grey_depth(path, frames=10, width=96, height=64):
    """A grey depth video (white = near): a ramp with a nearer box."""
    depth = torch.linspace(0.2, 0.7, width).view(1, 1, width, 1).repeat(frames, height, 1, 3)
    depth[:, height // 4: height // 2, width // 3: width // 2] = 0.95
    return write_video(path, depth, 24)


def test_converts_a_clip_end_to_end_keeping_fps_audio_and_the_left_eye(source, tmp_path, models_dir):
    output = tmp_path / "out" / "clip_sbs.mp4"
    assert run(source, "-o", output, "--models", models_dir, "--anaglyph", "--save-depth", *FAST) == 0
    facts = describe(output)
    assert facts == {"frames": 10, "width": 192, "height": 64, "fps": Fraction(24), "audio": "aac"}
    sbs = read_video(output).frames
    original = read_video(source).frames
    assert (sbs[:, :, :96] - original).abs().mean() < 0.02  # left half is the input (up to the codec)
    assert describe(output.with_name("clip_sbs_anaglyph.mp4"))["width"] == 96
    assert describe(output.with_name("clip_sbs_depth.mp4"))["audio"] is None
    assert not list(output.parent.glob(".*")), "work folder and partial files are cleaned up"


def test_depth_video_skips_depthcrafter_and_half_layouts_keep_the_size(source, tmp_path):
    depth = tmp_path / "depth.mp4"
    ramp = torch.linspace(0, 1, 96).view(1, 1, 96, 1).expand(10, 64, 96, 3)
    write_video(depth, ramp, 24)
    output = tmp_path / "tb.mp4"
    # No model folder exists: nothing may be loaded.
    assert run(source, "-o", output, "--depth-video", depth, "--no-inpaint", "--format", "half-tb",
               "--models", tmp_path / "nowhere", "--quiet") == 0
    assert describe(output) == {"frames": 10, "width": 96, "height": 64, "fps": Fraction(24), "audio": "aac"}


def test_reruns_skip_finished_outputs_but_redo_empty_or_broken_ones(source, tmp_path):
    depth = grey_depth(tmp_path / "depth.mp4")
    output = tmp_path / "clip_sbs.mp4"
    common = [source, "-o", output, "--depth-video", depth, "--no-inpaint", "--quiet"]
    assert run(*common) == 0
    stamp = output.stat().st_mtime_ns
    assert run(*common) == 0
    assert output.stat().st_mtime_ns == stamp, "a finished output is left alone"
    for broken in (b"", b"not a video at all"):
        output.write_bytes(broken)
        assert run(*common) == 0
        assert describe(output)["frames"] == 10, "an empty or undecodable output is not counted as done"


def test_stage_results_are_not_reused_for_another_frame_count(source, tmp_path, models_dir):
    depth = grey_depth(tmp_path / "depth.mp4")
    output = tmp_path / "clip_sbs.mp4"
    common = [source, "-o", output, "--models", models_dir, "--depth-video", depth, "--keep-work", *FAST]
    assert run(*common) == 0
    assert run(*common, "--overwrite", "--max-frames", "6") == 0
    assert describe(output)["frames"] == 6


def test_an_interrupted_write_leaves_no_output_behind(source, tmp_path, monkeypatch):
    output = tmp_path / "clip_sbs.mp4"
    frames = read_video(source).frames

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_video(output, frames, 24, batch=4, progress=interrupt)
    assert list(tmp_path.iterdir()) == [source]


def test_audio_mp4_cannot_hold_is_reencoded(tmp_path):
    source = make_video(tmp_path / "pcm.mov", frames=6, audio_codec="pcm_s16le")
    output = write_video(tmp_path / "out.mp4", read_video(source).frames, 24, audio_from=source)
    assert describe(output)["audio"] == "aac"


def test_odd_sizes_are_padded_not_cropped(tmp_path):
    frames = torch.rand(3, 33, 47, 3)
    facts = describe(write_video(tmp_path / "odd.mp4", frames, Fraction(30000, 1001)))
    assert (facts["width"], facts["height"], facts["fps"]) == (48, 34, Fraction(30000, 1001))


def test_batches_of_inputs_go_to_an_output_folder(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a", "b"):
        make_video(folder / f"{name}.mp4", frames=4, audio_codec=None)
    depth = tmp_path / "depths"
    depth.mkdir()
    for name in ("a", "b"):
        grey_depth(depth / f"{name}_depth.mp4", frames=4)
    assert run(folder, "-o", tmp_path / "out", "--depth-video", depth, "--no-inpaint", "--quiet") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_sbs.mp4", "b_sbs.mp4"]
    assert describe(tmp_path / "out" / "a_sbs.mp4")["audio"] is None
    # Outputs beside their inputs, then a rerun over the folder: outputs are not taken for inputs.
    for _ in range(2):
        assert run(folder, "--depth-video", depth, "--no-inpaint", "--anaglyph", "--quiet") == 0
    assert sorted(p.name for p in folder.iterdir()) == [
        "a.mp4", "a_sbs.mp4", "a_sbs_anaglyph.mp4", "b.mp4", "b_sbs.mp4", "b_sbs_anaglyph.mp4"]


@pytest.mark.parametrize("argv, message", [
    (["missing.mp4"], "Input 'missing.mp4' does not exist"),
    (["{clip}", "{clip}", "-o", "out.mp4"], "With 2 inputs, -o must be a folder"),
    (["{clip}", "--depth-video", "nope.mp4"], "Depth video 'nope.mp4' does not exist"),
    (["{clip}", "-o", "{clip}"], "would overwrite the input"),
    (["{clip}", "--models", "{tmp}"], 'python -m stereo_core download --models "{tmp}" (by hand: hf download '
     "stabilityai/stable-video-diffusion-img2vid-xt-1-1 model_index.json"),
    (["{clip}", "--models", "{tmp}", "--no-inpaint"], "Missing: the folder itself"),
    (["{clip}", "--depth-video", "{clip}", "--no-inpaint", "--max-disp", "5000"], "more than the frame width"),
])
def test_bad_input_is_one_clear_line(argv, message, source, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(clip=source, tmp=tmp_path) for a in argv]
    message = message.format(tmp=tmp_path)
    assert cli.main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_console_script_points_at_main():
    import importlib
    import tomllib
    from pathlib import Path

    scripts = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["stereocrafter-3d"].split(":")
    assert getattr(importlib.import_module(module), function) is cli.main


def test_runs_as_a_module_from_the_packs_folder(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run([sys.executable, "-m", "stereo_core", str(tmp_path / "missing.mp4")],
                            cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "error: Input" in result.stderr and "does not exist" in result.stderr


# --- issue: the command line loses nothing and says what is wrong -----------------------------------


def error_of(capsys, *argv):
    code = cli.main([str(a) for a in argv] + ["--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_no_output_may_land_on_an_input(source, tmp_path, capsys):
    depth = grey_depth(tmp_path / "depth.mp4")
    before = depth.read_bytes()
    code, err = error_of(capsys, source, "-o", depth, "--depth-video", depth, "--no-inpaint")
    assert code == 2 and "would overwrite the depth video" in err
    assert depth.read_bytes() == before

    # The anaglyph next to the output would be an input's name.
    clip = tmp_path / "x_anaglyph.mp4"
    clip.write_bytes(source.read_bytes())
    code, err = error_of(capsys, clip, "-o", tmp_path / "x.mp4", "--anaglyph", "--depth-video", depth,
                         "--no-inpaint")
    assert code == 2 and f"would overwrite the input '{clip}'" in err
    assert clip.read_bytes() == source.read_bytes()


def test_an_unwritable_output_folder_is_refused_before_any_work(source, tmp_path, capsys, models_dir, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("work started")

    monkeypatch.setattr(cli, "load_video_diffusion", no_work)
    monkeypatch.setattr(cli, "plan_conversion", no_work)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, err = error_of(capsys, source, "-o", blocker / "sub" / "out.mp4", "--models", models_dir)
    assert code == 2 and "Cannot write the output in" in err and "a_file" in err
    code, err = error_of(capsys, source, "-o", tmp_path / "out.mp4", "--models", models_dir,
                         "--work-dir", blocker / "work")
    assert code == 2 and "Cannot write the work folder" in err


def test_container_follows_the_output_extension(source, tmp_path, capsys):
    import av

    depth = grey_depth(tmp_path / "depth.mp4")
    assert run(source, "-o", tmp_path / "out.mkv", "--depth-video", depth, "--no-inpaint", "--quiet") == 0
    with av.open(str(tmp_path / "out.mkv")) as container:
        assert "matroska" in container.format.name
    code, err = error_of(capsys, source, "-o", tmp_path / "out.avi", "--depth-video", depth, "--no-inpaint")
    assert code == 2 and "extension '.avi' is not supported" in err and not (tmp_path / "out.avi").exists()


@pytest.mark.parametrize("extra, message", [
    (["--max-frames", "0"], "--max-frames must be at least 1"),
    (["--max-frames", "-3"], "--max-frames must be at least 1"),
    (["--max-disp", "5000"], "more than the frame width"),
    (["--depth-overlap", "80"], "overlap (80) must be"),
    (["--steps", "0"], "steps must be at least 1"),
    (["--convergence", "2"], "convergence must be between 0 and 1"),
    (["--crf", "99"], "crf must be 0..51"),
])
def test_impossible_settings_are_refused_before_any_model_runs(extra, message, source, tmp_path, capsys,
                                                                models_dir, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(cli, "load_video_diffusion", no_model)
    code, err = error_of(capsys, source, "-o", tmp_path / "o.mp4", "--models", models_dir, *extra)
    assert code == 2 and message in err and not (tmp_path / "o.mp4").exists()


def test_one_damaged_file_does_not_stop_a_batch(tmp_path, capsys):
    folder, depths = tmp_path / "videos", tmp_path / "depths"
    folder.mkdir()
    depths.mkdir()
    for name in ("a", "c"):
        make_video(folder / f"{name}.mp4", frames=4, audio_codec=None)
    (folder / "b.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 damaged beyond use")
    for name in ("a", "b", "c"):
        grey_depth(depths / f"{name}_depth.mp4", frames=4)
    code, err = error_of(capsys, folder, "-o", tmp_path / "out", "--depth-video", depths, "--no-inpaint")
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_sbs.mp4", "c_sbs.mp4"]
    assert "1 of 3 videos failed" in err and "b.mp4" in err.splitlines()[-1]


def test_a_truncated_input_is_reported(tmp_path, capsys):
    from test_engine import truncated_video

    source = truncated_video(tmp_path / "cut.mp4")
    depth = grey_depth(tmp_path / "depth.mp4", frames=24, width=64, height=48)
    code, err = error_of(capsys, source, "-o", tmp_path / "o.mp4", "--depth-video", depth, "--no-inpaint")
    assert code == 2 and "says it has 24 frames" in err and not (tmp_path / "o.mp4").exists()


def test_unreadable_weights_are_not_called_a_bad_download(model_tree, monkeypatch):
    from diffusers import UNetSpatioTemporalConditionModel

    from stereo_core.errors import StereoInputError
    from stereo_core.video_diffusion import load_video_diffusion

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(model_tree["stereocrafter"] / "unet_diffusers"))

    monkeypatch.setattr(UNetSpatioTemporalConditionModel, "from_pretrained", denied)
    with pytest.raises(StereoInputError, match="permission denied") as caught:
        load_video_diffusion("stereocrafter", model_tree["svd"], model_tree["stereocrafter"])
    assert "download" not in str(caught.value)


# --- killed at any moment, started again: the same video ----------------------------------------------


def cli_command(source, output, models, *extra):
    return [sys.executable, "-m", "stereo_core", str(source), "-o", str(output), "--models", str(models),
            "--anaglyph", "--segment-frames", "4", *FAST, *extra]


def run_to_the_end(command):
    subprocess.run(command, cwd=ROOT, env=ONE_THREAD, check=True, capture_output=True, timeout=600)


def kill_when(command, work, trigger):
    """Start the command and SIGKILL it as soon as a file matching `trigger` appears in its work folder."""
    process = subprocess.Popen(command, cwd=ROOT, env=ONE_THREAD, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not list(work.glob(trigger)):
            assert process.poll() is None, f"the run ended before {trigger} appeared"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL


def decoded(path):
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_a_run_killed_at_any_stage_resumes_to_the_identical_video(source, tmp_path, models_dir):
    """SIGKILL during DepthCrafter's windows, during inpainting, and between encoded pieces."""
    reference = tmp_path / "reference" / "clip_sbs.mp4"
    run_to_the_end(cli_command(source, reference, models_dir, "--save-depth"))

    output = tmp_path / "resumed" / "clip_sbs.mp4"
    command = cli_command(source, output, models_dir, "--save-depth")
    work = output.with_name(".clip_sbs.work")
    for trigger in ("depth-*/window-000001.safetensors", "right-*/chunk-000001.safetensors",
                    "encode-*/stereo-00001.mp4"):
        kill_when(command, work, trigger)
        assert not output.exists()
    run_to_the_end(command)
    for name in ("clip_sbs.mp4", "clip_sbs_anaglyph.mp4", "clip_sbs_depth.mp4"):
        ours, expected = decoded(output.with_name(name)), decoded(reference.with_name(name))
        assert len(ours) == len(expected) == 10
        assert all(np.array_equal(a, b) for a, b in zip(ours, expected)), name
    assert not work.exists()


def test_an_interrupted_final_join_leaves_nothing_and_resumes(source, tmp_path, monkeypatch):
    from stereo_core import video_io

    depth = grey_depth(tmp_path / "depth.mp4")
    reference = tmp_path / "ref.mp4"
    common = ["--depth-video", depth, "--no-inpaint", "--segment-frames", "3", "--quiet"]
    assert run(source, "-o", reference, *common) == 0
    output = tmp_path / "out.mp4"
    original = video_io.join_segments

    def interrupted(path, *args, finish=None, **kwargs):
        def stop(partial):  # the whole file is written, then the run is interrupted before the rename
            if finish is not None:
                finish(partial)
            raise KeyboardInterrupt

        original(path, *args, finish=stop, **kwargs)

    monkeypatch.setattr(video_io, "join_segments", interrupted)
    monkeypatch.setattr("stereo_core.engine.pipeline.join_segments", interrupted)
    assert run(source, "-o", output, *common) == 130
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(
        ["clip.mp4", "depth.mp4", "ref.mp4"])
    monkeypatch.undo()
    assert run(source, "-o", output, *common) == 0
    assert all(np.array_equal(a, b) for a, b in zip(decoded(output), decoded(reference)))


# --- files players recognise as 3D ------------------------------------------------------------------


def test_vr180_frames_are_two_squares_with_spherical_metadata(source, tmp_path):
    from stereo_core.spatial_media import VR180, read_spatial_metadata

    depth = grey_depth(tmp_path / "depth.mp4")
    assert run(source, "--format", "vr180", "--vr180-eye-size", "128", "--depth-video", depth, "--no-inpaint",
               "--quiet") == 0
    output = source.with_name("clip_180_LR.mp4")  # no "vr180" in the name: players take it for fisheye
    facts = describe(output)
    assert (facts["width"], facts["height"], facts["frames"]) == (256, 128, 10)
    assert len(decoded(output)) == 10
    assert read_spatial_metadata(output) == VR180


@pytest.mark.parametrize("layout, mode, swap", [("sbs", "left-right", False), ("half-tb", "top-bottom", False),
                                                ("sbs", "right-left", True), ("tb", None, True)])
def test_flat_stereo_files_carry_their_layout(layout, mode, swap, source, tmp_path):
    from stereo_core.spatial_media import metadata_for_layout, read_spatial_metadata

    depth = grey_depth(tmp_path / "depth.mp4")
    output = tmp_path / "out.mp4"
    assert run(source, "-o", output, "--format", layout, *(["--swap-eyes"] if swap else []), "--depth-video",
               depth, "--no-inpaint", "--anaglyph", "wimmer", "--quiet") == 0
    assert read_spatial_metadata(output).stereo_mode == mode  # None: no st3d value for bottom-top
    assert read_spatial_metadata(output).apple == metadata_for_layout(layout, swap).apple  # Vision Pro's boxes
    assert read_spatial_metadata(tmp_path / "out_anaglyph.mp4") is None, "an anaglyph is a flat picture"
    assert len(decoded(output)) == 10


def test_matroska_carries_its_stereo_mode_and_tags_name_the_layout(source, tmp_path):
    import av

    depth = grey_depth(tmp_path / "depth.mp4")
    assert run(source, "-o", tmp_path, "--filename-tags", "--format", "tb", "--depth-video", depth, "--no-inpaint",
               "--anaglyph", "--quiet") == 0
    assert sorted(p.name for p in tmp_path.glob("clip*")) == ["clip.mp4", "clip_TB.mp4", "clip_anaglyph.mp4"]
    assert run(source, "-o", tmp_path / "x.mkv", "--depth-video", depth, "--no-inpaint", "--quiet") == 0
    with av.open(str(tmp_path / "x.mkv")) as container:
        assert container.streams.video[0].metadata.get("stereo_mode") == "left_right"


def test_comfort_report_writes_a_plot_and_a_verdict(source, tmp_path, caplog):
    import json

    from PIL import Image

    depth = grey_depth(tmp_path / "depth.mp4")
    output = tmp_path / "out.mp4"
    with caplog.at_level("INFO", logger="stereo_core"):
        assert run(source, "-o", output, "--depth-video", depth, "--no-inpaint", "--comfort-report",
                   "--max-disp", "3", "--disp-unit", "percent") == 0
    summary = json.loads((tmp_path / "out_comfort.json").read_text())
    assert len(summary["frames"]) == 10 and Image.open(tmp_path / "out_comfort.png").size[0] > 0
    # 3% of the width in front of the screen is beyond the 1% limit: the report says so.
    assert max(summary["nearest"]) == pytest.approx(3.0, abs=0.35)
    assert summary["verdict"].startswith("Uncomfortable") and summary["verdict"] in caplog.text


def test_auto_convergence_puts_the_subject_on_the_screen_plane(source, tmp_path):
    # Near subject (1 after normalisation) filling the middle, far border (0).
    depth = torch.full((10, 64, 96, 3), 0.1)
    depth[:, 8:56, 16:80] = 0.6
    write_video(tmp_path / "depth.mp4", depth, 24)
    common = ["--depth-video", tmp_path / "depth.mp4", "--no-inpaint", "--quiet", "--convergence", "0.8",
              "--disp-unit", "pixels"]
    assert run(source, "-o", tmp_path / "fixed.mp4", *common) == 0
    assert run(source, "-o", tmp_path / "auto.mp4", *common, "--auto-convergence") == 0

    def centre_parallax(path):  # how far the right eye's centre is from the left eye's
        frames = np.stack(decoded(path)).astype(np.int32)
        return np.abs(frames[:, 24:40, 96 + 36:96 + 60] - frames[:, 24:40, 36:60]).mean()

    # Fixed: the subject sits (1 - 0.8) * 2 * 20 = 8 px in front; auto: on the screen plane (0 px).
    assert centre_parallax(tmp_path / "auto.mp4") < 2 < 10 < centre_parallax(tmp_path / "fixed.mp4")
