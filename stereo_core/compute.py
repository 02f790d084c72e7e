"""The GPU work of the models, counted: FLOPs of the real architectures, built on the meta device.

Nothing is computed and nothing is downloaded: the real SVD-xt configurations (the UNet's are the
diffusers defaults; DepthCrafter's UNet is the same with 8 input channels and one embedding per
frame, StereoCrafter's with 9), the SVD VAE and the CLIP ViT-H/14 image encoder are built on
torch's meta device and run under torch.utils.flop_counter.FlopCounterMode, which counts the
matrix products and convolutions (2 FLOPs per multiply-add) from the shapes alone. Counts are
cached per shape. Used by bench/bench_compute.py and the tests that price the UNet calls a
conversion really makes.
"""

from __future__ import annotations

from functools import lru_cache

import torch

TERA = 1e12
CLIP_IMAGE_SIZE = 224


@lru_cache(maxsize=None)
def real_unet(in_channels: int, per_frame: bool = False):
    """SVD-xt's spatio-temporal UNet on the meta device; per_frame: DepthCrafter's conditioning."""
    from diffusers import UNetSpatioTemporalConditionModel

    from .depth_unet import PerFrameConditionedUNet

    with torch.device("meta"):
        unet = (PerFrameConditionedUNet if per_frame else UNetSpatioTemporalConditionModel)(in_channels=in_channels)
    return unet.to("meta").eval()  # some mixing factors are made on the CPU whatever the default device


@lru_cache(maxsize=None)
def real_vae():
    from diffusers import AutoencoderKLTemporalDecoder

    with torch.device("meta"):
        vae = AutoencoderKLTemporalDecoder(down_block_types=("DownEncoderBlock2D",) * 4,
                                           block_out_channels=(128, 256, 512, 512), layers_per_block=2)
    return vae.to("meta").eval()


@lru_cache(maxsize=None)
def real_image_encoder():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, projection_dim=1024, num_hidden_layers=32,
                              num_attention_heads=16, image_size=CLIP_IMAGE_SIZE, patch_size=14, hidden_act="gelu")
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(config)
    return model.to("meta").eval()


def _counted(run) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        run()
    return float(counter.get_total_flops())


def _meta(*shape) -> torch.Tensor:
    return torch.zeros(shape, device="meta")


@lru_cache(maxsize=None)
def unet_flops(in_channels: int, frames: int, height: int, width: int, per_frame: bool = False) -> float:
    """FLOPs of one UNet evaluation on [1, frames, in_channels, height, width] latents."""
    unet = real_unet(in_channels, per_frame)
    embeddings = _meta(1, frames if per_frame else 1, unet.config.cross_attention_dim)
    return _counted(lambda: unet(_meta(1, frames, in_channels, height, width), _meta(), embeddings, _meta(1, 3)))


def unet_call_flops(sample_shape, per_frame: bool = False) -> float:
    """FLOPs of the real UNet on a call whose sample is shaped [batch, frames, channels, h, w]."""
    batch, frames, channels, height, width = (int(side) for side in sample_shape)
    return batch * unet_flops(channels, frames, height, width, per_frame)


@lru_cache(maxsize=None)
def vae_encode_flops(frames: int, height: int, width: int) -> float:
    """FLOPs of encoding `frames` frames of height x width pixels."""
    vae = real_vae()
    return _counted(lambda: vae.encode(_meta(frames, 3, height, width)))


@lru_cache(maxsize=None)
def vae_decode_flops(frames: int, height: int, width: int) -> float:
    """FLOPs of decoding `frames` consecutive frames of height x width pixels (the temporal decoder)."""
    vae = real_vae()
    return _counted(lambda: vae.decode(_meta(frames, 4, height // 8, width // 8), num_frames=frames))


@lru_cache(maxsize=None)
def clip_flops(images: int) -> float:
    """FLOPs of CLIP image embeddings of `images` images (224x224 after resizing)."""
    model = real_image_encoder()
    return _counted(lambda: model(pixel_values=_meta(images, 3, CLIP_IMAGE_SIZE, CLIP_IMAGE_SIZE)))
