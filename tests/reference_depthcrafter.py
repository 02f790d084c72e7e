"""DepthCrafter written the straightforward way, from ALGORITHM.md "Stage 1a", as a test oracle.

Whole-clip tensors, one CLIP pass, one noise draw, a latents buffer grown by
concatenation, the rotation done by slicing the initial noise, and SVD's own
anti-aliased resize from diffusers: the shape of the published reference, with
none of the library's chunking, so any chunking bug shows up as a difference.
"""

import torch
from diffusers import EulerDiscreteScheduler
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing

from stereo_core.frames import resize_frames


def reference_working_size(height, width, max_res):
    h, w = round(height / 64) * 64, round(width / 64) * 64
    if max(h, w) > max_res:
        scale = max_res / max(height, width)
        h, w = round(height * scale / 64) * 64, round(width * scale / 64) * 64
    return h, w


@torch.no_grad()
def reference_depth(model, video, steps=8, guidance=1.2, window=70, overlap=25, noise_aug=0.02, max_res=1024,
                    seed=0, decode_chunk=8):
    frames_count, height, width, _ = video.shape
    h, w = reference_working_size(height, width, max_res)
    frames = resize_frames(video, h, w).permute(0, 3, 1, 2) * 2.0 - 1.0
    generator = torch.Generator().manual_seed(seed)

    small = (_resize_with_antialiasing(frames, (224, 224)) + 1.0) / 2.0
    mean = torch.tensor(model.clip_mean).view(1, 3, 1, 1)
    std = torch.tensor(model.clip_std).view(1, 3, 1, 1)
    embeddings = model.image_encoder(pixel_values=(small - mean) / std).image_embeds.unsqueeze(0)

    noise = torch.randn(frames.shape, generator=generator)
    video_latents = model.vae.encode(frames + noise_aug * noise).latent_dist.mode().unsqueeze(0)

    if frames_count <= window:
        window, overlap = frames_count, 0
    stride = window - overlap
    scheduler = EulerDiscreteScheduler.from_config(model.scheduler_config)
    scheduler.set_timesteps(steps)  # as the official pipeline: timesteps before latents
    latents_init = torch.randn((1, window, 4, h // 8, w // 8), generator=generator) * scheduler.init_noise_sigma
    time_ids = torch.tensor([[7.0, 127.0, noise_aug]])
    weights = torch.linspace(0, 1, overlap).view(1, overlap, 1, 1, 1) if overlap > 0 else None

    latents_all, start = None, 0
    while start < frames_count - overlap:
        end = min(start + window, frames_count)
        scheduler.set_timesteps(steps)
        latents = latents_init[:, :end - start].clone()
        latents_init = torch.cat([latents_init[:, -overlap:], latents_init[:, :stride]], dim=1)
        cond_latents = video_latents[:, start:end]
        cond_embeddings = embeddings[:, start:end]
        for i, t in enumerate(scheduler.timesteps):
            if latents_all is not None and i == 0:
                latents[:, :overlap] = (latents_all[:, -overlap:]
                                        + latents[:, :overlap] / scheduler.init_noise_sigma * scheduler.sigmas[i])
            scaled = scheduler.scale_model_input(latents, t)
            prediction = model.unet(torch.cat([scaled, cond_latents], dim=2), t,
                                    encoder_hidden_states=cond_embeddings, added_time_ids=time_ids).sample
            if guidance > 1:
                unconditional = model.unet(torch.cat([scaled, torch.zeros_like(cond_latents)], dim=2), t,
                                           encoder_hidden_states=torch.zeros_like(cond_embeddings),
                                           added_time_ids=time_ids).sample
                prediction = unconditional + guidance * (prediction - unconditional)
            latents = scheduler.step(prediction, t, latents).prev_sample
        if latents_all is None:
            latents_all = latents.clone()
        else:
            latents_all[:, -overlap:] = latents[:, :overlap] * weights + latents_all[:, -overlap:] * (1 - weights)
            latents_all = torch.cat([latents_all, latents[:, overlap:]], dim=1)
        start += stride

    flat = latents_all.flatten(0, 1) / model.vae.config.scaling_factor
    decoded = torch.cat([model.vae.decode(flat[i:i + decode_chunk], num_frames=flat[i:i + decode_chunk].shape[0]).sample
                         for i in range(0, flat.shape[0], decode_chunk)])
    depth = resize_frames((decoded / 2 + 0.5).clamp(0, 1).mean(dim=1), height, width)
    return (depth - depth.min()) / (depth.max() - depth.min())
