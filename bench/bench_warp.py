"""Warp throughput: this pack's forward_warp next to a straightforward vectorised
transcription of the reference (bench/reference_warp.py), measured alternately in one run.

    .venv/bin/python bench/bench_warp.py [--frames 8] [--rounds 5]

Prints frames/s for both at 1024x576 on the CPU, the speed ratio, and the largest
difference away from the border (where the reference's border rule differs by
design). Where CUDA is available, also frames/s at 1920x1080 on the GPU.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_warp import reference_forward_warp  # noqa: E402
from stereo_core.warp import forward_warp  # noqa: E402


def scene(frames, height, width, device):
    """Random colours over a blocky depth map: smooth areas, edges, collisions, holes."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(frames, height, width, 3, generator=generator)
    depth = torch.rand(frames, 1, height // 32, width // 32, generator=generator)
    depth = torch.nn.functional.interpolate(depth, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    disparity = (depth * 2 - 1) * 20.0
    return image.to(device), disparity.to(device)


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def compare(frames, height, width, rounds, device):
    image, disparity = scene(frames, height, width, device)
    planar_image = image.permute(0, 3, 1, 2).contiguous()
    planar_disp = disparity.unsqueeze(1)
    ours_times, ref_times = [], []
    ours = ref = None
    for _ in range(rounds + 1):  # first round warms up, alternate to share machine noise fairly
        t, ours = timed(lambda: forward_warp(image, disparity), device)
        ours_times.append(t)
        t, ref = timed(lambda: reference_forward_warp(planar_image, planar_disp), device)
        ref_times.append(t)
    ours_fps = frames / statistics.median(ours_times[1:])
    ref_fps = frames / statistics.median(ref_times[1:])
    inner = (slice(None), slice(0, -1), slice(1, -1))
    colour_diff = (ours[0].permute(0, 3, 1, 2) - ref[0])[:, :, :-1, 1:-1].abs().max().item()
    mask_diff = (ours[1] - ref[1][:, 0])[inner].abs().max().item()
    return ours_fps, ref_fps, colour_diff, mask_diff


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    cpu = torch.device("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {args.frames} frames per call, "
          f"median of {args.rounds} alternating rounds")
    ours, ref, colour_diff, mask_diff = compare(args.frames, 576, 1024, args.rounds, cpu)
    print(f"CPU 1024x576: ours {ours:.1f} frames/s, straightforward reference {ref:.1f} frames/s, "
          f"speed-up {ours / ref:.2f}x")
    print(f"  max difference away from the border: colour {colour_diff:.2e}, occlusion {mask_diff:.2e}")
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        ours, ref, colour_diff, mask_diff = compare(args.frames, 1080, 1920, args.rounds, gpu)
        print(f"GPU ({torch.cuda.get_device_name()}) 1920x1080: ours {ours:.1f} frames/s, "
              f"straightforward reference {ref:.1f} frames/s; max diff colour {colour_diff:.2e}, "
              f"occlusion {mask_diff:.2e}")
    else:
        print("no CUDA device here: GPU figures not measured")


if __name__ == "__main__":
    main()
