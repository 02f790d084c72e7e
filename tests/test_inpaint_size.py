"""Inpainting at a working size with the result composited at full size, and no model work without holes."""

import pytest
import torch
import torch.nn.functional as F

from stereo_core import inpainting
from stereo_core.color import match_colors
from stereo_core.engine import ConversionJob, ConversionSettings, LoadedModels, OutputSettings, convert
from stereo_core.engine import pipeline
from stereo_core.errors import StereoInputError
from stereo_core.frames import resize_frames
from stereo_core.inpaint_size import composite_blend, composite_reach, inpaint_size
from stereo_core.inpainting import ChunkInpainter, InpaintSettings, inpaint_clip
from stereo_core.video_io import read_video, write_video
from synthetic_video import make_video

FAST = dict(steps=1, frames_chunk=4, overlap=1, color_match="off")


def scene(frames, height, width, seed=0, holes=True):
    generator = torch.Generator().manual_seed(seed)
    warped = torch.rand(frames, height, width, 3, generator=generator)
    mask = torch.zeros(frames, height, width)
    if holes:
        mask[:, height // 4:height // 2, width // 3:width // 3 + 5] = 1.0  # a thin hole, 5 px wide
        mask[:, height // 4 - 1, width // 3:width // 3 + 5] = 0.3  # a partly covered border row: not a hole
    return warped, mask


def unet_inputs(model, monkeypatch):
    """The sample shape of every UNet call."""
    shapes = []
    real = model.unet.forward

    def spy(sample, *args, **kwargs):
        shapes.append(tuple(sample.shape))
        return real(sample, *args, **kwargs)

    monkeypatch.setattr(model.unet, "forward", spy)
    return shapes


def test_working_size_is_the_references_above_max_res_and_the_frame_below():
    assert inpaint_size(1080, 1920, 1024) == (576, 1024)
    assert inpaint_size(2160, 3840, 1024) == (576, 1024)
    assert inpaint_size(576, 1024, 1024) == (576, 1024)
    assert inpaint_size(61, 83, 1024) == (61, 83)  # padded to the grid later, as before
    assert inpaint_size(1080, 1920, 0) == (1080, 1920)
    with pytest.raises(StereoInputError, match="inpaint_max_res"):
        InpaintSettings(inpaint_max_res=32).check()


@pytest.mark.parametrize("color_match", ["off", "chunk", "clip"])
def test_at_or_below_the_working_size_nothing_changes(stereocrafter_model, color_match):
    warped, mask = scene(5, 64, 96)
    settings = InpaintSettings(**{**FAST, "color_match": color_match})
    at_size = inpaint_clip(stereocrafter_model, warped, mask, settings, seed=3).frames
    full = inpaint_clip(stereocrafter_model, warped, mask, InpaintSettings(**{**FAST, "color_match": color_match},
                                                                           inpaint_max_res=0), seed=3).frames
    assert torch.equal(at_size, full)
    assert not torch.equal(at_size, warped)  # the model re-renders the whole frame below the working size


@pytest.mark.parametrize("color_match", ["off", "chunk"])
def test_above_the_working_size_only_the_grown_holes_change(stereocrafter_model, monkeypatch, color_match):
    warped, mask = scene(7, 96, 192)  # chunks 0-3 and 3-6
    settings = InpaintSettings(**{**FAST, "color_match": color_match}, inpaint_max_res=128, feather=2)
    shapes = unet_inputs(stereocrafter_model, monkeypatch)
    produced = []
    real_chunk = ChunkInpainter.chunk

    def keep(self, *args, **kwargs):
        produced.append(real_chunk(self, *args, **kwargs))
        return produced[-1]

    monkeypatch.setattr(ChunkInpainter, "chunk", keep)
    out = inpaint_clip(stereocrafter_model, warped, mask, settings, seed=0).frames

    assert out.shape == warped.shape
    assert {shape[-2:] for shape in shapes} == {(8, 16)}, "the model works at 64x128, in latents"
    assert all(done.frames.shape[1:3] == (64, 128) for done in produced)
    # Outside the holes grown by the composite's reach, the right eye is the full-size warp, exactly.
    reach = composite_reach((96, 192), (64, 128), settings.feather)
    grown = F.max_pool2d((mask >= 0.5).float().unsqueeze(1), 2 * reach + 1, 1, reach)[:, 0] > 0
    assert grown.float().mean() < 0.3
    assert torch.equal(out[~grown], warped[~grown])
    # Inside the holes it is the model's output, upsampled (colour-matched where asked).
    holes = mask >= 0.5
    assert bool((composite_blend(mask, (64, 128), settings.feather)[holes] == 1).all())
    model_frames = torch.cat([produced[0].frames, produced[1].frames[1:]])
    upsampled = resize_frames(model_frames, 96, 192)
    if color_match == "chunk":  # matched at full size, per chunk's new frames, against the warp's colours
        upsampled = torch.cat([match_colors(upsampled[new], warped[new], mask[new], "chunk", group=8)
                               for new in (slice(0, 4), slice(4, 7))])
    assert torch.equal(out[holes], upsampled[holes])
    assert not torch.allclose(out[holes], warped[holes], atol=1e-2)


def test_a_clip_without_holes_makes_no_model_call(stereocrafter_model, monkeypatch):
    shapes = unet_inputs(stereocrafter_model, monkeypatch)
    warped, mask = scene(6, 64, 96, holes=False)
    mask[:, 10, 10] = 0.4  # partly covered pixels are not holes
    for max_res in (1024, 64):
        result = inpaint_clip(stereocrafter_model, warped, mask, InpaintSettings(**{**FAST, "color_match": "chunk"},
                                                                                 inpaint_max_res=max_res), seed=0)
        assert result.unet_calls == 0 and torch.equal(result.frames, warped)
    assert shapes == []


def run_forcing_the_model(monkeypatch, force, call):
    """`call()` with every chunk and tile sent to the model (force) or with the skips."""
    if force:
        monkeypatch.setattr(inpainting, "has_holes", lambda mask: True)
    else:
        monkeypatch.undo()
    return call()


def test_a_skipped_chunk_draws_the_same_noise_so_later_chunks_are_unchanged(stereocrafter_model, monkeypatch):
    """Chunk 0 has no holes. Without an overlap, nothing of it reaches chunk 1: chunk 1 must come out the same
    as when chunk 0 is sent to the model. (With an overlap, chunk 1 reuses chunk 0's frames, which are then the
    warp instead of the model's re-rendering of it: the one intended difference.)"""
    warped, mask = scene(8, 64, 96)
    mask[:4] = 0
    settings = InpaintSettings(**{**FAST, "overlap": 0})
    results = [run_forcing_the_model(monkeypatch, force, lambda: inpaint_clip(
        stereocrafter_model, warped, mask, settings, seed=2)) for force in (True, False)]
    forced, skipped = results
    assert forced.unet_calls == 2 * skipped.unet_calls
    assert torch.equal(skipped.frames[:4], warped[:4]) and not torch.equal(forced.frames[:4], warped[:4])
    assert torch.equal(skipped.frames[4:], forced.frames[4:])


def test_tiles_without_holes_are_skipped_with_the_same_noise(stereocrafter_model, monkeypatch):
    warped, mask = scene(3, 128, 256)
    mask[:] = 0
    mask[:, 8:20, 8:20] = 1  # only the top-left tile's region (128 px tiles, 64 px overlap) has a hole
    settings = InpaintSettings(**{**FAST, "frames_chunk": 3, "overlap": 0}, tile_num=2, tile_overlap=64)
    states = []

    def call():
        generator = torch.Generator().manual_seed(1)
        inpaint = ChunkInpainter(stereocrafter_model, settings, generator)
        with torch.no_grad():
            inpaint.chunk(warped, mask)
        states.append(generator.get_state())
        return inpaint.unet_calls

    calls = [run_forcing_the_model(monkeypatch, force, call) for force in (True, False)]
    assert calls == [4 * 2, 1 * 2]  # four tiles, guidance 1.01: two UNet passes per step
    assert torch.equal(states[0], states[1])


def test_a_killed_run_resumes_exactly_with_the_carry_at_the_working_size(tmp_path, stereocrafter_model,
                                                                         monkeypatch):
    source = make_video(tmp_path / "clip.mp4", frames=9, width=160, height=64)
    near = torch.full((9, 64, 160, 3), 0.2)
    near[:, 16:40, 60:100] = 0.9  # a near box: holes beside it in the right eye
    depth = write_video(tmp_path / "depth.mp4", near, 24)
    inpaint = InpaintSettings(steps=1, frames_chunk=4, overlap=2, inpaint_max_res=128)
    settings = ConversionSettings(inpaint=inpaint, seed=1, output=OutputSettings(segment_frames=2))
    models = LoadedModels({"stereocrafter": stereocrafter_model})

    def job(name):
        return ConversionJob(source=source, outputs={"stereo": tmp_path / f"{name}.mp4"},
                             work_dir=tmp_path / f"{name}-work", depth_video=depth)

    carried = []
    real_compute = pipeline._RightEyes._compute

    def compute(self, index):
        if self.carry is not None:
            carried.append(tuple(self.carry.shape))
        return real_compute(self, index)

    monkeypatch.setattr(pipeline._RightEyes, "_compute", compute)
    convert(job("whole"), settings, models)
    assert carried and all(shape[1:3] == (64, 128) for shape in carried)

    def killed(self, index):
        if index == 2:
            raise KeyboardInterrupt
        return real_compute(self, index)

    monkeypatch.setattr(pipeline._RightEyes, "_compute", killed)
    with pytest.raises(KeyboardInterrupt):
        convert(job("resumed"), settings, models)
    monkeypatch.setattr(pipeline._RightEyes, "_compute", real_compute)
    convert(job("resumed"), settings, models)
    assert torch.equal(read_video(tmp_path / "resumed.mp4").frames, read_video(tmp_path / "whole.mp4").frames)


def test_a_tile_without_holes_is_its_frames_through_the_vae(stereocrafter_model):
    """The latents standing in for a tile that is not denoised decode back to its frames as the VAE alone
    does (scaled as the denoised latents are)."""
    warped, _ = scene(2, 64, 96)
    inpaint = ChunkInpainter(stereocrafter_model, InpaintSettings(**FAST), torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = inpaint(warped, torch.zeros(2, 64, 96))
        vae = stereocrafter_model.vae
        pixels = F.pad(warped.permute(0, 3, 1, 2) * 2 - 1, (0, 32, 0, 0), mode="replicate")  # padded to 64x128
        expected = vae.decode(vae.encode(pixels).latent_dist.mode(), num_frames=2).sample[..., :96]
    assert inpaint.unet_calls == 0
    torch.testing.assert_close(out, (expected / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1), atol=1e-5, rtol=0)
