"""Memory of Stereo Convert Video against clip length: how much the ComfyUI process's RSS grows while it
converts a 1280x720 clip of 48 and of 480 frames (a given depth video, no inpainting), measured

- in a real ComfyUI server (the test harness, see ../shared/tools/comfy): core Load Video (clip and depth
  video) -> Stereo Convert Video -> core Save Video, the shipped long_video_bring_your_own_depth workflow
  queued through the HTTP API; the server's VmRSS is sampled from /proc while the prompt runs, and its
  VmHWM (peak) is reset just before queueing, so the peak belongs to this run;
- in-process: the node called directly in a fresh Python (stand-in VIDEO of the file), peak from VmHWM.

    COMFY_HARNESS_HOME=/work/comfy-harness COMFYH=/work/shared/tools/comfy/comfyh.py \
        .venv/bin/python bench/bench_convert_node.py \
        [--frames 48 480] [--size 1280x720] [--modes server in-process] [--inputs /tmp/sc3d-bench]

Growth = peak RSS during the run - RSS just before it. Goal (issue 15): the 480-frame growth at most
1.25 x the 48-frame growth + 150 MiB, and under 1.5 GiB. Every run's saved video is checked to have
every frame at 2560x720.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import av  # noqa: E402
import numpy as np  # noqa: E402

from synthetic_video import describe, make_video  # noqa: E402

MIB = 1024 * 1024
WORKFLOW = ROOT / "workflows" / "long_video_bring_your_own_depth.json"
NODE = "SC3D_StereoConvertVideo"


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid) -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs '5'); False where the kernel refuses."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class Sampler:
    """Samples a process's VmRSS every `interval` seconds in a thread; `peak` in KiB."""

    def __init__(self, pid, interval=0.05):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, status_kib(self.pid, "VmRSS"))
            except (OSError, KeyError):
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def make_depth_video(path: Path, frames: int, width: int, height: int, fps: Fraction) -> Path:
    """A grey depth video (a ramp, a near box that moves), encoded frame by frame (never held whole)."""
    ramp = np.linspace(40, 140, width, dtype=np.float32)[None, :].repeat(height, 0)
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            depth = ramp.copy()
            left = (width // 4 + 2 * index) % (width // 2)
            depth[height // 4: 3 * height // 4, left: left + width // 4] = 230
            picture = np.repeat(depth.astype(np.uint8)[..., None], 3, axis=2)
            output.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        output.mux(stream.encode(None))
    return path


def inputs_for(folder: Path, frames: int, width: int, height: int) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    video, depth = folder / f"clip_{frames}_{width}x{height}.mp4", folder / f"depth_{frames}_{width}x{height}.mp4"
    if not video.is_file():
        make_video(video, frames=frames, width=width, height=height, fps=Fraction(24))
    if not depth.is_file():
        make_depth_video(depth, frames, width, height, Fraction(24))
    return video, depth


def check_output(path: Path, frames: int, width: int, height: int) -> str:
    facts = describe(path)
    ok = (facts["frames"], facts["width"], facts["height"]) == (frames, 2 * width, height)
    return f"{facts['frames']} frames {facts['width']}x{facts['height']} {facts['audio']}" + ("" if ok else " WRONG")


# --- in a real ComfyUI server -----------------------------------------------------------------------


def run_server(frames, video, depth, width, height, harness_home):
    comfyh = Path(os.environ.get("COMFYH", ROOT.parent / "shared" / "tools" / "comfy" / "comfyh.py"))
    sys.path.insert(0, str(comfyh.parent))
    from comfyh_lib.server import ComfyServer
    from workflow_executor import api_prompt

    harness = json.loads((Path(harness_home) / "harness-env.json").read_text())
    server = ComfyServer(harness["comfy_dir"], harness["python"], packs=[str(ROOT)], pack_names=["stereocrafter-3d"],
                         run_root=os.path.join(harness_home, "runs"))
    server.prepare()
    for source, name in ((video, "input_video.mp4"), (depth, "input_depth.mp4")):
        os.symlink(source, Path(server.run_dir) / "input" / name)
    server.start(timeout=300)
    try:
        pid = server.proc.pid
        time.sleep(3)  # let start-up settle
        before = status_kib(pid, "VmRSS")
        reset = reset_peak(pid)
        prompt = api_prompt(WORKFLOW, {"SaveVideo": {"filename_prefix": "bench/sbs"}})
        start = time.time()
        with Sampler(pid) as sampler:
            queued = server.client.queue_prompt(prompt)
            entry = server.client.wait_history(queued["prompt_id"], timeout=3600, poll=0.5)
        seconds = time.time() - start
        peak = max(sampler.peak, status_kib(pid, "VmHWM") if reset else 0)
        if entry is None or entry["status"]["status_str"] != "success":
            raise RuntimeError(f"the prompt failed: {entry and entry['status']}\n{server.read_log()[-3000:]}")
        (saved,) = sorted((Path(server.run_dir) / "output" / "bench").glob("sbs_*.mp4"))
        checked = check_output(saved, frames, width, height)
        return {"before": before, "peak": peak, "seconds": seconds, "output": checked, "hwm_reset": reset}
    finally:
        server.stop()


# --- in-process --------------------------------------------------------------------------------------

IN_PROCESS = r"""
import json, os, sys, time
root, video, depth, out = sys.argv[1:5]
sys.path.insert(0, root); sys.path.insert(0, os.path.join(root, "tests"))
os.environ["STEREOCRAFTER_OUTPUT"] = os.path.join(out, "output")
os.environ["STEREOCRAFTER_TEMP"] = os.path.join(out, "temp")
from conftest import load_pack

def kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

pack = load_pack()
adapter = pack.nodes.comfy_adapter
cls = pack.NODE_CLASS_MAPPINGS["SC3D_StereoConvertVideo"]
values = {}
for name, spec in cls.INPUT_TYPES()["required"].items():
    options = spec[1] if len(spec) > 1 else {}
    if isinstance(spec[0], list):
        values[name] = options.get("default", spec[0][0])
    elif "default" in options:
        values[name] = options["default"]
before = kib("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
start = time.time()
result = cls().convert(adapter.FileVideo(video), depth_video=adapter.FileVideo(depth), **values)
print(json.dumps({"before": before, "peak": kib("VmHWM"), "seconds": time.time() - start,
                  "path": result["result"][1]}))
"""


def run_in_process(frames, video, depth, width, height):
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", IN_PROCESS, str(ROOT), str(video), str(depth), out],
                              capture_output=True, text=True, check=True)
        record = json.loads(done.stdout.strip().splitlines()[-1])
        record["output"] = check_output(Path(record.pop("path")), frames, width, height)
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[48, 480])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--modes", nargs="+", choices=("server", "in-process"), default=["server", "in-process"])
    parser.add_argument("--inputs", type=Path, default=Path(tempfile.gettempdir()) / "sc3d-bench",
                        help="Where the synthetic clips are made (and reused).")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    harness_home = os.environ.get("COMFY_HARNESS_HOME")
    if "server" in args.modes and not (harness_home and (Path(harness_home) / "harness-env.json").is_file()):
        print("no ComfyUI harness (set COMFY_HARNESS_HOME): the server mode is skipped")
        args.modes = [mode for mode in args.modes if mode != "server"]

    print(f"Stereo Convert Video, {width}x{height}, depth video, no inpainting; {os.cpu_count()} CPUs")
    for mode in args.modes:
        growth = {}
        for frames in args.frames:
            video, depth = inputs_for(args.inputs, frames, width, height)
            if mode == "server":
                record = run_server(frames, video.resolve(), depth.resolve(), width, height, harness_home)
            else:
                record = run_in_process(frames, video, depth, width, height)
            growth[frames] = (record["peak"] - record["before"]) * 1024 / MIB
            print(f"{mode:10s} {frames:5d} frames: RSS before {record['before'] / 1024:7.0f} MiB, peak "
                  f"{record['peak'] / 1024:7.0f} MiB, growth {growth[frames]:6.0f} MiB, {record['seconds']:6.1f} s "
                  f"({frames / record['seconds']:.1f} frames/s); saved: {record['output']}")
        if len(growth) >= 2:
            short, long = min(growth), max(growth)
            limit = min(1.25 * growth[short] + 150, 1536)
            verdict = "PASS" if growth[long] <= limit else "FAIL"
            print(f"{mode:10s} goal: growth({long}) <= min(1.25 x growth({short}) + 150 MiB, 1.5 GiB) = "
                  f"{limit:.0f} MiB: {growth[long]:.0f} MiB, {verdict}")


if __name__ == "__main__":
    main()
