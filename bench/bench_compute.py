"""The GPU work of a conversion, counted: TFLOP per output frame of every stage, and what that takes on a GPU.

    .venv/bin/python bench/bench_compute.py

For a 1080p and a 4K source, each preset (stereo_core/presets.py) and, for comparison, the reference's
settings with the inpainting at full frame (inpaint_max_res 0, what this pack did before) and with 2x2
tiles: the FLOPs of every model call the pipeline makes, counted on the real models' architectures
built on the meta device (stereo_core/compute.py; nothing is computed), per output frame of a long
clip (steady state: a DepthCrafter window of 70 frames every 45 frames, an inpainting chunk of 23 frames
every 20, so the overlaps are counted), with guidance > 1 counted as two UNet evaluations per step and
every tile counted at its own size. Every chunk is assumed to have holes (a chunk without any costs
nothing). Video Depth Anything's count (the Small model) comes from
stereo_core.video_depth_anything.flops_per_frame.

Seconds per frame = TFLOP / (the card's dense fp16 tensor peak x efficiency). The efficiency is
calibrated on DepthCrafter's published speed: 0.47 s per frame (465.84 ms) on an A100 at 1024x576
with its published settings (5 steps, guidance 1.0, 110-frame windows overlapping by 25).
"""

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stereo_core.compute import TERA, clip_flops, unet_flops, vae_decode_flops, vae_encode_flops  # noqa: E402
from stereo_core.depthcrafter import DepthCrafterSettings, working_size  # noqa: E402
from stereo_core.inpaint_size import inpaint_size  # noqa: E402
from stereo_core.inpainting import LATENT_FACTOR, LATENT_MULTIPLE, InpaintSettings, plan_tiles  # noqa: E402
from stereo_core.presets import PRESETS  # noqa: E402
from stereo_core.video_depth_anything import flops_per_frame  # noqa: E402

SOURCES = {"1080p": (1080, 1920), "4K": (2160, 3840)}
# Dense fp16/bf16 tensor peaks, TFLOP/s: A100 SXM, H100 SXM, RTX 4090 (fp16 with fp32 accumulation).
CARDS = {"A100": 312.0, "H100": 989.4, "RTX 4090": 165.2}
PUBLISHED = dict(seconds=0.46584, card="A100", size=(576, 1024),
                 settings=DepthCrafterSettings(steps=5, guidance=1.0, window=110, overlap=25))
GRID = LATENT_FACTOR * LATENT_MULTIPLE


def passes(guidance_is_one: bool) -> int:
    return 1 if guidance_is_one else 2


