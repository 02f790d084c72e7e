"""Runs as people start them: two at once on one output, a killed one, a full disk, --quiet."""

import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction

import numpy as np
import pytest
from conftest import ROOT

from stereo_core import cli
from stereo_core.engine.store import WorkStore
from stereo_core.video_io import is_complete_video
from synthetic_video import make_video
from test_cli import FAST, ONE_THREAD, decoded, grey_depth

HOLD_LOCK = """
import sys, time
sys.path.insert(0, sys.argv[1])
from stereo_core.engine.store import WorkStore
with WorkStore(sys.argv[2]).claim():
    print("holding", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def source(tmp_path):
    return make_video(tmp_path / "clip.mp4", frames=10, width=96, height=64, fps=Fraction(24))


def quick(source, output, *extra):
    """A fast conversion from a depth video (no models)."""
    depth = output.parent / "depth.mp4"
    if not depth.exists():
        grey_depth(depth)
    return [source, "-o", output, "--depth-video", depth, "--no-inpaint", "--segment-frames", "3", "--quiet",
            *extra]


def run(*argv):
    return cli.main([str(a) for a in argv])


# --- one run per output ---------------------------------------------------------------------------


def test_two_runs_started_at_once_on_one_output_leave_one_complete_file(source, tmp_path, models_dir):
    output = tmp_path / "clip_sbs.mp4"
    command = [sys.executable, "-m", "stereo_core", str(source), "-o", str(output), "--models", str(models_dir),
               *FAST]
    runs = [subprocess.Popen(command, cwd=ROOT, env=ONE_THREAD, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    results = [(process.wait(timeout=600), *process.communicate()) for process in runs]
    for code, out, err in results:
        assert "Traceback" not in err and code in (0, 2), err
    refused = [err for code, _, err in results if code == 2]
    for err in refused:  # the other one was still converting: one line that names it and says what to do
        assert len(err.strip().splitlines()) == 1, err
        pids = {str(process.pid) for process in runs}
        assert "Another run (process " in err and any(pid in err for pid in pids) and "--wait" in err, err
    assert is_complete_video(output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip_sbs.mp4"]


def test_a_second_run_stops_at_once_naming_the_first_or_waits_for_it(source, tmp_path, capsys):
    output = tmp_path / "out.mp4"
    argv = quick(source, output)
    store = WorkStore(tmp_path / ".out.work")
    with store.claim():
        started = time.monotonic()
        assert run(*argv) == 2
        assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"process {os.getpid()}" in err and f"kill {os.getpid()}" in err, err
    assert not output.exists()

    # With --wait it starts when the other run ends.
    holding, waited = threading.Event(), []

    def other_run():
        with store.claim():
            holding.set()
            time.sleep(1.5)

    thread = threading.Thread(target=other_run)
    thread.start()
    holding.wait()
    started = time.monotonic()
    assert run(*argv, "--wait") == 0
    waited.append(time.monotonic() - started)
    thread.join()
    assert waited[0] > 1.0 and is_complete_video(output)


def test_runs_on_different_outputs_do_not_wait_for_each_other(source, tmp_path):
    with WorkStore(tmp_path / ".first.work").claim():
        assert run(*quick(source, tmp_path / "second.mp4")) == 0


def test_a_killed_runs_lock_does_not_block_the_next(source, tmp_path):
    output = tmp_path / "out.mp4"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(ROOT), str(tmp_path / ".out.work")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        holder.send_signal(signal.SIGKILL)
    finally:
        holder.wait()
    assert (tmp_path / ".out.work" / ".lock").exists()  # the file stays; the lock went with the process
    assert run(*quick(source, output)) == 0
    assert is_complete_video(output)
