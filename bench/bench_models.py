"""DepthCrafter Depth and StereoCrafter inpainting: seconds per frame, peak memory, UNet evaluations per frame.

    .venv/bin/python bench/bench_models.py depth   [--frames 24 96] [--size 128x128]
    .venv/bin/python bench/bench_models.py inpaint [--frames 24 96] [--size 128x128] [--tiles 1]
    .venv/bin/python bench/bench_models.py depth --real-size            # CUDA: 1024x576, 70-frame window
    .venv/bin/python bench/bench_models.py inpaint --real-size --tiles 2 # CUDA: 1024x576, 23-frame chunks

Default: the tiny random-weight models of the tests (real architectures, real folder
layout, loaded by the real loader), each clip length in its own process so its peak
memory is its own: peak host memory (VmHWM) above the loaded model, and on CUDA the
peak device memory. UNet TFLOP/frame: the UNet calls made, priced at the real UNet's size
(stereo_core/compute.py), and TFLOP/s that count over the measured time (with --real-size on a
GPU: the efficiency bench_compute.py assumes). Next to our UNet evaluations per frame it prints the reference's
count for the same settings: DepthCrafter's window loop and `guidance > 1` rule;
StereoCrafter's chunk loop, which always runs the unconditional pass, once per tile.

--real-size builds the real SVD / DepthCrafter / StereoCrafter architectures with random
weights (no download) at 1024x576; meant for a CUDA GPU.
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
from stereo_core.inpainting import InpaintSettings, inpaint_clip  # noqa: E402
from stereo_core.model_files import DEPTHCRAFTER, STEREOCRAFTER  # noqa: E402

KINDS = {"depth": DEPTHCRAFTER, "inpaint": STEREOCRAFTER}
MODEL_FOLDERS = {DEPTHCRAFTER: "DepthCrafter", STEREOCRAFTER: "StereoCrafter"}


def reference_inpaint_unet_calls(frames, chunk, overlap, steps, tiles):
    """The published script: its chunk loop; every step is one batched cond+uncond UNet call (2 evaluations)."""
    chunks = 0
    for i in range(0, frames, chunk - overlap):
        if i + overlap >= frames:
            break
        chunks += 1
    return chunks * tiles * tiles * steps * 2


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


def real_size_model(kind, device, dtype):
    """Real SVD-xt / DepthCrafter / StereoCrafter architectures with random weights (nothing downloaded)."""
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from stereo_core.depth_unet import PerFrameConditionedUNet
    from stereo_core.placement import Placement
    from stereo_core.video_diffusion import VideoDiffusionModel
    from tiny_models import CLIP_PREPROCESSOR_CONFIG, SVD_SCHEDULER_CONFIG

    from diffusers import UNetSpatioTemporalConditionModel

    # The defaults are SVD-xt's UNet; DepthCrafter conditions it per frame, StereoCrafter adds a mask channel.
    unet = (PerFrameConditionedUNet(in_channels=8) if kind == DEPTHCRAFTER
            else UNetSpatioTemporalConditionModel(in_channels=9)).to(dtype)
    vae = AutoencoderKLTemporalDecoder(down_block_types=("DownEncoderBlock2D",) * 4,
                                       block_out_channels=(128, 256, 512, 512), layers_per_block=2)
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=1280, intermediate_size=5120, projection_dim=1024, num_hidden_layers=32,
        num_attention_heads=16, image_size=224, patch_size=14, hidden_act="gelu")).to(dtype)
    return VideoDiffusionModel(
        kind=kind, unet=unet.eval(), vae=vae.eval(), image_encoder=clip.eval(),
        clip_mean=tuple(CLIP_PREPROCESSOR_CONFIG["image_mean"]), clip_std=tuple(CLIP_PREPROCESSOR_CONFIG["image_std"]),
        scheduler_config=SVD_SCHEDULER_CONFIG, dtype=dtype, placement=Placement(device=device, policy="offload"))


def child(args):
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    height, width = (int(v) for v in args.size.split("x"))
    kind = KINDS[args.model]
    if args.real_size:
        model = real_size_model(kind, device, torch.float16 if device.type == "cuda" else torch.float32)
    else:
        from stereo_core.video_diffusion import load_video_diffusion

        model = load_video_diffusion(kind, Path(args.models) / "stable-video-diffusion-img2vid-xt-1-1",
                                     Path(args.models) / MODEL_FOLDERS[kind], dtype="fp32", device=device)
    video = torch.rand(args.frames, height, width, 3, generator=torch.Generator().manual_seed(0))
    shapes = []  # every UNet call's sample shape, priced at the real UNet's size afterwards
    model.unet.register_forward_pre_hook(lambda module, inputs: shapes.append(tuple(inputs[0].shape)))
    loaded_mb = host_peak_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start = time.perf_counter()
    if kind == DEPTHCRAFTER:
        settings = DepthCrafterSettings(window=args.window, overlap=args.overlap, steps=args.steps,
                                        guidance=args.guidance)
        calls = estimate_depth(model, video, settings, seed=0).unet_calls
        reference = reference_unet_calls(args.frames, args.window, args.overlap, args.steps, args.guidance)
    else:
        holes = torch.zeros(args.frames, height, width)
        holes[:, :, width // 3:width // 2] = 1
        settings = InpaintSettings(frames_chunk=args.window, overlap=args.overlap, steps=args.steps,
                                   max_guidance=args.guidance, min_guidance=args.guidance, tile_num=args.tiles)
        calls = inpaint_clip(model, video, holes, settings, seed=0).unet_calls
        reference = reference_inpaint_unet_calls(args.frames, args.window, args.overlap, args.steps, args.tiles)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    from stereo_core.compute import TERA, unet_call_flops

    counted = sum(unet_call_flops(shape, per_frame=kind == DEPTHCRAFTER) for shape in shapes) / TERA
    print(json.dumps({
        "unet_tflop": counted,
        "frames": args.frames, "seconds": seconds, "unet_calls": calls, "reference_calls": reference,
        "host_peak_above_model_mb": host_peak_mb() - loaded_mb,
        "device_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
        "device": str(device),
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(KINDS))
    parser.add_argument("--frames", type=int, nargs="+", default=None)
    parser.add_argument("--size", default=None, help="HxW of the input clip")
    parser.add_argument("--window", type=int, default=None, help="DepthCrafter window / inpainting frames_chunk")
    parser.add_argument("--overlap", type=int, default=None)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--tiles", type=int, default=1, help="inpainting tile_num")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--real-size", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--models", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Tiny models: small windows so both clip lengths span several windows. Real size: the reference's.
    if args.model == "depth":
        defaults = dict(frames=[70], size="576x1024", window=70, overlap=25) if args.real_size else \
            dict(frames=[24, 96], size="128x128", window=14, overlap=4)
        defaults["guidance"] = 1.2
    else:
        defaults = dict(frames=[23], size="576x1024", window=23, overlap=3) if args.real_size else \
            dict(frames=[24, 96], size="128x128", window=23, overlap=3)
        defaults["guidance"] = 1.01
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
        print(f"{args.model}: size {args.size}, window/chunk {args.window}, overlap {args.overlap}, "
              f"steps {args.steps}, guidance {args.guidance}, tiles {args.tiles}, threads {args.threads}, "
              f"{'real-size random weights' if args.real_size else 'tiny random-weight models'}")
        print(f"{'frames':>6} {'s/frame':>8} {'host peak MB':>12} {'device peak MB':>14} "
              f"{'UNet evals/frame':>16} {'reference':>9} {'UNet TFLOP/frame':>16} {'TFLOP/s':>8}")
        for frames in args.frames:
            command = [sys.executable, __file__, args.model, "--child", "--models", models, "--frames", str(frames),
                       "--size", args.size, "--window", str(args.window), "--overlap", str(args.overlap),
                       "--steps", str(args.steps), "--guidance", str(args.guidance), "--threads", str(args.threads),
                       "--tiles", str(args.tiles)]
            command += ["--real-size"] if args.real_size else []
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}  # freed blocks leave, so peaks are honest
            output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
            row = json.loads(output.strip().splitlines()[-1])
            device_peak = f"{row['device_peak_mb']:.0f}" if row["device_peak_mb"] is not None else "-"
            print(f"{frames:>6} {row['seconds'] / frames:>8.3f} {row['host_peak_above_model_mb']:>12.1f} "
                  f"{device_peak:>14} {row['unet_calls'] / frames:>16.3f} {row['reference_calls'] / frames:>9.3f} "
                  f"{row['unet_tflop'] / frames:>16.2f} {row['unet_tflop'] / row['seconds']:>8.2f}")


if __name__ == "__main__":
    main()
