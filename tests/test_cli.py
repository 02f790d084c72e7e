"""The command line end to end on the tiny models: outputs, audio and fps, resuming, and its errors."""

from fractions import Fraction

import pytest
import torch

from stereo_core import cli
from stereo_core.video_io import read_video, write_video
from synthetic_video import describe, make_video

# Small windows and chunks so the tiny models see several of each in 10 frames.
FAST = ["--max-res", "64", "--depth-window", "6", "--depth-overlap", "2", "--depth-steps", "2",
        "--steps", "2", "--frames-chunk", "6", "--overlap", "2", "--quiet"]


@pytest.fixture
def source(tmp_path):
    return make_video(tmp_path / "clip.mp4", frames=10, width=96, height=64, fps=Fraction(24))


def run(*argv):
    return cli.main([str(a) for a in argv])


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


def test_reruns_skip_finished_outputs_and_resume_from_finished_stages(source, tmp_path, models_dir, monkeypatch):
    output = tmp_path / "clip_sbs.mp4"
    assert run(source, "-o", output, "--models", models_dir, "--keep-work", *FAST) == 0
    stamp = output.stat().st_mtime_ns
    assert run(source, "-o", output, "--models", models_dir, *FAST) == 0
    assert output.stat().st_mtime_ns == stamp, "a finished output is left alone"

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished stage was computed again")

    monkeypatch.setattr(cli, "estimate_depth", must_not_run)
    monkeypatch.setattr(cli, "inpaint_clip", must_not_run)
    assert run(source, "-o", output, "--models", models_dir, "--overwrite", "--keep-work", *FAST) == 0
    # Another strength reuses the depth but must inpaint again.
    with pytest.raises(AssertionError, match="computed again"):
        cli.main([str(source), "-o", str(output), "--models", str(models_dir), "--overwrite", "--max-disp", "8",
                  *FAST])


def test_stage_results_are_not_reused_for_another_frame_count(source, tmp_path, models_dir):
    depth = tmp_path / "depth.mp4"
    write_video(depth, torch.rand(10, 64, 96, 3), 24)
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
        write_video(depth / f"{name}_depth.mp4", torch.rand(4, 64, 96, 3), 24)
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
    (["{clip}", "-o", "{clip}"], "would overwrite its input"),
    (["{clip}", "--models", "{tmp}"], 'python -m stereo_core download --models "{tmp}" (by hand: hf download '
     "stabilityai/stable-video-diffusion-img2vid-xt-1-1 model_index.json"),
    (["{clip}", "--models", "{tmp}", "--no-inpaint"], "Missing: the folder itself"),
    (["{clip}", "--depth-video", "{clip}", "--no-inpaint", "--max-disp", "500"], "more than the frame width"),
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
