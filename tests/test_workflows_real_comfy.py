"""Every shipped workflow in a real ComfyUI: loaded by its frontend, queued, run on the tiny models.

Runs where the ComfyUI test harness is set up (../shared/tools/comfy, its README says how),
skipped elsewhere (CI has no ComfyUI). Point it at the harness with COMFY_HARNESS_HOME;
VHS_PACK=/path/to/ComfyUI-VideoHelperSuite adds the VideoHelperSuite workflow. About a
minute per workflow on 2 CPU cores.
"""

import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stereo_core.video_io import read_video
from synthetic_video import describe, make_depth_video, make_grid_video, make_photo, make_video

ROOT = Path(__file__).resolve().parents[1]
COMFYH = Path(os.environ.get("COMFYH", ROOT.parent / "shared" / "tools" / "comfy" / "comfyh.py"))
HARNESS_HOME = os.environ.get("COMFY_HARNESS_HOME")
VHS_PACK = os.environ.get("VHS_PACK")
FRAMES, WIDTH, HEIGHT, FPS = 6, 128, 64, Fraction(24)

pytestmark = pytest.mark.skipif(
    not (HARNESS_HOME and (Path(HARNESS_HOME) / "harness-env.json").is_file() and COMFYH.is_file()),
    reason="no ComfyUI harness here (set COMFY_HARNESS_HOME to a set-up ../shared/tools/comfy harness)",
)

EXPECTED = {  # workflow -> {output prefix: (width factor, height factor, audio)}
    "auto_convergence": {"sbs": (2, 1, "aac"), "anaglyph": (1, 1, "aac")},
    "bring_your_own_depth": {"sbs": (2, 1, "aac"), "anaglyph": (1, 1, "aac")},
    "comfort_check": {},
    "depthcrafter_depth": {"depth": (1, 1, None), "depth_inferno": (1, 1, None)},
    "full_pipeline": {"sbs": (2, 1, "aac"), "anaglyph": (1, 1, "aac")},
    # Stereo Convert Video previews its own file (in temp/), Save Video the copy it keeps.
    "long_video_bring_your_own_depth": {"sbs": (2, 1, "aac"), "convert": (2, 1, "aac")},
    "long_video_full_pipeline": {"sbs": (2, 1, "aac"), "convert": (2, 1, "aac")},
    "long_video_video_depth_anything": {"sbs": (2, 1, "aac"), "convert": (2, 1, "aac")},
    "photo_3d": {},
    "stage1_splatting": {"splatting_grid": (2, 2, "aac")},
    "stage2_inpainting": {"sbs": (2, 1, "aac"), "anaglyph": (1, 1, "aac")},
    "videohelpersuite_full_pipeline": {"sbs": (2, 1, "aac"), "anaglyph": (1, 1, "aac")},
    "video_depth_anything": {"sbs": (2, 1, "aac"), "anaglyph": (1, 1, "aac")},
}
IMAGES = {"photo_3d": {"photo": (2, 1)}}  # workflow -> {image prefix: (width factor, height factor)}
COMFORT_PLOTS = {"auto_convergence", "comfort_check"}  # workflows whose Preview Image shows the comfort plot
CURVE_COLOURS = [(230, 120, 20), (40, 90, 200), (120, 50, 160)]  # nearest, median, farthest (comfort_plot.py)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("comfy_inputs")
    clip = make_video(folder / "input_video.mp4", frames=FRAMES, width=WIDTH, height=HEIGHT, fps=FPS)
    depth = make_depth_video(folder / "input_depth.mp4", FRAMES, WIDTH, HEIGHT, FPS)
    make_grid_video(folder / "input_grid.mp4", clip, depth)
    make_photo(folder / "input_photo.png", WIDTH, HEIGHT)
    return folder


def test_workflows_cover_everything_shipped():
    assert sorted(EXPECTED) == sorted(path.stem for path in (ROOT / "workflows").glob("*.json"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_workflow_runs_in_real_comfyui(name, inputs, model_tree, tmp_path):
    if name.startswith("videohelpersuite") and not VHS_PACK:
        pytest.skip("set VHS_PACK to a ComfyUI-VideoHelperSuite checkout")
    command = [sys.executable, str(COMFYH), "ui-run", "--pack", str(ROOT), "--name", "stereocrafter-3d",
               "--workflow", str(ROOT / "workflows" / f"{name}.json"),
               "--models-dir", str(model_tree["svd"].parents[1]),
               "--collect", str(tmp_path / "out"), "--report", str(tmp_path / "report.json")]
    for path in inputs.iterdir():
        command += ["--input", f"{path}={path.name}"]
    if VHS_PACK:
        command += ["--pack", VHS_PACK]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, env={**os.environ})
    report = json.loads((tmp_path / "report.json").read_text())
    workflow = report["workflows"][0]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert not workflow["missing_node_types"] and not workflow["widget_issues"] and not workflow["dialogs"]
    (prompt,) = report["prompts"]
    shown = [record for record in prompt["outputs"] if workflow_node_type(name, record["node"]) == "PreviewImage"]
    assert len(shown) == (name in COMFORT_PLOTS)
    for record in shown:
        assert record["type"] == "temp"
        assert_comfort_plot(tmp_path / "out" / record["filename"])
    saved = {path.name.split("_0000")[0]: path for path in (tmp_path / "out").iterdir() if path.suffix == ".mp4"}
    assert sorted(saved) == sorted(EXPECTED[name])
    for prefix, (width_factor, height_factor, audio) in EXPECTED[name].items():
        facts = describe(saved[prefix])
        assert facts == {"frames": FRAMES, "fps": FPS, "audio": audio,
                         "width": width_factor * WIDTH, "height": height_factor * HEIGHT}, prefix
    if "sbs" in saved:
        left = read_video(saved["sbs"]).frames[:, :, :WIDTH]
        assert (left - read_video(inputs / "input_video.mp4").frames).abs().mean() < 0.03
    pictures = {path.name.split("_0000")[0]: path for path in (tmp_path / "out").iterdir()
                if path.suffix == ".png" and path.name.split("_0000")[0] in IMAGES.get(name, {})}
    assert sorted(pictures) == sorted(IMAGES.get(name, {}))
    for prefix, (width_factor, height_factor) in IMAGES.get(name, {}).items():
        with Image.open(pictures[prefix]) as image:
            assert image.size == (width_factor * WIDTH, height_factor * HEIGHT), prefix
            left = np.asarray(image.convert("RGB"))[:, :WIDTH]
        with Image.open(inputs / "input_photo.png") as original:
            assert np.array_equal(left, np.asarray(original.convert("RGB"))), "the left eye is the photo"
    shutil.rmtree(tmp_path / "out")


def workflow_node_type(name, node_id):
    graph = json.loads((ROOT / "workflows" / f"{name}.json").read_text())
    return next(node["type"] for node in graph["nodes"] if str(node["id"]) == str(node_id))


def assert_comfort_plot(path):
    """The Stereo Comfort Check chart as Preview Image saved it: its size, and all three curves drawn."""
    with Image.open(path) as image:
        assert image.size == (1200, 520)
        pixels = np.asarray(image.convert("RGB")).astype(int)
    for colour in CURVE_COLOURS:  # ComfyUI rounds the 0..1 image down to 8 bits: within 1
        assert (np.abs(pixels - colour).max(axis=-1) <= 1).sum() > 300, f"no curve drawn in {colour}"
