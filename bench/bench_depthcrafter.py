"""DepthCrafter Depth: seconds per frame, peak memory and UNet evaluations per frame.

    .venv/bin/python bench/bench_depthcrafter.py [--frames 24 96] [--size 128x128]
    .venv/bin/python bench/bench_depthcrafter.py --real-size   # CUDA: real architecture, 1024x576

Default: the tiny random-weight models of the tests (real architectures, real folder
layout, loaded by the real loader), each clip length in its own process so its peak
memory is its own: peak host memory (VmHWM) above the loaded model, and on CUDA the
peak device memory. Next to our UNet evaluations per frame it prints the reference's
count for the same settings (its window loop and its `guidance > 1` rule).

--real-size builds the real SVD/DepthCrafter architectures with random weights (no
download) and times 1024x576 with a 70-frame window; meant for a CUDA GPU.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from stereo_core.depthcrafter import DepthCrafterSettings, estimate_depth  # noqa: E402


def reference_unet_calls(frames, window, overlap, steps, guidance):
    """The published pipeline's count: its while loop over windows, two passes when guidance > 1."""
    if frames <= window:
        window, overlap = frames, 0
    windows, start = 0, 0
    while start < frames - overlap:
        windows += 1
        start += window - overlap
    return windows * steps * (2 if guidance > 1 else 1)


def host_peak_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def real_size_model(device, dtype):
    """Real SVD-xt / DepthCrafter architectures with random weights (nothing downloaded)."""
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from stereo_core.depth_unet import PerFrameConditionedUNet
    from stereo_core.placement import Placement
    from stereo_core.video_diffusion import VideoDiffusionModel
    from tiny_models import CLIP_PREPROCESSOR_CONFIG, SVD_SCHEDULER_CONFIG

    unet = PerFrameConditionedUNet(in_channels=8).to(dtype)  # the defaults are SVD-xt's UNet
    vae = AutoencoderKLTemporalDecoder(down_block_types=("DownEncoderBlock2D",) * 4,
                                       block_out_channels=(128, 256, 512, 512), layers_per_block=2)
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=1280, intermediate_size=5120, projection_dim=1024, num_hidden_layers=32,
        num_attention_heads=16, image_size=224, patch_size=14, hidden_act="gelu")).to(dtype)
    return VideoDiffusionModel(
        kind="depthcrafter", unet=unet.eval(), vae=vae.eval(), image_encoder=clip.eval(),
        clip_mean=tuple(CLIP_PREPROCESSOR_CONFIG["image_mean"]), clip_std=tuple(CLIP_PREPROCESSOR_CONFIG["image_std"]),
        scheduler_config=SVD_SCHEDULER_CONFIG, dtype=dtype, placement=Placement(device=device, policy="offload"))


def child(args):
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    height, width = (int(v) for v in args.size.split("x"))
    if args.real_size:
        model = real_size_model(device, torch.float16 if device.type == "cuda" else torch.float32)
    else:
        from stereo_core.video_diffusion import load_video_diffusion

        model = load_video_diffusion("depthcrafter", Path(args.models) / "stable-video-diffusion-img2vid-xt-1-1",
                                     Path(args.models) / "DepthCrafter", dtype="fp32", device=device)
    settings = DepthCrafterSettings(window=args.window, overlap=args.overlap, steps=args.steps,
                                    guidance=args.guidance)
    video = torch.rand(args.frames, height, width, 3, generator=torch.Generator().manual_seed(0))
    loaded_mb = host_peak_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = estimate_depth(model, video, settings, seed=0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(json.dumps({
        "frames": args.frames, "seconds": seconds, "unet_calls": result.unet_calls,
        "reference_calls": reference_unet_calls(args.frames, args.window, args.overlap, args.steps, args.guidance),
        "host_peak_above_model_mb": host_peak_mb() - loaded_mb,
        "device_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
        "device": str(device), "working_size": result.working_size,
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=None)
    parser.add_argument("--size", default=None, help="HxW of the input clip")
    parser.add_argument("--window", type=int, default=None)
    parser.add_argument("--overlap", type=int, default=None)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--guidance", type=float, default=1.2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--real-size", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--models", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Tiny models: small windows so both clip lengths span several windows. Real size: the reference's.
    defaults = dict(frames=[70], size="576x1024", window=70, overlap=25) if args.real_size else \
        dict(frames=[24, 96], size="128x128", window=14, overlap=4)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.child:
        args.frames = args.frames[0]
        return child(args)

    with tempfile.TemporaryDirectory() as models:
        if not args.real_size:
            from tiny_models import build_model_tree

            build_model_tree(Path(models))
        print(f"settings: size {args.size}, window {args.window}, overlap {args.overlap}, steps {args.steps}, "
              f"guidance {args.guidance}, threads {args.threads}, "
              f"{'real-size random weights' if args.real_size else 'tiny random-weight models'}")
        print(f"{'frames':>6} {'s/frame':>8} {'host peak MB':>12} {'device peak MB':>14} "
              f"{'UNet evals/frame':>16} {'reference':>9}")
        for frames in args.frames:
            command = [sys.executable, __file__, "--child", "--models", models, "--frames", str(frames),
                       "--size", args.size, "--window", str(args.window), "--overlap", str(args.overlap),
                       "--steps", str(args.steps), "--guidance", str(args.guidance), "--threads", str(args.threads)]
            command += ["--real-size"] if args.real_size else []
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}  # freed blocks leave, so peaks are honest
            output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
            row = json.loads(output.strip().splitlines()[-1])
            device_peak = f"{row['device_peak_mb']:.0f}" if row["device_peak_mb"] is not None else "-"
            print(f"{frames:>6} {row['seconds'] / frames:>8.3f} {row['host_peak_above_model_mb']:>12.1f} "
                  f"{device_peak:>14} {row['unet_calls'] / frames:>16.3f} {row['reference_calls'] / frames:>9.3f}")


if __name__ == "__main__":
    main()
