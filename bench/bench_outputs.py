"""Throughput of the output stage's extra work, per frame: VR180 composition, the comfort
report's statistics, and tagging an MP4 with stereo metadata.

    .venv/bin/python bench/bench_outputs.py [--frames 8] [--size 1920x1080]

Prints ms per frame for compose_stereo(layout="vr180") with the default virtual screen (CPU,
and CUDA where available), for ComfortReport.update on full-size disparity maps, and the time
to tag a short H.264 file written by PyAV.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stereo_core.comfort import ComfortReport  # noqa: E402
from stereo_core.layouts import VirtualScreen, compose_stereo  # noqa: E402
from stereo_core.spatial_media import VR180, write_spatial_metadata  # noqa: E402
from stereo_core.video_io import write_video  # noqa: E402


def per_frame_ms(fn, frames, device, rounds=3):
    fn()  # warm-up (the sampling grid is cached after the first call)
    best = float("inf")
    for _ in range(rounds):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 1000 * best / frames


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", default="1920x1080")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    screen = VirtualScreen()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.frames} frames of {width}x{height}; "
          f"VR180 screen {screen.fov} deg at {screen.distance} m, {screen.eye_pixels(width)} px per eye")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        left = torch.rand(args.frames, height, width, 3, device=device)
        right = torch.rand(args.frames, height, width, 3, device=device)
        ms = per_frame_ms(lambda: compose_stereo(left, right, "vr180", screen=screen), args.frames, device)
        print(f"vr180 compose on {device.type}: {ms:.1f} ms/frame")
        disparity = torch.randn(args.frames, height, width, device=device) * 20
        report = ComfortReport(width)
        ms = per_frame_ms(lambda: report.update(disparity), args.frames, device)
        print(f"comfort statistics on {device.type}: {ms:.2f} ms/frame")
    with tempfile.TemporaryDirectory() as folder:
        clip = torch.rand(48, 540, 960, 3)
        path = write_video(Path(folder) / "clip.mp4", clip, 24)
        start = time.perf_counter()
        write_spatial_metadata(path, VR180)
        print(f"tagging a {path.stat().st_size / 1e6:.1f} MB MP4: {1000 * (time.perf_counter() - start):.1f} ms")


if __name__ == "__main__":
    main()
