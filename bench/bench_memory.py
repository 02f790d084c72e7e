"""Peak memory of a conversion against clip length: it must stay flat however long the video.

Runs the command line (the streaming engine) in a subprocess per case and samples the resident
memory of its whole process tree (psutil) every 20 ms; prints the peak per case and the ratio of
the longer clip to the shorter one.

    .venv/bin/python bench/bench_memory.py                   # both cases below
    .venv/bin/python bench/bench_memory.py --only geometry   # 1280x720, 48 and 480 frames, given depth
    .venv/bin/python bench/bench_memory.py --only models     # 256x144, 48 and 240 frames, tiny models
    .venv/bin/python bench/bench_memory.py --only vda        # the same with Video Depth Anything, 48 and 480

Goals (issue 14): geometry path within 1.25x and both under 1.5 GiB; full pipeline within 1.25x.
Issue 23: the full pipeline with Video Depth Anything (tiny random weights, its real working size 518)
within 1.25x from 48 to 480 frames.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def write_clip(path: Path, frames: int, width: int, height: int, depth: bool = False) -> Path:
    """A synthetic clip written frame by frame (never held whole): moving shapes, or grey depth."""
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for index in range(frames):
            phase = index / 24
            if depth:
                value = 0.3 + 0.4 * y + 0.3 * (np.hypot(x - 0.5 - 0.2 * np.sin(phase), y - 0.5) < 0.2)
                picture = np.repeat((value * 255).astype(np.uint8)[..., None], 3, axis=2)
            else:
                picture = np.stack([np.broadcast_to(x, (height, width)) * 255,
                                    np.broadcast_to(y, (height, width)) * 255,
                                    127 + 100 * np.sin(10 * x + phase) * np.cos(8 * y)], axis=-1)
                picture = np.clip(picture, 0, 255).astype(np.uint8)
            output.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")))
        output.mux(stream.encode(None))
    return path


def peak_rss(command: list[str], env: dict | None = None) -> tuple[int, float]:
    """Peak resident memory (bytes) of a command's whole process tree, and its run time."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.02)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read().decode()}")
    return peak, time.perf_counter() - started


def run_case(name: str, lengths: tuple[int, int], make, command, env: dict) -> None:
    figures = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for frames in lengths:
            inputs = make(folder, frames)
            peak, seconds = peak_rss(command(folder, inputs, frames), env)
            figures.append(peak)
            print(f"{name}: {frames:4d} frames  peak RSS {peak / 2**20:7.0f} MiB  ({seconds:6.1f} s, "
                  f"{frames / seconds:5.1f} frames/s)", flush=True)
    print(f"{name}: longer / shorter = {figures[1] / figures[0]:.3f}  (goal <= 1.25)\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("geometry", "models", "vda"))
    parser.add_argument("--threads", type=int, default=2, help="torch/numba threads of the converting process")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "NUMBA_NUM_THREADS": str(args.threads)}
    cli = [sys.executable, "-m", "stereo_core"]
    print(f"python {sys.version.split()[0]}, {psutil.cpu_count()} CPUs, {args.threads} threads\n", flush=True)

    if args.only in (None, "geometry"):
        def geometry_inputs(folder, frames):
            return (write_clip(folder / f"clip{frames}.mp4", frames, 1280, 720),
                    write_clip(folder / f"depth{frames}.mp4", frames, 1280, 720, depth=True))

        def geometry_command(folder, inputs, frames):
            return [*cli, str(inputs[0]), "-o", str(folder / f"out{frames}.mp4"), "--depth-video", str(inputs[1]),
                    "--no-inpaint", "--quiet"]

        run_case("geometry 1280x720 (depth video, no inpainting)", (48, 480), geometry_inputs, geometry_command, env)

    from tiny_models import build_model_tree

    def model_inputs(folder, frames):
        if not (folder / "models").is_dir():
            build_model_tree(folder / "models")
        return (write_clip(folder / f"clip{frames}.mp4", frames, 256, 144),)

    def model_command(folder, inputs, frames, *depth):
        return [*cli, str(inputs[0]), "-o", str(folder / f"out{frames}.mp4"), "--models", str(folder / "models"),
                "--max-res", "256", "--depth-steps", "2", "--steps", "2", "--anaglyph", "--save-depth", "--quiet",
                *depth]

    if args.only in (None, "models"):
        run_case("full pipeline 256x144 (tiny models)", (48, 240), model_inputs, model_command, env)

    if args.only in (None, "vda"):
        def vda_command(folder, inputs, frames):
            return model_command(folder, inputs, frames, "--depth-model", "video-depth-anything")

        run_case("full pipeline 256x144, Video Depth Anything (tiny models)", (48, 480), model_inputs, vda_command,
                 env)


if __name__ == "__main__":
    main()
