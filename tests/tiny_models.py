"""Random-weight models with the real architectures, saved in the real download layouts.

Same classes and folder trees as stable-video-diffusion-img2vid-xt-1-1, tencent/DepthCrafter
and TencentARC/StereoCrafter, at a tiny width so the whole pipeline runs in seconds on a CPU.
Nothing is downloaded. Used by the tests and by the benchmarks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

# The real SVD-xt-1-1 scheduler config, legacy keys included.
SVD_SCHEDULER_CONFIG = {
    "_class_name": "EulerDiscreteScheduler",
    "_diffusers_version": "0.24.0.dev0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "trained_betas": None,
    "use_karras_sigmas": True,
}

CLIP_PREPROCESSOR_CONFIG = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}

MODEL_INDEX = {
    "_class_name": "StableVideoDiffusionPipeline",
    "_diffusers_version": "0.24.0.dev0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
    "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
}

EMBED_DIM = 32  # CLIP projection width = UNet cross-attention width (1024 in the real models)


def tiny_unet(in_channels: int):
    from diffusers import UNetSpatioTemporalConditionModel

    return UNetSpatioTemporalConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64),
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24,
        layers_per_block=1,
        cross_attention_dim=EMBED_DIM,
        num_attention_heads=(2, 4),
        num_frames=25,
    )


def tiny_vae():
    from diffusers import AutoencoderKLTemporalDecoder

    # Four blocks, like the real VAE, so latents are 1/8 of the frame size.
    return AutoencoderKLTemporalDecoder(
        down_block_types=("DownEncoderBlock2D",) * 4,
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        sample_size=64,
    )


def tiny_image_encoder():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, projection_dim=EMBED_DIM, num_hidden_layers=2,
                              num_attention_heads=2, image_size=224, patch_size=32, hidden_act="gelu")
    return CLIPVisionModelWithProjection(config)


def _save_both_variants(model, folder: Path, save, fp16_only: bool = False) -> None:
    if not fp16_only:
        save(model, folder, None)
    save(model.half(), folder, "fp16")
    model.float()


def _save_diffusers(model, folder, variant):
    model.save_pretrained(folder, variant=variant, safe_serialization=True)


def _save_transformers(model, folder, variant):
    model.save_pretrained(folder, variant=variant, safe_serialization=True)


def build_svd_folder(folder: Path, fp16_only: bool = False) -> Path:
    """An SVD-xt-1-1 tree minus the UNet (never needed); both weight variants unless fp16_only."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2))
    _save_both_variants(tiny_vae(), folder / "vae", _save_diffusers, fp16_only)
    _save_both_variants(tiny_image_encoder(), folder / "image_encoder", _save_transformers, fp16_only)
    (folder / "feature_extractor").mkdir(exist_ok=True)
    (folder / "feature_extractor" / "preprocessor_config.json").write_text(json.dumps(CLIP_PREPROCESSOR_CONFIG))
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SVD_SCHEDULER_CONFIG, indent=2))
    return folder


def build_depthcrafter_folder(folder: Path) -> Path:
    """tencent/DepthCrafter: the 8-channel UNet's config and weights at the root."""
    tiny_unet(8).save_pretrained(folder, safe_serialization=True)
    return folder


def build_stereocrafter_folder(folder: Path) -> Path:
    """TencentARC/StereoCrafter: the 9-channel UNet under unet_diffusers/."""
    tiny_unet(9).save_pretrained(folder / "unet_diffusers", safe_serialization=True)
    return folder


def build_model_tree(root: Path) -> dict[str, Path]:
    """All folders as a user's models/stereocrafter/ would hold them, plus broken variants for error tests."""
    torch.manual_seed(1234)
    tree = {
        "svd": build_svd_folder(root / "stable-video-diffusion-img2vid-xt-1-1"),
        "svd_fp16_only": build_svd_folder(root / "svd-fp16-only", fp16_only=True),
        "depthcrafter": build_depthcrafter_folder(root / "DepthCrafter"),
        "stereocrafter": build_stereocrafter_folder(root / "StereoCrafter"),
        "dav2": build_depth_anything_v2_folder(root / "Depth-Anything-V2-Small-hf"),
        "video_depth_anything": build_video_depth_anything_folder(root / "Video-Depth-Anything-Small"),
    }
    incomplete = root / "svd-incomplete"
    shutil.copytree(tree["svd"], incomplete)
    shutil.rmtree(incomplete / "image_encoder")
    (incomplete / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    (incomplete / "vae" / "diffusion_pytorch_model.fp16.safetensors").unlink()
    tree["svd_incomplete"] = incomplete
    return tree


# Depth Anything V2's preprocessor_config.json as the -hf repositories publish it.
DAV2_PREPROCESSOR_CONFIG = {
    "do_normalize": True,
    "do_pad": False,
    "do_rescale": True,
    "do_resize": True,
    "ensure_multiple_of": 14,
    "image_mean": [0.485, 0.456, 0.406],
    "image_processor_type": "DPTImageProcessor",
    "image_std": [0.229, 0.224, 0.225],
    "keep_aspect_ratio": True,
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"height": 518, "width": 518},
    "size_divisor": None,
}


def tiny_depth_anything_v2():
    """DepthAnythingForDepthEstimation with a 4-layer, 32-wide DINOv2 (the real one: 12 layers, 384 wide)."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, mlp_ratio=2, image_size=518,
                            patch_size=14, out_indices=[1, 2, 3, 4], apply_layernorm=True, reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, patch_size=14,
                                 fusion_hidden_size=16, neck_hidden_sizes=[8, 16, 32, 32], head_hidden_size=8,
                                 depth_estimation_type="relative")
    model = DepthAnythingForDepthEstimation(config)
    # Freshly initialised, the head's last ReLU gives zeros everywhere; perturbed weights give depth that
    # depends on the image.
    generator = torch.Generator().manual_seed(23)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
        model.head.conv3.bias.fill_(1.0)
    return model


def build_depth_anything_v2_folder(folder: Path) -> Path:
    """depth-anything/Depth-Anything-V2-Small-hf's layout: config.json, model.safetensors, preprocessor_config.json."""
    tiny_depth_anything_v2().save_pretrained(folder, safe_serialization=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(DAV2_PREPROCESSOR_CONFIG, indent=2))
    return folder


# Video Depth Anything at a tiny width: 64-channel ViT (one 64-wide head, as the real sizes), 4 blocks.
TINY_VDA_CONFIG = dict(embed_dim=64, depth=4, heads=1, features=32, out_channels=(32, 32, 32, 64), taps=(0, 1, 2, 3))


def tiny_video_depth_anything(seed: int = 0):
    """A random-weight Video Depth Anything with every parameter perturbed (the official temporal modules
    start at zero, which would hide them)."""
    from stereo_core.vda_network import NetworkConfig, VideoDepthAnything

    torch.manual_seed(seed)
    network = VideoDepthAnything(NetworkConfig(**TINY_VDA_CONFIG)).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            spread = float(parameter.std()) if parameter.numel() > 1 else 0.0
            parameter.add_(torch.randn(parameter.shape, generator=generator) * max(spread, 0.02) * 0.5)
    return network


def build_video_depth_anything_folder(folder: Path, encoder: str = "vits", seed: int = 0) -> Path:
    """depth-anything/Video-Depth-Anything-<Size>: the one checkpoint, in the official key layout and file name
    (the loader reads the architecture off the tensor shapes, so the tiny width loads the same way)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_video_depth_anything(seed).state_dict(), folder / f"video_depth_anything_{encoder}.pth")
    return folder
