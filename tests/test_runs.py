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
from stereo_core.disparity import DisparitySettings
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

    # What the other run finished while this one waited is kept, not made again.
    written = output.stat().st_mtime_ns
    holding.clear()
    thread = threading.Thread(target=other_run)
    thread.start()
    holding.wait()
    assert run(*argv, "--wait", "--overwrite") == 0
    thread.join()
    assert output.stat().st_mtime_ns == written


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


# --- a full disk and other OS errors ---------------------------------------------------------------


def test_a_full_disk_mid_run_is_one_line_and_the_same_command_then_finishes_the_identical_video(
        source, tmp_path, capsys, monkeypatch):
    import errno

    import av

    from stereo_core.video_io import SegmentWriter

    reference = tmp_path / "ref" / "out.mp4"
    reference.parent.mkdir()
    assert run(*quick(source, reference)) == 0
    output = tmp_path / "out.mp4"
    argv = quick(source, output)
    original, pieces = SegmentWriter.write, []

    def disk_fills_up(self, pictures, times):
        pieces.append(self.path)
        if len(set(pieces)) == 2:  # the first piece finished, the second cannot be written
            raise av.error.OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self._partial))
        original(self, pictures, times)

    monkeypatch.setattr(SegmentWriter, "write", disk_fills_up)
    capsys.readouterr()
    assert run(*argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert "the disk is full" in err and "encode-" in err and "run the same conversion again" in err, err
    assert not output.exists()
    assert len(list((tmp_path / ".out.work").glob("encode-*/stereo-*.mp4"))) == 1  # the finished piece stays

    monkeypatch.setattr(SegmentWriter, "write", original)  # space freed
    assert run(*argv) == 0
    ours, expected = decoded(output), decoded(reference)
    assert len(ours) == len(expected) == 10 and all(np.array_equal(a, b) for a, b in zip(ours, expected))


@pytest.mark.parametrize("place, cause", [
    ("/proc/stereo-test/out.mp4", "'/proc' is a system filesystem"),
    ("{file}/sub/out.mp4", "'{file}' is a file, not a folder"),
    ("{file}/out.mp4", "'{file}' is a file, not a folder"),
])
def test_an_impossible_output_place_gives_the_right_reason(place, cause, source, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code = run(source, "-o", place.format(file=blocker), "--depth-video", grey_depth(tmp_path / "depth.mp4"),
               "--no-inpaint", "--quiet")
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert cause.format(file=blocker) in err, err


@pytest.mark.parametrize("code, cause", [(13, "permission denied"), (30, "the filesystem is read-only"),
                                         (28, "the disk is full")])
def test_os_errors_name_their_cause(code, cause, tmp_path):
    from stereo_core.files import os_error_message

    message = os_error_message(OSError(code, os.strerror(code), str(tmp_path / "x.mp4")))
    assert message.startswith(f"Cannot write '{tmp_path / 'x.mp4'}': {cause}")
    assert "run the same conversion again" in message


# --- what a run prints ------------------------------------------------------------------------------


def test_quiet_prints_nothing_but_errors(source, tmp_path, models_dir):
    command = [sys.executable, "-m", "stereo_core", str(source), "-o", str(tmp_path / "out.mp4"), "--models",
               str(models_dir), *FAST, "--max-frames", "6"]
    assert "--quiet" in command
    done = subprocess.run(command, cwd=ROOT, env=ONE_THREAD, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stderr  # weights loaded, no bars
    assert is_complete_video(tmp_path / "out.mp4")


def test_resume_lines_print_above_the_progress_bar(source, tmp_path, models_dir, monkeypatch):
    from stereo_core.engine.store import StageStore

    output = tmp_path / "out.mp4"
    argv = [str(a) for a in (source, "-o", output, "--models", models_dir, "--segment-frames", "4", *FAST,
                             "--frames-chunk", "4", "--overlap", "1")]  # three chunks
    original = StageStore.save_tensors

    def stopped(self, name, *args, **kwargs):
        if name == "chunk-000002.safetensors":  # inpainting stops after two chunks
            raise KeyboardInterrupt
        original(self, name, *args, **kwargs)

    monkeypatch.setattr(StageStore, "save_tensors", stopped)
    assert run(*argv) == 130
    monkeypatch.undo()
    done = subprocess.run([sys.executable, "-m", "stereo_core", *[a for a in argv if a != "--quiet"]], cwd=ROOT,
                          env=ONE_THREAD, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    resumed = [line for line in done.stderr.split("\n") if "Resuming" in line]
    assert any("inpainting continues" in line for line in resumed), done.stderr
    for line in resumed:  # what shows on the terminal: the text after the last carriage return
        assert line.rsplit("\r", 1)[-1].startswith("Resuming: "), repr(line)


def test_an_output_name_without_extension_is_refused(source, tmp_path, capsys):
    argv = [source, "--depth-video", grey_depth(tmp_path / "depth.mp4"), "--no-inpaint", "--quiet"]
    assert run(*argv, "-o", tmp_path / "name") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "name' has no extension" in err and ".mp4" in err, err
    assert not (tmp_path / "name").exists()
    (tmp_path / "folder").mkdir()  # an existing folder is a place to write into
    assert run(*argv, "-o", tmp_path / "folder") == 0
    assert is_complete_video(tmp_path / "folder" / "clip_sbs.mp4")


# --- the default strength ---------------------------------------------------------------------------


@pytest.mark.parametrize("width, pixels", [(320, 6.25), (1024, 20.0), (1920, 37.5), (3840, 75.0)])
def test_the_default_strength_is_the_references_look_at_every_size(width, pixels, nodes):
    """The reference's 20 px at its working width (1024), scaled to the output's width; explicit values keep
    their unit."""
    args = cli.build_parser().parse_args(["clip.mp4"])
    assert cli.settings_of(args).disparity.pixels(width) == pytest.approx(pixels)
    for node in ("SC3D_ForwardWarpStereo", "SC3D_StereoConvertVideo", "SC3D_StereoComfortCheck"):
        required = nodes[node].INPUT_TYPES()["required"]
        strength = DisparitySettings(max_disp=required["max_disp"][1]["default"],
                                     unit=required["disp_unit"][1]["default"])
        assert strength.pixels(width) == pytest.approx(pixels), node
    explicit = cli.build_parser().parse_args(["clip.mp4", "--max-disp", "20", "--disp-unit", "pixels"])
    assert cli.settings_of(explicit).disparity.pixels(width) == 20.0


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only, where mounting is allowed), unmounted afterwards."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and permission to mount a tmpfs")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.mark.parametrize("room", [0.0, 0.5, 1.3])  # in the depth stage, among the pieces, at the join
def test_a_really_full_disk_is_one_line_and_freeing_space_lets_the_same_command_finish(room, source, tmp_path,
                                                                                       capsys, small_disk):
    reference = tmp_path / "ref" / "out.mp4"
    reference.parent.mkdir()
    assert run(*quick(source, reference)) == 0
    argv = quick(source, small_disk / "out.mp4")[:1] + ["-o", small_disk / "out.mp4",
                                                        "--depth-video", reference.parent / "depth.mp4",
                                                        "--no-inpaint", "--segment-frames", "3", "--quiet"]
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * (free - int(room * reference.stat().st_size)))  # room for part of the work
    capsys.readouterr()
    assert run(*argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and "the disk is full" in err, err
    assert not (small_disk / "out.mp4").exists()
    filler.unlink()
    assert run(*argv) == 0
    ours, expected = decoded(small_disk / "out.mp4"), decoded(reference)
    assert len(ours) == len(expected) == 10 and all(np.array_equal(a, b) for a, b in zip(ours, expected))
