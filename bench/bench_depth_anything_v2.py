"""Depth Anything V2: compute per frame at real size, counted, and (on CUDA) measured.

    .venv/bin/python bench/bench_depth_anything_v2.py                       # FLOPs, 1920x1080 at 518
    .venv/bin/python bench/bench_depth_anything_v2.py --size 3840x2160 --input-size 770
    .venv/bin/python bench/bench_depth_anything_v2.py --time                # CUDA: seconds per frame too

FLOPs are counted by torch.utils.flop_counter on the meta device (the real ViT-S/B/L configs, no
weights, no download; 2 FLOPs per multiply-add). --time builds each size with random weights on
the GPU and times the whole per-frame path (preprocessing, model, resize back, EMA normalisation)
through DepthAnythingV2Stream in --dtype, batch --batch.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stereo_core import depth_anything_v2 as dav2  # noqa: E402
from stereo_core.placement import Placement  # noqa: E402

SIZES = ("small", "base", "large")
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def timed(size: str, height: int, width: int, input_size: int, dtype: torch.dtype, batch: int, frames: int) -> float:
    """Seconds per frame through the stream on CUDA (random weights of the real architecture)."""
    from transformers import DepthAnythingForDepthEstimation

    device = torch.device("cuda")
    network = DepthAnythingForDepthEstimation(dav2.real_config(size)).to(device, dtype).eval()
    model = dav2.DepthAnythingV2Model(kind=dav2.SIZE_NAMES[size], network=network, preprocessing=dav2.Preprocessing(),
                                      dtype=dtype, placement=Placement(device=device, policy="keep"))
    clip = torch.randint(0, 256, (frames, height, width, 3), dtype=torch.uint8)
    stream = dav2.DepthAnythingV2Stream(model, height, width, input_size, batch_size=batch)
    stream.push(clip[:batch])  # warm-up: kernels, allocator
    torch.cuda.synchronize()
    start = time.perf_counter()
    done = stream.push(clip).shape[0] + stream.finish().shape[0]
    torch.cuda.synchronize()
    assert done == frames + batch
    return (time.perf_counter() - start) / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1920x1080", help="frame WIDTHxHEIGHT (default 1920x1080)")
    parser.add_argument("--input-size", type=int, default=dav2.DEFAULT_INPUT_SIZE)
    parser.add_argument("--time", action="store_true", help="also measure seconds per frame (CUDA)")
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp16")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=32)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    model_height, model_width = dav2.model_input_size(height, width, args.input_size)
    print(f"Depth Anything V2, {width}x{height} frames at input_size {args.input_size} "
          f"(model input {model_width}x{model_height})")
    for size in SIZES:
        flops = dav2.flops_per_frame(size, height, width, args.input_size)
        line = f"  {size:<6} {flops / 1e9:8.1f} GFLOP per frame"
        if args.time:
            if not torch.cuda.is_available():
                raise SystemExit("--time needs a CUDA GPU.")
            seconds = timed(size, height, width, args.input_size, DTYPES[args.dtype], args.batch, args.frames)
            line += (f"   {seconds * 1e3:7.1f} ms per frame ({args.dtype}, batch {args.batch}, "
                     f"{torch.cuda.get_device_name()}), {flops / seconds / 1e12:5.1f} TFLOP/s")
        print(line, flush=True)


if __name__ == "__main__":
    main()