def depthcrafter(height: int, width: int, settings: DepthCrafterSettings) -> dict[str, float]:
    """FLOPs per output frame of DepthCrafter on a long clip: every frame's CLIP embedding, VAE encoding and
    decoding once; a window of `window` frames denoised every window - overlap frames."""
    h, w = working_size(height, width, settings.max_res)
    stride = settings.window - settings.overlap
    return {
        "CLIP": clip_flops(settings.encode_chunk) / settings.encode_chunk,
        "VAE enc": vae_encode_flops(settings.encode_chunk, h, w) / settings.encode_chunk,
        "UNet": settings.steps * passes(settings.guidance == 1.0)
        * unet_flops(8, settings.window, h // LATENT_FACTOR, w // LATENT_FACTOR, per_frame=True) / stride,
        "VAE dec": vae_decode_flops(settings.decode_chunk, h, w) / settings.decode_chunk,
    }


# The fast preset's Video Depth Anything: the Small model (the one whose weights are Apache-2.0).
DEPTH_ANYTHING_ENCODER = "vits"


def depth_anything(height: int, width: int) -> dict[str, float]:
    """FLOPs per output frame of Video Depth Anything."""
    return {"model": flops_per_frame(DEPTH_ANYTHING_ENCODER, height, width)}


def inpainting(height: int, width: int, settings: InpaintSettings) -> dict[str, float]:
    """FLOPs per output frame of the inpainting on a long clip: a chunk of frames_chunk frames every
    frames_chunk - overlap frames; per tile one CLIP embedding, the VAE encoding of the chunk's frames and
    the UNet; the whole latent frame decoded."""
    h, w = (-(-side // GRID) * GRID for side in inpaint_size(height, width, settings.inpaint_max_res))
    tiles = [plan_tiles(side // LATENT_FACTOR, settings.tile_num, settings.tile_overlap // LATENT_FACTOR)
             for side in (h, w)]
    tile_h, tile_w = (grid.size for grid in tiles)
    count = settings.tile_num ** 2
    frames, stride = settings.frames_chunk, settings.frames_chunk - settings.overlap
    guidance_one = settings.min_guidance == settings.max_guidance == 1.0
    return {
        "CLIP": count * clip_flops(1) / stride,
        "VAE enc": count * frames * vae_encode_flops(settings.encode_chunk, tile_h * LATENT_FACTOR,
                                                     tile_w * LATENT_FACTOR) / settings.encode_chunk / stride,
        "UNet": count * settings.steps * passes(guidance_one) * unet_flops(9, frames, tile_h, tile_w) / stride,
        "VAE dec": frames * vae_decode_flops(settings.decode_chunk, h, w) / settings.decode_chunk / stride,
    }


def preset_settings(name: str) -> tuple[str, InpaintSettings]:
    """The depth model and inpainting settings a preset gives (the rest: the defaults)."""
    values = PRESETS[name]
    inpaint = InpaintSettings(steps=values["inpaint_steps"], min_guidance=values["inpaint_guidance"],
                              max_guidance=values["inpaint_guidance"], inpaint_max_res=values["inpaint_max_res"])
    return str(values["depth_model"]), inpaint


def efficiency() -> float:
    height, width = PUBLISHED["size"]
    flops = sum(depthcrafter(height, width, PUBLISHED["settings"]).values())
    return flops / TERA / CARDS[PUBLISHED["card"]] / PUBLISHED["seconds"]


def depth_ratio() -> float:
    """Our DepthCrafter defaults' work over that of the published settings, at 1024x576."""
    height, width = PUBLISHED["size"]
    return (sum(depthcrafter(height, width, DepthCrafterSettings()).values())
            / sum(depthcrafter(height, width, PUBLISHED["settings"]).values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.parse_args()
    started = time.monotonic()
    share = efficiency()
    print(f"Efficiency: {share:.0%} of the dense fp16 peak (DepthCrafter's published {PUBLISHED['seconds']:.2f} s/frame "
          f"on an A100 at 1024x576, 5 steps, guidance 1.0, windows 110/25); peaks (TFLOP/s): "
          + ", ".join(f"{card} {peak:g}" for card, peak in CARDS.items()))
    print(f"(Had the published figure been for our DepthCrafter defaults, 8 steps at guidance 1.2 in 70/25 windows, "
          f"the efficiency would be {share * depth_ratio():.0%} and every time below {depth_ratio():.1f}x shorter.)")
    reference_model, reference = preset_settings("reference")
    configs = [(name, *preset_settings(name)) for name in PRESETS]
    configs += [("reference, full frame", reference_model, replace(reference, inpaint_max_res=0)),
                ("reference, 2x2 tiles", reference_model, replace(reference, tile_num=2))]
    stages = ("CLIP", "VAE enc", "UNet", "VAE dec")
    header = (f"{'source':<6} {'settings':<22} {'depth':>7} | " + " ".join(f"{stage:>7}" for stage in stages)
              + f" | {'total':>7} | " + " ".join(f"{card + ' s':>10}" for card in CARDS))
    print("TFLOP per output frame (depth: the whole depth model; then the inpainting's stages); seconds per frame")
    print(header)
    print("-" * len(header))
    for source, (height, width) in SOURCES.items():
        for name, depth_model, settings in configs:
            if depth_model == "depthcrafter":
                depth = depthcrafter(height, width, DepthCrafterSettings())
            else:
                depth = depth_anything(height, width)
            inpaint = {stage: flops / TERA for stage, flops in inpainting(height, width, settings).items()}
            depth_tflop = sum(depth.values()) / TERA
            total = depth_tflop + sum(inpaint.values())
            times = " ".join(f"{total / (peak * share):10.2f}" for peak in CARDS.values())
            print(f"{source:<6} {name:<22} {depth_tflop:7.1f} | " + " ".join(f"{inpaint[stage]:7.1f}" for stage in stages)
                  + f" | {total:7.1f} | {times}")
        breakdown = depthcrafter(height, width, DepthCrafterSettings())
        print(f"{source:<6} DepthCrafter's stages: " + ", ".join(f"{stage} {flops / TERA:.1f}"
                                                                  for stage, flops in breakdown.items()))
    inpaint_only = {name: sum(inpainting(*SOURCES["1080p"], settings).values()) / TERA
                    for name, _, settings in configs}
    print(f"Inpainting alone at 1080p, TFLOP/frame: " + ", ".join(f"{k} {v:.1f}" for k, v in inpaint_only.items()))
    print(f"(counted in {time.monotonic() - started:.0f} s)")
    assert math.isfinite(share)


if __name__ == "__main__":
    main()
