"""Compute per frame of each depth model at real size, counted on the meta device (no weights, no memory).

    .venv/bin/python bench/bench_depth_compute.py                  # a 1920x1080 frame, the defaults
    .venv/bin/python bench/bench_depth_compute.py --width 1280 --height 720

torch.utils.flop_counter counts the matrix products and convolutions (2 FLOPs per multiply-add) of:
- DepthCrafter (--depth-model depthcrafter): the SVD-shaped UNet (diffusers' UNetSpatioTemporalConditionModel
  defaults are SVD's, DepthCrafter keeps them) over one window at the working size (max_res 1024), times
  the steps, times 2 with guidance, divided by the window's new frames (window - overlap, the steady
  state of a long clip); plus, per frame, the CLIP ViT-H/14 image encoder at 224 and the VAE's encoder
  and temporal decoder at the working size (the engine decodes twice: its statistics pass and the warp's
  read, counted here once, as the reference does);
- Video Depth Anything (video_depth_anything.flops_per_frame): one 32-frame window over its 22 new frames;
- Depth Anything V2 (depth_anything_v2.flops_per_frame): one frame.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stereo_core import depth_anything_v2 as dav2  # noqa: E402
from stereo_core import video_depth_anything as vda  # noqa: E402
from stereo_core.depthcrafter import DepthCrafterSettings, working_size  # noqa: E402

LATENT_FACTOR = 8  # the SVD VAE's downscale
# SVD img2vid-xt's vae/config.json (the class's defaults are a one-level toy); its UNet is the class's defaults.
SVD_VAE = dict(down_block_types=("DownEncoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
               layers_per_block=2, latent_channels=4)


def counted(run) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), torch.device("meta"):  # tensors made inside the forward too
        run()
    return int(counter.get_total_flops())


def depthcrafter_parts(height: int, width: int, settings: DepthCrafterSettings) -> dict[str, float]:
    """FLOPs per frame of each DepthCrafter part at `settings` for a height x width frame."""
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    rows, cols = working_size(height, width, settings.max_res)
    latent = (rows // LATENT_FACTOR, cols // LATENT_FACTOR)
    frames = settings.window
    with torch.device("meta"):
        # .to: a few parameters (the temporal mix factors) are made with torch.Tensor(), which ignores the
        # device context.
        unet = UNetSpatioTemporalConditionModel().eval().to("meta")
        vae = AutoencoderKLTemporalDecoder(**SVD_VAE).eval().to("meta")
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, image_size=224,
            patch_size=14, projection_dim=1024, hidden_act="gelu")).eval()
        window = torch.empty(1, frames, 8, *latent)
        embeddings = torch.empty(1, frames, 1024)
        time_ids = torch.empty(1, 3)
        picture = torch.empty(1, 3, rows, cols)
        latents = torch.empty(1, 4, *latent)
        crop = torch.empty(1, 3, 224, 224)
    passes = 1 if settings.guidance == 1.0 else 2
    window_flops = counted(lambda: unet(window, torch.tensor(1.0, device="meta"), encoder_hidden_states=embeddings,
                                        added_time_ids=time_ids))
    return {
        "UNet": window_flops * settings.steps * passes / (settings.window - settings.overlap),
        "VAE encoder": counted(lambda: vae.encode(picture)),
        "VAE decoder": counted(lambda: vae.decode(latents, num_frames=1)),
        "CLIP": counted(lambda: clip(pixel_values=crop)),
    }


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
    parts = depthcrafter_parts(height, width, settings)
    rows, cols = working_size(height, width, settings.max_res)
    detail = ", ".join(f"{name} {flops / 1e12:.3f}" for name, flops in parts.items())
    print(f"  depthcrafter           {sum(parts.values()) / 1e12:8.3f} TFLOP  (at {cols}x{rows}, "
          f"{settings.steps} steps, guidance {settings.guidance}, window {settings.window} over {settings.overlap}: "
          f"{detail})")
    rows, cols = vda.model_input_size(height, width, args.input_size)
    for encoder, size in zip(vda.ENCODERS, ("small", "base", "large")):
        flops = vda.flops_per_frame(encoder, height, width, args.input_size)
        print(f"  video-depth-anything {size:<5} {flops / 1e12:8.3f} TFLOP  (at {cols}x{rows})")
    rows, cols = dav2.model_input_size(height, width, args.input_size)
    for size in ("small", "base", "large"):
        flops = dav2.flops_per_frame(size, height, width, args.input_size)
        print(f"  depth-anything-v2 {size:<8} {flops / 1e12:8.3f} TFLOP  (at {cols}x{rows})")


if __name__ == "__main__":
    main()
