"""Compute per frame of each depth model (--depth-model) at real size, counted on the meta device (no weights,
no memory), for the README's table beside DepthCrafter's.

    .venv/bin/python bench/bench_depth_compute.py                  # a 1920x1080 frame, the defaults
    .venv/bin/python bench/bench_depth_compute.py --width 1280 --height 720

torch.utils.flop_counter counts the matrix products and convolutions (2 FLOPs per multiply-add):
- DepthCrafter: bench_compute.depthcrafter (its per-frame-conditioned UNet over a window, steps and guidance
  passes per new frame of a long clip, CLIP, VAE encoding and decoding; stereo_core.compute);
- Video Depth Anything: video_depth_anything.flops_per_frame (one 32-frame window over its 22 new frames);
- Depth Anything V2: depth_anything_v2.flops_per_frame (one frame).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_compute import depthcrafter  # noqa: E402

from stereo_core import depth_anything_v2 as dav2  # noqa: E402
from stereo_core import model_files  # noqa: E402
from stereo_core import video_depth_anything as vda  # noqa: E402
from stereo_core.depthcrafter import DepthCrafterSettings, working_size  # noqa: E402

ENCODERS = dict(zip(model_files.MODEL_SIZES, ("vits", "vitb", "vitl")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--input-size", type=int, default=dav2.DEFAULT_INPUT_SIZE,
                        help="Video Depth Anything's and Depth Anything V2's working size (--depth-input-size).")
    args = parser.parse_args()
    height, width = args.height, args.width
    settings = DepthCrafterSettings()
    print(f"compute per {width}x{height} frame (TFLOP = 1e12 floating-point operations)")
    parts = depthcrafter(height, width, settings)
    rows, cols = working_size(height, width, settings.max_res)
    detail = ", ".join(f"{name} {flops / 1e12:.1f}" for name, flops in parts.items())
    print(f"  depthcrafter               {sum(parts.values()) / 1e12:8.3f} TFLOP  (at {cols}x{rows}, the defaults: "
          f"{detail})")
    rows, cols = vda.model_input_size(height, width, args.input_size)
    for size, encoder in ENCODERS.items():
        flops = vda.flops_per_frame(encoder, height, width, args.input_size)
        print(f"  video-depth-anything {size:<5} {flops / 1e12:8.3f} TFLOP  (at {cols}x{rows})")
    rows, cols = dav2.model_input_size(height, width, args.input_size)
    for size in model_files.MODEL_SIZES:
        flops = dav2.flops_per_frame(size, height, width, args.input_size)
        print(f"  depth-anything-v2 {size:<8} {flops / 1e12:8.3f} TFLOP  (at {cols}x{rows})")


if __name__ == "__main__":
    main()
