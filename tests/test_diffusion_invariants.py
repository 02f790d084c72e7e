"""Invariants of the two diffusion stages, checked at the UNet's door.

Every UNet call is recorded (input, timestep, conditioning, output); what the inputs must be
follows from the published pipelines and the sampler's definition alone, computed here from
the scheduler's config with the EDM formulas (Karras sigmas, v-prediction preconditioning,
Euler steps), not with our pipeline code or diffusers' scheduler:

* the first input of a window/chunk is the initial noise times sigma_0 (= sigma_max = 700),
  scaled by 1 / sqrt(sigma_0^2 + 1): std about 1, not about 0.02;
* each later input is the Euler update of the one before, from the UNet's own outputs;
* DepthCrafter's window k+1 starts, on the frames it shares with window k, from window k's
  result plus the rotated noise times sigma_0;
* the delivered result is the VAE decode of the last step's denoised latents.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from tiny_models import SVD_SCHEDULER_CONFIG

from stereo_core.depthcrafter import DepthCrafterSettings, estimate_depth
from stereo_core.inpainting import InpaintSettings, inpaint_clip

RHO = 7.0  # Karras et al.'s schedule exponent, as SVD uses it


def karras_sigmas(steps: int) -> list[float]:
    """sigma_0 .. sigma_{n-1} from the config, then the final 0."""
    high = SVD_SCHEDULER_CONFIG["sigma_max"] ** (1 / RHO)
    low = SVD_SCHEDULER_CONFIG["sigma_min"] ** (1 / RHO)
    ramp = [k / (steps - 1) for k in range(steps)] if steps > 1 else [0.0]
    return [(high + r * (low - high)) ** RHO for r in ramp] + [0.0]


def c_in(sigma: float) -> float:
    return 1 / math.sqrt(sigma ** 2 + 1)


def denoised(sample: torch.Tensor, v: torch.Tensor, sigma: float) -> torch.Tensor:
    """x0 from a v-prediction (EDM preconditioning with sigma_data = 1)."""
    return sample / (sigma ** 2 + 1) - v * sigma / math.sqrt(sigma ** 2 + 1)


def euler(sample: torch.Tensor, v: torch.Tensor, sigma: float, next_sigma: float) -> torch.Tensor:
    return sample + (sample - denoised(sample, v, sigma)) / sigma * (next_sigma - sigma)


class UNetTape:
    """Records every UNet call: noisy-latent part of the input, the rest, timestep, embeddings, output."""

    def __init__(self, unet):
        self.calls = []
        self._handle = unet.register_forward_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs, output):
        sample = args[0][0].float()
        self.calls.append({"scaled": sample[:, :4].clone(), "conditioning": sample[:, 4:].clone(),
                           "t": float(torch.as_tensor(args[1]).reshape(-1)[0]),
                           "embeddings": kwargs["encoder_hidden_states"].float().clone(),
                           "v": output[0][0].float().clone()})

    def close(self):
        self._handle.remove()

    def steps(self, guidance) -> list[tuple[torch.Tensor, torch.Tensor, float, dict]]:
        """Per denoising step: (scaled input, guided prediction, timestep, conditional call)."""
        result, calls = [], list(self.calls)
        while calls:
            if guidance is None:
                call = calls.pop(0)
                result.append((call["scaled"], call["v"], call["t"], call))
                continue
            pair = calls[:2]
            del calls[:2]
            unconditional = [c for c in pair if not c["conditioning"].any() and not c["embeddings"].any()]
            assert len(unconditional) == 1, "with guidance each step makes one conditional and one plain call"
            cond, uncond = [c for c in pair if c is not unconditional[0]][0], unconditional[0]
            assert torch.equal(cond["scaled"], uncond["scaled"]) and cond["t"] == uncond["t"]
            v = uncond["v"] + guidance * (cond["v"] - uncond["v"])
            result.append((cond["scaled"], v, cond["t"], cond))
        return result


def run_steps(steps, sigmas, start_sample, check_inputs=True):
    """Follow a window/chunk through its steps; checks each input against the Euler update, returns x0."""
    sample = start_sample
    for index, (scaled, v, t, _) in enumerate(steps):
        sigma = sigmas[index]
        if check_inputs:
            # float32 rounding of samples ~700 in size leaves ~1e-4 in the next inputs
            torch.testing.assert_close(scaled, sample * c_in(sigma), rtol=1e-4, atol=1e-3)
        assert t == pytest.approx(0.25 * math.log(sigma), abs=1e-5)  # SVD's continuous timestep
        sample = scaled / c_in(sigma)
        if index + 1 < len(steps):
            sample = euler(sample, v, sigma, sigmas[index + 1])
        else:
            return denoised(sample, v, sigma)  # the last step goes to sigma 0: x0 itself


# --- DepthCrafter --------------------------------------------------------------------------------


@pytest.mark.parametrize("guidance", [1.0, 1.2])
def test_depthcrafter_windows_follow_the_sampler(depthcrafter_model, guidance):
    frames, size, steps, window, overlap, seed = 10, 64, 3, 6, 3, 7
    video = torch.rand(frames, size, size, 3, generator=torch.Generator().manual_seed(1))
    settings = DepthCrafterSettings(steps=steps, guidance=guidance, window=window, overlap=overlap)
    tape = UNetTape(depthcrafter_model.unet)
    try:
        depth = estimate_depth(depthcrafter_model, video, settings, seed=seed).depth
    finally:
        tape.close()
    sigmas = karras_sigmas(steps)
    assert sigmas[0] == pytest.approx(700.0)

    # The published pipeline's draws from the seeded CPU generator: video noise, then one window of noise.
    generator = torch.Generator().manual_seed(seed)
    pixels = video.permute(0, 3, 1, 2) * 2 - 1
    video_noise = torch.randn(pixels.shape, generator=generator)
    noise = torch.randn((window, 4, size // 8, size // 8), generator=generator)
    vae = depthcrafter_model.vae
    video_latents = vae.encode(pixels + 0.02 * video_noise).latent_dist.mode()

    all_steps = tape.steps(None if guidance == 1.0 else guidance)
    windows = [(0, 6), (3, 9), (6, 10)]
    assert len(all_steps) == len(windows) * steps
    result = None
    for index, (start, end) in enumerate(windows):
        window_steps = all_steps[index * steps:(index + 1) * steps]
        first_scaled = window_steps[0][0]
        torch.testing.assert_close(window_steps[0][3]["conditioning"], video_latents[start:end], rtol=1e-4, atol=1e-4)
        start_sample = noise[:end - start] * sigmas[0]
        if index == 0:
            # The bug this guards against: noise scaled by ~14.6 instead of 700 gives std ~0.02 here.
            assert 0.9 < float(first_scaled.std()) < 1.1
        else:
            shared = result[start:start + overlap]
            start_sample = start_sample.clone()
            start_sample[:overlap] = shared + noise[:overlap] * sigmas[0]
        x0 = run_steps(window_steps, sigmas, start_sample)
        if result is None:
            result = x0
        else:
            weight = torch.linspace(0, 1, overlap).view(-1, 1, 1, 1)
            blended = x0[:overlap] * weight + result[start:start + overlap] * (1 - weight)
            result = torch.cat([result[:start], blended, x0[overlap:]])
        noise = torch.cat([noise[-overlap:], noise[:-overlap]])  # the next window's noise: rotated

    decoded = torch.cat([vae.decode(part / vae.config.scaling_factor, num_frames=part.shape[0]).sample
                         for part in result.split(8)])
    expected = (decoded / 2 + 0.5).clamp(0, 1).mean(dim=1)
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    torch.testing.assert_close(depth, expected, rtol=0, atol=1e-4)


# --- StereoCrafter -------------------------------------------------------------------------------


def scene(frames, height, width):
    generator = torch.Generator().manual_seed(3)
    warped = torch.rand(frames, height, width, 3, generator=generator)
    mask = torch.zeros(frames, height, width)
    mask[:, height // 4:height // 2, width // 3:width // 2] = 1.0
    return warped, mask


def test_inpainting_chunks_and_tiles_follow_the_sampler(stereocrafter_model):
    frames, height, width, steps, seed = 5, 128, 128, 2, 5
    warped, mask = scene(frames, height, width)
    settings = InpaintSettings(steps=steps, frames_chunk=3, overlap=1, tile_num=2, tile_overlap=64,
                               color_match="off")
    tape = UNetTape(stereocrafter_model.unet)
    try:
        inpaint_clip(stereocrafter_model, warped, mask, settings, seed=seed)
    finally:
        tape.close()
    sigmas = karras_sigmas(steps)

    # The published tiling: size int((L + o) / 2), stride size - o (pixels, tile_num 2, overlap o = 64).
    tile_h, tile_w = (height + 64) // 2, (width + 64) // 2
    tiles = [(i * (tile_h - 64), j * (tile_w - 64)) for i in range(2) for j in range(2)]
    chunks = [(0, 3), (2, 5)]
    all_steps = tape.steps(1.01)
    assert len(all_steps) == len(chunks) * len(tiles) * steps

    generator = torch.Generator().manual_seed(seed)
    vae = stereocrafter_model.vae
    for index, ((start, end), (top, left)) in enumerate((c, t) for c in chunks for t in tiles):
        count = end - start
        # The pipeline's draws for each tile: noise-augmentation noise, then the initial latents.
        torch.randn((count, 3, tile_h, tile_w), generator=generator)
        noise = torch.randn((count, 4, tile_h // 8, tile_w // 8), generator=generator)
        tile_steps = all_steps[index * steps:(index + 1) * steps]
        conditioning = tile_steps[0][3]["conditioning"]
        crop = (slice(start, end), slice(top, top + tile_h), slice(left, left + tile_w))
        holes = F.interpolate((mask[crop] >= 0.5).float().unsqueeze(1), scale_factor=1 / 8, mode="nearest")
        assert torch.equal(conditioning[:, 4:], holes)
        if start == 0:  # later chunks start from earlier output, not from the warped frames
            latents = vae.encode(warped[crop].permute(0, 3, 1, 2) * 2 - 1).latent_dist.mode()
            torch.testing.assert_close(conditioning[:, :4], latents, rtol=1e-4, atol=1e-4)
        assert 0.9 < float(tile_steps[0][0].std()) < 1.1
        run_steps(tile_steps, sigmas, noise * sigmas[0])


def test_one_chunk_output_is_the_decoded_last_step(stereocrafter_model):
    frames, height, width, steps, seed = 3, 64, 64, 3, 11
    warped, mask = scene(frames, height, width)
    settings = InpaintSettings(steps=steps, min_guidance=1.0, max_guidance=1.0, color_match="off")
    tape = UNetTape(stereocrafter_model.unet)
    try:
        output = inpaint_clip(stereocrafter_model, warped, mask, settings, seed=seed).frames
    finally:
        tape.close()
    generator = torch.Generator().manual_seed(seed)
    torch.randn((frames, 3, height, width), generator=generator)
    noise = torch.randn((frames, 4, height // 8, width // 8), generator=generator)
    sigmas = karras_sigmas(steps)
    x0 = run_steps(tape.steps(None), sigmas, noise * sigmas[0])
    vae = stereocrafter_model.vae
    decoded = torch.cat([vae.decode(part / vae.config.scaling_factor, num_frames=part.shape[0]).sample
                         for part in x0.split(2)])  # the reference decodes 2 frames at a time
    torch.testing.assert_close(output, (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1), rtol=0, atol=1e-4)
