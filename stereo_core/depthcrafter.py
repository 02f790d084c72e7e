"""DepthCrafter video depth: sliding-window SVD sampling with per-frame CLIP conditioning.

Follows ALGORITHM.md "Stage 1a" step by step. Memory: the clip, its CLIP embeddings,
its latents and the result stay on the CPU; only one encode/decode chunk or one
window of latents is on the compute device at a time, so clip length is bounded by
host memory alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import StereoInputError
from .frames import check_clip, check_finite, resize_frames
from .model_files import DEPTHCRAFTER
from .video_diffusion import (
    ProgressCallback,
    ProgressTicker,
    VideoDiffusionModel,
    added_time_ids,
    chunks,
    clip_embeddings,
    random_normal,
    require_kind,
    seeded,
    vae_decode,
    vae_encode,
)


# Working sizes are multiples of this (the UNet downsamples latents 3 times after the VAE's 8x).
SIZE_MULTIPLE = 64


@dataclass(frozen=True)
class DepthCrafterSettings:
    steps: int = 8
    guidance: float = 1.2
    window: int = 70
    overlap: int = 25
    noise_aug: float = 0.02
    max_res: int = 1024
    fps: float = 7.0
    motion_bucket: float = 127.0
    encode_chunk: int = 8
    decode_chunk: int = 8

    def check(self) -> None:
        if self.steps < 1:
            raise StereoInputError(f"steps must be at least 1, got {self.steps}.")
        if self.window < 1:
            raise StereoInputError(f"window must be at least 1 frame, got {self.window}.")
        if not 0 <= self.overlap < self.window:
            raise StereoInputError(
                f"overlap ({self.overlap}) must be at least 0 and smaller than window ({self.window}): windows "
                f"advance by window - overlap frames. The reference uses window 70, overlap 25."
            )
        if self.encode_chunk < 1 or self.decode_chunk < 1:
            raise StereoInputError("encode_chunk and decode_chunk must be at least 1 frame.")
        if self.max_res < SIZE_MULTIPLE:
            raise StereoInputError(f"max_res must be at least {SIZE_MULTIPLE}, got {self.max_res}.")
        if self.guidance < 1.0:
            raise StereoInputError(f"guidance must be at least 1.0 (1.0 = no guidance), got {self.guidance}.")


@dataclass(frozen=True)
class Window:
    start: int
    end: int
    blend: int  # leading frames shared with (and blended into) the previous window

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass
class DepthResult:
    depth: torch.Tensor  # [T, H, W] float32 on the CPU, 0..1, 1 = nearest
    working_size: tuple[int, int]  # (height, width) the model ran at
    input_size: tuple[int, int]
    unet_calls: int

    @property
    def resized(self) -> bool:
        return self.working_size != self.input_size

    def describe(self) -> str:
        (h, w), (ih, iw) = self.working_size, self.input_size
        if not self.resized:
            return f"DepthCrafter ran at the input size {iw}x{ih}."
        return (f"DepthCrafter ran at {w}x{h} (multiples of {SIZE_MULTIPLE}, at most max_res) instead of the input "
                f"size {iw}x{ih}; the depth was resized back to {iw}x{ih}.")


def working_size(height: int, width: int, max_res: int) -> tuple[int, int]:
    """Sides rounded to multiples of 64, scaled from the original size when the larger one passes max_res."""
    def snap(side: float) -> int:
        return max(SIZE_MULTIPLE, round(side / SIZE_MULTIPLE) * SIZE_MULTIPLE)

    h, w = snap(height), snap(width)
    if max(h, w) > max_res:
        scale = max_res / max(height, width)
        h, w = snap(height * scale), snap(width * scale)
    return h, w


def plan_windows(frames: int, window: int, overlap: int) -> list[Window]:
    """The reference's windows: stride window - overlap, until start >= frames - overlap."""
    if frames <= window:
        return [Window(0, frames, 0)]
    stride = window - overlap
    plan, start = [], 0
    while start < frames - overlap:
        plan.append(Window(start, min(start + window, frames), overlap if plan else 0))
        start += stride
    return plan


def rotate_noise(noise: torch.Tensor, overlap: int) -> torch.Tensor:
    """The next window's initial noise: the last `overlap` frames move to the front."""
    if overlap == 0:
        return noise
    return torch.cat([noise[-overlap:], noise[:-overlap]])


def blend_overlap(earlier: torch.Tensor, later: torch.Tensor) -> torch.Tensor:
    """Cross-fade shared frames [n, ...]: the later window's weight rises linearly from 0 to 1."""
    weight = torch.linspace(0, 1, earlier.shape[0]).view(-1, *([1] * (earlier.ndim - 1)))
    return later * weight + earlier * (1 - weight)


def count_unet_calls(frames: int, settings: DepthCrafterSettings) -> int:
    passes = 1 if settings.guidance == 1.0 else 2
    return len(plan_windows(frames, settings.window, settings.overlap)) * settings.steps * passes




