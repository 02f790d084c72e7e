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


class DepthSampler:
    """One clip's DepthCrafter run as separate steps: encode frames, draw the window noise, denoise each
    window, decode.

    estimate_depth drives it with the whole clip in memory; the streaming engine drives it with its work
    kept on disk. Both call the same steps in the same order, so they compute the same numbers. Each
    step expects its model part to be on the device (`model.placement.use(...)`) and keeps its
    results on the CPU.
    """

    def __init__(self, model: VideoDiffusionModel, settings: DepthCrafterSettings, frames: int, height: int,
                 width: int, generator: torch.Generator | None, ticker: ProgressTicker | None = None):
        require_kind(model, DEPTHCRAFTER, "DepthCrafter Depth")
        settings.check()
        self.model, self.settings, self.generator = model, settings, generator
        self.frames, self.height, self.width = frames, height, width
        self.size = working_size(height, width, settings.max_res)
        factor = model.vae_scale_factor
        self.latent_shape = (model.latent_channels, self.size[0] // factor, self.size[1] // factor)
        self.windows = plan_windows(frames, settings.window, settings.overlap)
        self.encode_slices = list(chunks(frames, settings.encode_chunk))
        self.decode_slices = list(chunks(frames, settings.decode_chunk))
        self.ticker = ticker or ProgressTicker(None, 0)
        self.unet_calls = 0
        self.time_ids = added_time_ids(settings.fps, settings.motion_bucket, settings.noise_aug, model.device,
                                       model.dtype)

    @property
    def ticks(self) -> int:
        """Units of progress a whole run reports: encode chunks (CLIP, VAE), window steps, decode chunks."""
        return 2 * len(self.encode_slices) + len(self.windows) * self.settings.steps + len(self.decode_slices)

    def embed(self, video: torch.Tensor) -> torch.Tensor:
        """CLIP embeddings [n, dim] of one encode chunk of frames [n, H, W, 3] (0..1)."""
        embeddings = clip_embeddings(self.model, _model_frames(video, self.size, self.model.device))
        self.ticker.tick()
        return embeddings.to(self.model.dtype).cpu()

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Noise-augmented VAE latents [n, 4, h, w] of one encode chunk; draws that chunk's noise.

        Noise is drawn chunk by chunk in clip order: the same numbers as one draw for the whole clip.
        """
        frames = _model_frames(video, self.size, self.model.device)
        noise = random_normal(frames.shape, self.generator).to(frames.device)
        latents = vae_encode(self.model, frames + self.settings.noise_aug * noise)
        self.ticker.tick()
        return latents.to(self.model.dtype).cpu()

    def new_scheduler(self):
        scheduler = self.model.new_scheduler()
        # init_noise_sigma is only right once the sigmas are set (700 for SVD's Karras schedule, not ~14.6).
        scheduler.set_timesteps(self.settings.steps, device=self.model.device)
        return scheduler

    def initial_noise(self, latents: torch.Tensor | None = None) -> torch.Tensor:
        """The first window's initial noise, scaled to the first sigma; drawn after every encode chunk."""
        noise_shape = (self.windows[0].frames, *self.latent_shape)
        if latents is None:
            noise = random_normal(noise_shape, self.generator).cpu()
        else:
            noise = latents.reshape(-1, *latents.shape[-3:]).float().cpu()
            if tuple(noise.shape) != noise_shape:
                raise StereoInputError(f"latents must be shaped {noise_shape} for this clip and settings, "
                                       f"got {tuple(latents.shape)}.")
        return noise * self.new_scheduler().init_noise_sigma

    def window_noise(self, noise: torch.Tensor, index: int) -> torch.Tensor:
        """Window `index`'s initial noise: the first window's, rotated once per window before it."""
        # `index` rotations by `overlap` frames are one roll (a permutation: exact).
        shift = index * self.settings.overlap % noise.shape[0]
        return torch.roll(noise, shift, dims=0)[:self.windows[index].frames]

    def denoise(self, unet, window: Window, noise: torch.Tensor, frame_latents: torch.Tensor,
                frame_embeddings: torch.Tensor, shared: torch.Tensor | None) -> torch.Tensor:
        """Final latents [n, 4, h, w] of one window (CPU, float32), before blending into the clip's.

        `shared`: the clip's latents of the window's first `window.blend` frames so far (None for the
        first window); the window starts from them, noised to the first sigma.
        """
        settings, device, dtype = self.settings, self.model.device, self.model.dtype
        scheduler = self.new_scheduler()
        sample = noise.to(device)
        frame_latents = frame_latents.to(device)
        frame_embeddings = frame_embeddings.to(device)

        def predict(scaled, latents, embeddings, t):
            self.unet_calls += 1
            unet_input = torch.cat([scaled, latents], dim=1).unsqueeze(0).to(dtype)
            return unet(unet_input, t, encoder_hidden_states=embeddings.unsqueeze(0),
                        added_time_ids=self.time_ids, return_dict=False)[0][0].float()

        for step, t in enumerate(scheduler.timesteps):
            if step == 0 and window.blend:
                # Continue from the previous window's result, noised to the first sigma.
                sigma = float(scheduler.sigmas[0]) / float(scheduler.init_noise_sigma)
                sample[:window.blend] = shared.to(device) + sample[:window.blend] * sigma
            scaled = scheduler.scale_model_input(sample, t)
            prediction = predict(scaled, frame_latents, frame_embeddings, t)
            if settings.guidance != 1.0:
                unconditional = predict(scaled, torch.zeros_like(frame_latents), torch.zeros_like(frame_embeddings), t)
                prediction = unconditional + settings.guidance * (prediction - unconditional)
            sample = scheduler.step(prediction, t, sample).prev_sample
            self.ticker.tick()
        return sample.float().cpu()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Depth [n, H, W] at the input size, not yet normalised, from one decode chunk of final latents."""
        decoded = vae_decode(self.model, latents.to(self.model.device)).mean(dim=1)
        depth = resize_frames(decoded, self.height, self.width).cpu()
        self.ticker.tick()
        return depth


def merge_window(result: torch.Tensor, window: Window, sample: torch.Tensor, offset: int = 0) -> None:
    """Put a window's final latents into the clip's latents `result` (which starts at frame `offset`),
    cross-fading the frames it shares with the previous window."""
    start = window.start - offset
    if window.blend:
        shared = slice(start, start + window.blend)
        result[shared] = blend_overlap(result[shared], sample[:window.blend])
    result[start + window.blend:start + window.frames] = sample[window.blend:]


def normalize_depth(depth: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Min-max normalise depth in place with the clip's extremes (1 = nearest)."""
    return depth.sub_(low).div_(max(high - low, 1e-12))


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
    total_frames, height, width, _ = video.shape
    ticker = ProgressTicker(progress, 0)
    sampler = DepthSampler(model, settings, total_frames, height, width, seeded(generator, seed), ticker)
    ticker.grow(sampler.ticks)
    placement = model.placement

    with torch.no_grad():
        with placement.use(model.image_encoder):
            embeddings = torch.cat([sampler.embed(video[part]) for part in sampler.encode_slices])
        with placement.use(model.vae):
            video_latents = torch.cat([sampler.encode(video[part]) for part in sampler.encode_slices])

        noise = sampler.initial_noise(latents)
        result_latents = torch.empty(total_frames, *sampler.latent_shape)
        with placement.use(model.unet) as unet:
            for index, window in enumerate(sampler.windows):
                frames = slice(window.start, window.end)
                shared = result_latents[window.start:window.start + window.blend] if window.blend else None
                sample = sampler.denoise(unet, window, sampler.window_noise(noise, index), video_latents[frames],
                                         embeddings[frames], shared)
                merge_window(result_latents, window, sample)

        depth = torch.empty(total_frames, height, width)  # filled in place: no second copy of the clip
        with placement.use(model.vae):
            for part in sampler.decode_slices:
                depth[part] = sampler.decode(result_latents[part])

    placement.memory.empty_cache(model.device)
    # Extremes are taken at the delivered size: resizing does not keep them.
    normalize_depth(depth, float(depth.min()), float(depth.max()))
    return DepthResult(depth=depth, working_size=sampler.size, input_size=(height, width),
                       unet_calls=sampler.unet_calls)
