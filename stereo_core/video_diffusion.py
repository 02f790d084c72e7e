"""Loading the video-diffusion models (DepthCrafter, StereoCrafter) and the SVD operations both use.

Both models are an SVD img2vid UNet variant plus SVD's VAE, CLIP image encoder and
Euler scheduler. `load_video_diffusion` loads either kind from the user's folders;
the helpers below (CLIP embeddings, VAE encode/decode in chunks, micro-conditioning)
are the steps the two pipelines share.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import kornia
import torch

from . import model_files
from .errors import StereoInputError
from .placement import MemoryHooks, Placement, resolve_dtype

log = logging.getLogger(__name__)

# progress(done, total): called after each unit of work; raising from it cancels the run.
ProgressCallback = Callable[[int, int], None]


@dataclass
class VideoDiffusionModel:
    """A loaded model: which kind, its UNet, the SVD parts, and where they live."""

    kind: str
    unet: torch.nn.Module
    vae: torch.nn.Module
    image_encoder: torch.nn.Module
    clip_mean: tuple[float, float, float]
    clip_std: tuple[float, float, float]
    scheduler_config: dict
    dtype: torch.dtype
    placement: Placement
    folders: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.placement.device

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return self.vae.config.latent_channels

    @property
    def clip_size(self) -> int:
        return self.image_encoder.config.image_size

    def new_scheduler(self):
        # A fresh scheduler per run: schedulers keep step state, the loaded model must not.
        from diffusers import EulerDiscreteScheduler

        return EulerDiscreteScheduler.from_config(self.scheduler_config)

    def __repr__(self) -> str:
        return f"VideoDiffusionModel({self.kind}, {self.dtype}, {self.placement.policy} on {self.device})"


def _load(what: str, folder: Path, loader):
    try:
        return loader()
    except PermissionError as error:
        raise StereoInputError(
            f"Loading the {what} from '{folder}' failed: permission denied ({error.filename or error}). The files "
            f"are there but this user may not read them: fix their permissions (e.g. chmod -R u+rX '{folder}')."
        ) from error
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise StereoInputError(
            f"Loading the {what} from '{folder}' failed: {error}. The files may be incomplete or from "
            f"another model; download them again (see the README)."
        ) from error


def _transformers_dtype_key() -> str:
    """from_pretrained's precision argument: `dtype` since transformers 4.56, `torch_dtype` before."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__).release >= (4, 56) else "torch_dtype"


def load_video_diffusion(
    kind: str,
    svd_folder: str | Path,
    unet_folder: str | Path,
    dtype: str = "auto",
    policy: str = "offload",
    device: torch.device | str = "cpu",
    memory: MemoryHooks | None = None,
    offload_device: torch.device | str = "cpu",
) -> VideoDiffusionModel:
    """Load a DepthCrafter or StereoCrafter model from the user's folders (weights stay on the CPU until used)."""
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionModelWithProjection

    from .depth_unet import PerFrameConditionedUNet

    if kind not in model_files.UNET_SUBFOLDER:
        raise StereoInputError(f"Unknown model kind '{kind}'.")
    device = torch.device(device)
    weight_dtype = resolve_dtype(dtype, device)
    svd_folder = model_files.check_svd_folder(svd_folder)
    unet_dir = model_files.check_unet_folder(unet_folder, kind)

    unet_class = PerFrameConditionedUNet if kind == model_files.DEPTHCRAFTER else UNetSpatioTemporalConditionModel
    unet_variant = model_files.find_weights(unet_dir, "diffusion_pytorch_model", weight_dtype).variant
    unet = _load(f"{model_files.TITLES[kind]} UNet", unet_dir, lambda: unet_class.from_pretrained(
        unet_dir, variant=unet_variant, torch_dtype=weight_dtype))

    vae_config = model_files.read_svd_config(svd_folder, "vae", "config.json")
    # SVD's VAE overflows in fp16 (its config says force_upcast), so it runs in fp32 then.
    vae_dtype = torch.float32 if weight_dtype == torch.float16 and vae_config.get("force_upcast") else weight_dtype
    vae_variant = model_files.find_weights(svd_folder / "vae", "diffusion_pytorch_model", vae_dtype).variant
    vae = _load("SVD VAE", svd_folder / "vae", lambda: AutoencoderKLTemporalDecoder.from_pretrained(
        svd_folder, subfolder="vae", variant=vae_variant, torch_dtype=vae_dtype))

    clip_variant = model_files.find_weights(svd_folder / "image_encoder", "model", weight_dtype).variant
    # The precision is asked for explicitly: without it, transformers 5 loads the dtype its config.json
    # names (float16 for SVD's encoder), rounding fp32 weights.
    image_encoder = _load("SVD CLIP image encoder", svd_folder / "image_encoder", lambda: (
        CLIPVisionModelWithProjection.from_pretrained(svd_folder / "image_encoder", variant=clip_variant,
                                                      **{_transformers_dtype_key(): weight_dtype})))

    processor = model_files.read_svd_config(svd_folder, "feature_extractor", "preprocessor_config.json")
    scheduler_config = model_files.read_svd_config(svd_folder, "scheduler", "scheduler_config.json")
    if unet.config.cross_attention_dim != image_encoder.config.projection_dim:
        raise StereoInputError(
            f"The UNet in '{unet_folder}' expects {unet.config.cross_attention_dim}-wide image embeddings but the "
            f"CLIP encoder in '{svd_folder}' makes {image_encoder.config.projection_dim}-wide ones: the two folders "
            f"do not belong together. Use stable-video-diffusion-img2vid-xt-1-1 as the SVD folder."
        )
    for part in (unet, vae, image_encoder):
        part.eval().requires_grad_(False)

    return VideoDiffusionModel(
        kind=kind, unet=unet, vae=vae, image_encoder=image_encoder,
        clip_mean=tuple(processor.get("image_mean", (0.48145466, 0.4578275, 0.40821073))),
        clip_std=tuple(processor.get("image_std", (0.26862954, 0.26130258, 0.27577711))),
        scheduler_config=scheduler_config, dtype=weight_dtype,
        placement=Placement(device=device, offload_device=torch.device(offload_device), policy=policy,
                            memory=memory or MemoryHooks()),
        folders={"svd": str(svd_folder), "unet": str(unet_folder)},
    )