def _model_frames(video: torch.Tensor, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """A CPU chunk [n, H, W, 3] in 0..1 as the model wants it: [n, 3, h, w] in -1..1 on the device."""
    frames = resize_frames(video.to(device, torch.float32), *size)
    return frames.permute(0, 3, 1, 2) * 2.0 - 1.0


def estimate_depth(
    model: VideoDiffusionModel,
    video: torch.Tensor,
    settings: DepthCrafterSettings = DepthCrafterSettings(),
    generator: torch.Generator | None = None,
    seed: int | None = None,
    latents: torch.Tensor | None = None,
    progress: ProgressCallback | None = None,
) -> DepthResult:
    """Relative inverse depth (1 = nearest) of every frame of `video` [T, H, W, 3] (0..1, any size).

    `generator` (or `seed`) fixes the noise; `latents` optionally gives the initial noise of the
    first window ([frames, 4, h/8, w/8], unit variance), as diffusers pipelines take it.
    """
    require_kind(model, DEPTHCRAFTER, "DepthCrafter Depth")
    video = check_clip(video, "image")
    check_finite(video, "image")
    settings.check()
    generator = seeded(generator, seed)

    total_frames, height, width, _ = video.shape
    size = working_size(height, width, settings.max_res)
    factor = model.vae_scale_factor
    latent_shape = (model.latent_channels, size[0] // factor, size[1] // factor)
    windows = plan_windows(total_frames, settings.window, settings.overlap)
    window_frames = windows[0].frames
    encode_slices = list(chunks(total_frames, settings.encode_chunk))
    decode_slices = list(chunks(total_frames, settings.decode_chunk))
    ticker = ProgressTicker(progress, 2 * len(encode_slices) + len(windows) * settings.steps + len(decode_slices))
    device, dtype, placement = model.device, model.dtype, model.placement

    with torch.no_grad():
        embeddings = torch.empty(total_frames, model.unet.config.cross_attention_dim, dtype=dtype)
        with placement.use(model.image_encoder):
            for part in encode_slices:
                embeddings[part] = clip_embeddings(model, _model_frames(video[part], size, device)).cpu()
                ticker.tick()

        # Noise is drawn chunk by chunk in clip order: the same numbers as one draw for the whole clip.
        video_latents = torch.empty(total_frames, *latent_shape, dtype=dtype)
        with placement.use(model.vae):
            for part in encode_slices:
                frames = _model_frames(video[part], size, device)
                noise = random_normal(frames.shape, generator).to(device)
                video_latents[part] = vae_encode(model, frames + settings.noise_aug * noise).cpu()
                ticker.tick()

        noise_shape = (window_frames, *latent_shape)
        if latents is None:
            window_noise = random_normal(noise_shape, generator).cpu()
        else:
            window_noise = latents.reshape(-1, *latents.shape[-3:]).float().cpu()
            if tuple(window_noise.shape) != noise_shape:
                raise StereoInputError(f"latents must be shaped {noise_shape} for this clip and settings, "
                                       f"got {tuple(latents.shape)}.")

        scheduler = model.new_scheduler()
        # init_noise_sigma is only right once the sigmas are set (700 for SVD's Karras schedule, not ~14.6).
        scheduler.set_timesteps(settings.steps, device=device)
        window_noise = window_noise * scheduler.init_noise_sigma
        time_ids = added_time_ids(settings.fps, settings.motion_bucket, settings.noise_aug, device, dtype)
        result_latents = torch.empty(total_frames, *latent_shape)
        unet_calls = 0

        with placement.use(model.unet) as unet:
            def predict(sample, frame_latents, frame_embeddings, t):
                nonlocal unet_calls
                unet_calls += 1
                unet_input = torch.cat([sample, frame_latents], dim=1).unsqueeze(0).to(dtype)
                return unet(unet_input, t, encoder_hidden_states=frame_embeddings.unsqueeze(0),
                            added_time_ids=time_ids, return_dict=False)[0][0].float()

            for window in windows:
                frames = slice(window.start, window.end)
                scheduler.set_timesteps(settings.steps, device=device)
                sample = window_noise[:window.frames].to(device)
                window_noise = rotate_noise(window_noise, settings.overlap)
                frame_latents = video_latents[frames].to(device)
                frame_embeddings = embeddings[frames].to(device)
                shared = slice(window.start, window.start + window.blend)
                for step, t in enumerate(scheduler.timesteps):
                    if step == 0 and window.blend:
                        # Continue from the previous window's result, noised to the first sigma.
                        sigma = float(scheduler.sigmas[0]) / float(scheduler.init_noise_sigma)
                        sample[:window.blend] = result_latents[shared].to(device) + sample[:window.blend] * sigma
                    scaled = scheduler.scale_model_input(sample, t)
                    prediction = predict(scaled, frame_latents, frame_embeddings, t)
                    if settings.guidance != 1.0:
                        unconditional = predict(scaled, torch.zeros_like(frame_latents),
                                                torch.zeros_like(frame_embeddings), t)
                        prediction = unconditional + settings.guidance * (prediction - unconditional)
                    sample = scheduler.step(prediction, t, sample).prev_sample
                    ticker.tick()
                sample = sample.float().cpu()
                if window.blend:
                    result_latents[shared] = blend_overlap(result_latents[shared], sample[:window.blend])
                result_latents[window.start + window.blend:window.end] = sample[window.blend:]

        depth = torch.empty(total_frames, height, width)
        low, high = float("inf"), float("-inf")
        with placement.use(model.vae):
            for part in decode_slices:
                decoded = vae_decode(model, result_latents[part].to(device)).mean(dim=1)
                # Extremes are taken at the delivered size: resizing does not keep them.
                depth[part] = resize_frames(decoded, height, width).cpu()
                low, high = min(low, float(depth[part].min())), max(high, float(depth[part].max()))
                ticker.tick()

    placement.memory.empty_cache(device)
    depth.sub_(low).div_(max(high - low, 1e-12))
    return DepthResult(depth=depth, working_size=size, input_size=(height, width), unet_calls=unet_calls)
