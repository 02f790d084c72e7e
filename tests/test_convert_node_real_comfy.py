"""Stereo Convert Video in a real ComfyUI 0.8.0 server: core Load Video (clip, and a depth video on the second
input) -> Stereo Convert Video (no inpainting model) -> core Save Video, on 48 frames of 1280x720; then the
same run cancelled with the server's /interrupt mid-way and queued again: it resumes and gives the same video.

Runs where the ComfyUI test harness is set up (see test_workflows_real_comfy.py), skipped elsewhere. About
two minutes on 2 CPU cores. The 480-frame run and the server's memory are measured by
bench/bench_convert_node.py.
"""

import json
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from synthetic_video import describe, make_depth_video, make_video
from test_workflows_real_comfy import COMFYH, HARNESS_HOME, pytestmark  # noqa: F401 (skips without a harness)
from workflow_executor import api_prompt

from stereo_core.video_io import read_video

ROOT = Path(__file__).resolve().parents[1]
FRAMES, WIDTH, HEIGHT, FPS = 48, 1280, 720, Fraction(24)
NODE = "SC3D_StereoConvertVideo"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sys.path.insert(0, str(COMFYH.parent))
    from comfyh_lib.server import ComfyServer

    harness = json.loads((Path(HARNESS_HOME) / "harness-env.json").read_text())
    comfy = ComfyServer(harness["comfy_dir"], harness["python"], packs=[str(ROOT)], pack_names=["stereocrafter-3d"],
                        run_root=os.path.join(HARNESS_HOME, "runs"))
    comfy.prepare()
    inputs = Path(comfy.run_dir) / "input"
    make_video(inputs / "input_video.mp4", frames=FRAMES, width=WIDTH, height=HEIGHT, fps=FPS)
    make_depth_video(inputs / "input_depth.mp4", FRAMES, WIDTH, HEIGHT, FPS)
    comfy.start(timeout=300)
    try:
        yield comfy
    finally:
        comfy.stop()


def prompt(node_prefix, save_prefix):
    """The shipped depth-video workflow, with pieces of 16 frames (3 of them) so a cancelled run keeps work."""
    return api_prompt(ROOT / "workflows" / "long_video_bring_your_own_depth.json", {
        NODE: {"filename_prefix": node_prefix, "segment_frames": 16},
        "SaveVideo": {"filename_prefix": save_prefix}})


def finished(server, queued, timeout=600):
    entry = server.client.wait_history(queued["prompt_id"], timeout=timeout, poll=0.2)
    assert entry is not None, server.read_log()[-3000:]
    return entry


def saved_file(server, entry):
    (record,) = [item for node in entry["outputs"].values() for item in node.get("images", [])
                 if item["type"] == "output"]
    return Path(server.run_dir) / "output" / record["subfolder"] / record["filename"]


def test_load_video_convert_save_video_in_real_comfyui_and_resume_after_interrupt(server):
    entry = finished(server, server.client.queue_prompt(prompt("stereo3d/whole", "stereo3d/sbs")))
    assert entry["status"]["status_str"] == "success", entry["status"]
    whole = saved_file(server, entry)
    assert describe(whole) == {"frames": FRAMES, "width": 2 * WIDTH, "height": HEIGHT, "fps": FPS, "audio": "aac"}
    sbs = read_video(whole).frames
    source = read_video(Path(server.run_dir) / "input" / "input_video.mp4").frames
    assert (sbs[:, :, :WIDTH] - source).abs().mean() < 0.02, "the left eye is the input"
    assert (sbs[:, :, WIDTH:] - source).abs().mean() > 0.01, "the right eye is shifted"

    # Cancel as soon as the first piece of 16 frames is finished.
    work = Path(server.run_dir) / "output" / ".stereo3d-work"
    queued = server.client.queue_prompt(prompt("stereo3d/convert", "stereo3d/resumed"))
    deadline = time.time() + 300
    while not list(work.glob("*/encode-*/stereo-00000.mp4")):
        assert time.time() < deadline, server.read_log()[-3000:]
        time.sleep(0.05)
    server.client.interrupt()
    entry = finished(server, queued)
    assert entry["status"]["status_str"] == "error", "the run was interrupted before the end"
    assert any(message[0] == "execution_interrupted" for message in entry["status"]["messages"])
    kept = list(work.glob("*/encode-*/stereo-*.mp4"))
    assert 1 <= len(kept) < 3, "finished pieces are kept, the unfinished one is not"
    assert not list((Path(server.run_dir) / "temp").rglob("convert_*.mp4")), "no file before the end"

    # Queued again: the node was not finished, so ComfyUI runs it again, and the engine resumes.
    entry = finished(server, server.client.queue_prompt(prompt("stereo3d/convert", "stereo3d/resumed")))
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert f"Resuming: {16 * len(kept)} of {FRAMES} frames already encoded" in server.read_log()
    resumed = saved_file(server, entry)
    assert describe(resumed) == describe(whole)
    assert torch.equal(read_video(resumed).frames, sbs), "the resumed run gives the uninterrupted run's video"
    assert not work.exists(), "the work folder is removed after success"