# --- operations shared by the DepthCrafter and StereoCrafter pipelines -------------------------


def require_kind(model, kind: str, node: str) -> None:
    """Refuse a model of the other kind (or no model) with the loader to connect instead."""
    actual = getattr(model, "kind", None)
    if actual != kind:
        got = model_files.TITLES.get(actual, type(model).__name__)
        title = model_files.TITLES[kind]
        raise StereoInputError(f"{node} needs a {title} model, but a {got} model is connected. "
                               f"Connect the {title} Model Loader.")


def seeded(generator: torch.Generator | None, seed: int | None) -> torch.Generator | None:
    """The generator to draw noise from: the given one, else a CPU generator seeded with `seed`."""
    if generator is None and seed is not None:
        return torch.Generator().manual_seed(int(seed))
    return generator


def chunks(count: int, size: int) -> Iterator[slice]:
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


def clip_embeddings(model: VideoDiffusionModel, frames: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings [N, dim] of frames [N, 3, H, W] in -1..1, resized as SVD does.

    SVD resizes with anti-aliasing (a Gaussian blur sized to the shrink factor, then
    bicubic with aligned corners); kornia's anti-aliased resize is that operation.
    """
    size = model.clip_size
    small = kornia.geometry.transform.resize(frames.float(), (size, size), interpolation="bicubic",
                                             align_corners=True, antialias=True)
    small = (small + 1.0) / 2.0
    mean = torch.tensor(model.clip_mean, device=small.device).view(1, 3, 1, 1)
    std = torch.tensor(model.clip_std, device=small.device).view(1, 3, 1, 1)
    pixels = ((small - mean) / std).to(model.image_encoder.dtype)
    return model.image_encoder(pixel_values=pixels).image_embeds


def vae_encode(model: VideoDiffusionModel, frames: torch.Tensor) -> torch.Tensor:
    """Latents (posterior mode) [N, 4, h, w] of frames [N, 3, H, W] in -1..1."""
    return model.vae.encode(frames.to(model.vae.dtype)).latent_dist.mode()


def vae_decode(model: VideoDiffusionModel, latents: torch.Tensor) -> torch.Tensor:
    """Frames [N, 3, H, W] in 0..1 from latents [N, 4, h, w] of consecutive frames."""
    scaled = latents.to(model.vae.dtype) / model.vae.config.scaling_factor
    frames = model.vae.decode(scaled, num_frames=latents.shape[0]).sample
    return (frames.float() / 2 + 0.5).clamp(0, 1)


def added_time_ids(fps: float, motion_bucket: float, noise_aug: float, device, dtype) -> torch.Tensor:
    """SVD's micro-conditioning vector [1, 3]."""
    return torch.tensor([[fps, motion_bucket, noise_aug]], device=device, dtype=dtype)


def random_normal(shape, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device (drawing order defines reproducibility)."""
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=device)


class ProgressTicker:
    """Counts units of work and reports each to a ProgressCallback."""

    def __init__(self, callback: ProgressCallback | None, total: int):
        self.callback, self.total, self.done = callback, total, 0

    def grow(self, extra: int) -> None:
        self.total += extra

    def tick(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)
