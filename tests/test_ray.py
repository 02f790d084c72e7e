"""Scenes on Ray: a local session bound to loopback only, the same video as one process, and a worker
killed mid-scene whose scene is finished by another worker to the identical video."""

import json
import os
import signal
import subprocess
import time
from functools import partial

import numpy as np
import pytest
from conftest import ROOT
from test_cli import ONE_THREAD, decoded
from test_scenes import scenes_command, scenes_reference

from stereo_core import cli
from stereo_core.engine import ConversionJob, Reporter
from stereo_core.engine.scenes import SceneSettings, convert_scenes

pytest.importorskip("ray")

from stereo_core.engine.distributed import LOOPBACK, RayRunner, RaySession, WorkerSpec  # noqa: E402


def test_a_local_session_is_loopback_only_and_gives_the_one_process_result(tmp_path_factory, tmp_path, model_tree):
    source, _ = scenes_reference(tmp_path_factory, model_tree)
    args = cli.build_parser().parse_args([str(source), "--models", str(model_tree["svd"].parent), "--device", "cpu",
                                          "--segment-frames", "4", "--max-frames", "24", *cli_fast()])
    settings = cli.settings_of(args)
    scenes = SceneSettings(part_frames=12, part_overlap=3)  # the first scene (16 frames) in two parts, then 8
    models = cli.CommandLineModels(args, cli.pick_device("cpu"))

    def job(name, keep_work=False):
        return ConversionJob(source=source, outputs={"stereo": tmp_path / f"{name}.mp4"}, work_dir=tmp_path / name,
                             max_frames=24, keep_work=keep_work)

    convert_scenes(job("local"), settings, scenes, models)

    session = RaySession()
    runner = RayRunner(session, WorkerSpec(models=partial(cli.CommandLineModels, args),
                                           device=partial(cli.pick_device, "cpu"), threads=1), workers=2)
    ray = session.open()
    try:
        nodes = ray.nodes()
        assert nodes[0]["NodeManagerAddress"] == LOOPBACK == "127.0.0.1"
        assert all(node["NodeManagerAddress"] == LOOPBACK for node in nodes)
        assert ray.get_runtime_context().gcs_address.startswith(f"{LOOPBACK}:")
        convert_scenes(job("ray", keep_work=True), settings, scenes, models, reporter=Reporter(), runner=runner)
        claims = [json.loads(path.read_text()) for path in (tmp_path / "ray").glob("**/worker.json")]
        assert len(claims) == 4, "the last task in each folder: 2 scenes (alignment, conversion), 2 parts (stereo)"
        workers = {ray.get(actor.ready.remote())["pid"] for actor in runner._idle}
        assert len(workers) == 2 and {claim["pid"] for claim in claims} <= workers
        assert os.getpid() not in workers, "the tasks ran in Ray's workers"
        # The next video of a batch goes to the same workers, their models already loaded.
        following = ConversionJob(source=source, outputs={"stereo": tmp_path / "next.mp4"},
                                  work_dir=tmp_path / "next", max_frames=8, keep_work=True)
        convert_scenes(following, settings, SceneSettings(), models, reporter=Reporter(), runner=runner)
        (claim,) = [json.loads(path.read_text()) for path in (tmp_path / "next").glob("**/worker.json")]
        assert claim["pid"] in workers
        assert {ray.get(actor.ready.remote())["pid"] for actor in runner._idle} == workers
    finally:
        runner.close()
    assert not ray.is_initialized()
    ours, expected = decoded(tmp_path / "ray.mp4"), decoded(tmp_path / "local.mp4")
    assert len(ours) == len(expected) == 24
    assert all(np.array_equal(a, b) for a, b in zip(ours, expected))


def cli_fast():
    from test_cli import FAST

    return [a for a in FAST if a != "--quiet"]


def test_a_killed_worker_s_scene_is_retried_and_the_video_is_the_same(tmp_path_factory, tmp_path, model_tree):
    """--split-scenes --ray on the 48-frame, three-scene clip: a worker is SIGKILLed in the middle of a scene;
    the scene continues on another worker from its last finished chunk, and the video equals one process's."""
    source, reference = scenes_reference(tmp_path_factory, model_tree)
    output = tmp_path / "ray.mp4"
    work = tmp_path / ".ray.work"
    command = scenes_command(source, output, model_tree["svd"].parent, "--ray", "--ray-workers", "2")
    process = subprocess.Popen(command, cwd=ROOT, env=ONE_THREAD, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + 600
        while not list(work.glob("scene-00001-*/right-*/chunk-000001.safetensors")):
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.005)
        (scene,) = work.glob("scene-00001-*")
        claim = json.loads((scene / "worker.json").read_text())
        assert claim["pid"] != process.pid, "scenes run in Ray workers, not the driver"
        os.kill(claim["pid"], signal.SIGKILL)
        assert not (scene / "done-convert.json").exists(), "the worker died in the middle of its scene"
        _, log = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, log[-3000:]
    assert f"node {LOOPBACK}" in log, "the run started its own Ray session, on loopback"
    assert "The worker on scene 2/3 died" in log
    assert "scene 2/3: Resuming" in log, "the retried scene continued from its last finished chunk"
    ours, expected = decoded(output), decoded(reference)
    assert len(ours) == len(expected) == 48
    assert all(np.array_equal(a, b) for a, b in zip(ours, expected))
    assert not work.exists()
