"""A loader with no model folders downloading on request, in a real ComfyUI with its real frontend.

The ComfyUI server runs with HF_ENDPOINT pointing at the Hub stand-in (hub_standin.py) and no
token; the shipped depthcrafter_depth workflow is queued from the frontend three times: switch
off (stops, nothing downloaded), switch on without a token (the gated-repository message,
nothing downloaded), then switch on after the token is stored as `hf auth login` stores it (the
folders are downloaded into models/stereocrafter, the model loads, the depth videos are saved).
Runs where the ComfyUI test harness is set up (see test_workflows_real_comfy.py), skipped elsewhere.
"""

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

from hub_standin import HubStandIn
from stereo_core import model_files
from synthetic_video import describe, make_video
from test_download import SVD_REPO, TOKEN, UNUSED, repos  # noqa: F401 (repos is a fixture)
from test_workflows_real_comfy import COMFYH, HARNESS_HOME, pytestmark  # noqa: F401 (skips without a harness)

ROOT = Path(__file__).resolve().parents[1]
FRAMES, WIDTH, HEIGHT = 6, 128, 64


def workflow_with_switch(tmp_path, pack, value: bool) -> Path:
    graph = json.loads((ROOT / "workflows" / "depthcrafter_depth.json").read_text())
    loader = next(node for node in graph["nodes"] if node["type"] == "SC3D_DepthCrafterModelLoader")
    spec = pack.NODE_CLASS_MAPPINGS["SC3D_DepthCrafterModelLoader"].INPUT_TYPES()["required"]
    loader["widgets_values"][list(spec).index("download_if_missing")] = value
    path = tmp_path / f"depthcrafter_download_{'on' if value else 'off'}.json"
    path.write_text(json.dumps(graph))
    return path


def ui_run(server_url, workflows, report):
    command = [sys.executable, str(COMFYH), "--home", HARNESS_HOME, "ui-run", "--url", server_url,
               "--timeout", "600", "--report", str(report)]
    for workflow in workflows:
        command += ["--workflow", str(workflow)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900)
    return run, json.loads(report.read_text())["workflows"]


def errors_of(workflow_record) -> str:
    prompt = workflow_record.get("prompt") or {}
    return " ".join(error.get("exception_message", "") for error in prompt.get("execution_errors", []))


def test_loader_downloads_on_request_in_real_comfyui(repos, pack, tmp_path):  # noqa: F811 (the fixture)
    sys.path.insert(0, str(COMFYH.parent))
    from comfyh_lib.server import ComfyServer

    harness = json.loads((Path(HARNESS_HOME) / "harness-env.json").read_text())
    hf_home = tmp_path / "hf"
    with HubStandIn(repos) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0",
               "HF_TOKEN": "", "HUGGING_FACE_HUB_TOKEN": ""}
        server = ComfyServer(harness["comfy_dir"], harness["python"], packs=[str(ROOT)],
                             pack_names=["stereocrafter-3d"], run_root=os.path.join(HARNESS_HOME, "runs"), env=env)
        server.prepare()
        make_video(Path(server.run_dir) / "input" / "input_video.mp4", frames=FRAMES, width=WIDTH, height=HEIGHT,
                   fps=Fraction(24))
        server.start(timeout=300)
        try:
            models = Path(server.run_dir) / "models" / "stereocrafter"
            off, on = workflow_with_switch(tmp_path, pack, False), workflow_with_switch(tmp_path, pack, True)
            run, (switched_off, no_token) = ui_run(server.url, [off, on], tmp_path / "refused.json")
            assert run.returncode == 1, run.stdout[-3000:]
            assert "Turn on download_if_missing in this loader" in errors_of(switched_off)
            assert f"({SVD_REPO}) is a gated repository and no Hugging Face token was given" in errors_of(no_token)
            assert "3) run the workflow again" in errors_of(no_token)
            assert hub.downloads() == [] and not any(models.iterdir())

            hf_home.mkdir(exist_ok=True)
            (hf_home / "token").write_text(TOKEN)  # what `hf auth login` stores; no restart needed
            run, (downloaded,) = ui_run(server.url, [on], tmp_path / "downloaded.json")
            assert run.returncode == 0, run.stdout[-3000:] + server.read_log()[-3000:]
            assert not downloaded["widget_issues"] and not downloaded["missing_node_types"]
            for kind in (model_files.SVD, model_files.DEPTHCRAFTER):
                assert model_files.folder_problem(models / model_files.FOLDER_NAMES[kind], kind) is None
            assert not (models / "StereoCrafter").exists()
            assert not [r.path for r in hub.requests if r.path.endswith(UNUSED)]
            assert "downloading into" in server.read_log()
            saved = sorted((Path(server.run_dir) / "output" / "depth").glob("*.mp4"))
            assert [path.name.split("_0")[0] for path in saved] == ["depth", "depth_inferno"]
            assert describe(saved[0])["frames"] == FRAMES
        finally:
            server.stop()
