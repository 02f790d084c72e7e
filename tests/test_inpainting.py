"""StereoCrafter inpainting on tiny random-weight models: chunks, tiles, full frame, seeds, fallbacks."""

import pytest
import torch

from stereo_core import inpainting
from stereo_core.color import match_colors
from stereo_core.inpainting import Chunk, InpaintSettings, blend_tiles, inpaint_clip, plan_chunks, plan_tiles

FAST = dict(steps=1, frames_chunk=4, overlap=1, color_match="off")


def reference_chunks(frames, chunk=23, overlap=3):
    """The published script's loop, transcribed: (start, end, frames replaced by earlier output)."""
    plan, generated = [], False
    for i in range(0, frames, chunk - overlap):
        if i + overlap >= frames:
            break
        if generated and i + chunk > frames:
            cur_i = max(frames + overlap - chunk, 0)
            cur_overlap = i - cur_i + overlap
        else:
            cur_i, cur_overlap = i, overlap
        plan.append((cur_i, min(cur_i + chunk, frames), cur_overlap if generated else 0))
        generated = True
    return plan


def scene(frames, height=64, width=96, seed=0):
    generator = torch.Generator().manual_seed(seed)
    warped = torch.rand(frames, height, width, 3, generator=generator)
    mask = torch.zeros(frames, height, width)
    mask[:, height // 4:height // 2, width // 3:width // 2] = 1.0  # one compact hole per frame
    return warped, mask


@pytest.mark.parametrize("frames", [1, 3, 22, 23, 24, 43, 44, 100])
def test_chunk_plan(frames):
    plan = plan_chunks(frames, 23, 3)
    if frames > 3:
        assert [(c.start, c.end, c.reused) for c in plan] == reference_chunks(frames)
    else:  # the reference produces nothing for clips no longer than the overlap; we make one chunk
        assert plan == [Chunk(0, frames, 0)]
    produced = [f for c in plan for f in range(c.start + c.reused, c.end)]
    assert produced == list(range(frames))  # every output frame exactly once, in order
    for earlier, later in zip(plan, plan[1:]):
        assert later.start + later.reused <= earlier.end  # reused frames were already produced
        assert later.end == frames or later.frames == 23


def test_chunk_plan_examples():
    assert plan_chunks(44, 23, 3) == [Chunk(0, 23, 0), Chunk(20, 43, 3), Chunk(24, 44, 19)]
    assert plan_chunks(24, 23, 3) == [Chunk(0, 23, 0), Chunk(4, 24, 19)]


def reference_tile_layout(pixels, count, overlap_px=128):
    """The published script's tile arithmetic, transcribed (pixels): (tile size, stride)."""
    size = int((pixels + overlap_px * (count - 1)) / count)
    return size, size - overlap_px


def reference_tiled_assembly(frames, count, process, overlap_px=128):
    """The published script's spatial tiling, transcribed: crop tiles at i * stride, turn each into latents,
    blend in place in row-major order (top rows with the tile above, then left columns with the tile on
    the left, new tile weighing k / o), keep the first stride of all but the last tile in each direction."""
    (size_h, stride_h), (size_w, stride_w) = (reference_tile_layout(frames.shape[-2], count, overlap_px),
                                              reference_tile_layout(frames.shape[-1], count, overlap_px))
    grid = [[process(frames[..., i * stride_h:i * stride_h + size_h, j * stride_w:j * stride_w + size_w])
             for j in range(count)] for i in range(count)]
    fade = overlap_px // 8
    ramp = torch.arange(fade) / fade
    for i in range(count):
        for j in range(count):
            tile = grid[i][j]
            if i > 0:
                above = grid[i - 1][j]
                tile[..., :fade, :] = (1 - ramp.view(-1, 1)) * above[..., -fade:, :] + ramp.view(-1, 1) * tile[..., :fade, :]
            if j > 0:
                left = grid[i][j - 1]
                tile[..., :, :fade] = (1 - ramp) * left[..., :, -fade:] + ramp * tile[..., :, :fade]
    rows = [torch.cat([tile if j == count - 1 else tile[..., :stride_w // 8] for j, tile in enumerate(row)], dim=-1)
            for row in grid]
    return torch.cat([row if i == count - 1 else row[..., :stride_h // 8, :] for i, row in enumerate(rows)], dim=-2)


def fake_tile_latents(crop):
    """Stands in for the diffusion of one tile: latents that depend on the crop's content and its size."""
    pooled = torch.nn.functional.avg_pool2d(crop[:, :3], 8)
    return torch.cat([pooled, pooled.mean(dim=1, keepdim=True) * crop.shape[-1] / 100], dim=1)


@pytest.mark.parametrize("pixels", range(128, 1281, 64))
@pytest.mark.parametrize("count", [2, 3, 4, 5, 8])
def test_tile_positions_are_the_references_where_it_has_them(pixels, count):
    size_px, stride_px = reference_tile_layout(pixels, count)
    length = pixels // 8
    try:
        grid = plan_tiles(length, count, 16)
    except ValueError:  # ours refuses only tiles not larger than the overlap or not smaller than the frame
        assert stride_px <= 0 or size_px >= pixels
        return
    assert grid.starts[0] == 0 and grid.starts[-1] + grid.size == length  # the whole frame, edge to edge
    assert min(grid.overlaps()) >= 16 and grid.fade == 16
    if size_px % 8 == 0:
        assert grid.size * 8 == size_px
        assert [start * 8 for start in grid.starts] == [k * stride_px for k in range(count)]
    else:  # the reference's pipeline refuses tiles that are not multiples of 8 px; ours rounds up
        assert grid.size == -(-size_px // 8)


@pytest.mark.parametrize("mode", ["reference", "crossfade"])
@pytest.mark.parametrize("length, count, overlap", [(72, 2, 16), (135, 3, 16), (40, 2, 8), (200, 5, 16)])
def test_tile_blending_reproduces_an_input_when_each_tile_is_unchanged(length, count, overlap, mode):
    latents = torch.randn(3, 4, length, length + 13, generator=torch.Generator().manual_seed(length))
    rows = plan_tiles(length, count, overlap)
    cols = plan_tiles(length + 13, count, overlap)
    assert min(rows.overlaps() + cols.overlaps()) >= overlap
    assert rows.starts[-1] + rows.size == length and cols.starts[-1] + cols.size == length + 13
    tiles = [[latents[..., top:top + rows.size, left:left + cols.size] for left in cols.starts] for top in rows.starts]
    torch.testing.assert_close(blend_tiles(tiles, rows, cols, mode), latents, rtol=0, atol=1e-6)


@pytest.mark.parametrize("height, width, count", [(256, 384, 2), (192, 320, 2), (512, 512, 3), (320, 512, 3),
                                                  (512, 704, 3), (448, 576, 4)])
def test_tiled_latents_match_the_published_tiling(height, width, count):
    frames = torch.rand(2, 4, height, width, generator=torch.Generator().manual_seed(height + width))
    expected = reference_tiled_assembly(frames.clone(), count, fake_tile_latents)

    class FakeDenoiser:
        model = type("model", (), {"vae_scale_factor": 8})()
        settings = InpaintSettings(tile_num=count)

        def __call__(self, tile_frames, tile_mask, latents):
            return fake_tile_latents(torch.cat([tile_frames, tile_mask], dim=1))

    ours = inpainting._tiled_latents(FakeDenoiser(), frames[:, :3], frames[:, 3:], count, 128, None)
    assert ours.shape == (2, 4, height // 8, width // 8)
    assert torch.equal(ours, expected)


def test_reference_blend_mixes_corners_twice_and_crossfade_bilinearly():
    rows = cols = plan_tiles(40, 2, 8)  # tiles of 24 at 0 and 16
    constant = [[torch.full((1, 1, 24, 24), float(2 * i + j)) for j in range(2)] for i in range(2)]  # 0 1 / 2 3
    reference = blend_tiles([[t.clone() for t in row] for row in constant], rows, cols, "reference")
    crossfade = blend_tiles(constant, rows, cols, "crossfade")
    away = torch.ones(40, 40, dtype=torch.bool)
    away[16:24, 16:24] = False  # everything but the corner where all four tiles meet agrees
    torch.testing.assert_close(reference[0, 0][away], crossfade[0, 0][away], rtol=0, atol=1e-6)
    w = torch.arange(8) / 8
    bilinear = (1 - w).view(-1, 1) * w.view(1, -1) * 1 + w.view(-1, 1) * (1 - w).view(1, -1) * 2 + torch.outer(w, w) * 3
    twice = ((1 - w).view(1, -1) * (w.view(-1, 1) * 2) + w.view(1, -1) * ((1 - w).view(-1, 1) * w.view(1, -1)
             + w.view(-1, 1) * 3))
    torch.testing.assert_close(crossfade[0, 0, 16:24, 16:24], bilinear, rtol=0, atol=1e-6)
    torch.testing.assert_close(reference[0, 0, 16:24, 16:24], twice, rtol=0, atol=1e-6)


def test_tile_blend_fades_linearly_across_the_overlap():
    rows, cols = plan_tiles(8, 1, 0), plan_tiles(24, 2, 8)
    assert cols.starts == (0, 8) and cols.overlaps() == [8]
    left, right = torch.zeros(1, 1, 8, 16), torch.ones(1, 1, 8, 16)
    for mode in ("reference", "crossfade"):
        blended = blend_tiles([[left, right]], rows, cols, mode)[0, 0, 0]
        assert blended[:8].tolist() == [0.0] * 8
        assert blended[8:16].tolist() == [k / 8 for k in range(8)]
        assert blended[16:].tolist() == [1.0] * 8


def test_too_many_tiles_for_the_frame_is_named():
    with pytest.raises(ValueError, match="tile_num 3 makes tiles of .* Use a smaller tile_num"):
        plan_tiles(16, 3, 16)


@pytest.mark.parametrize("height, width", [(61, 83), (64, 96), (37, 130)])
def test_output_has_the_input_size(stereocrafter_model, height, width):
    warped, mask = scene(3, height, width)
    result = inpaint_clip(stereocrafter_model, warped, mask, InpaintSettings(**FAST), seed=0)
    assert result.frames.shape == (3, height, width, 3)
    assert torch.isfinite(result.frames).all() and result.frames.device.type == "cpu"


def test_chunks_feed_their_output_to_the_next_chunk(stereocrafter_model, monkeypatch):
    seen = []
    real = inpainting._Denoiser.__call__

    def spy(self, frames, mask, latents):
        seen.append(frames.clone())
        return real(self, frames, mask, latents)

    monkeypatch.setattr(inpainting._Denoiser, "__call__", spy)
    warped, mask = scene(7)
    result = inpaint_clip(stereocrafter_model, warped, mask, InpaintSettings(**FAST), seed=0)
    assert [c for c in result.chunks] == [Chunk(0, 4, 0), Chunk(3, 7, 1)]
    # The second chunk's first frame is the first chunk's last output, not the warped input.
    first_output = result.frames[3].permute(2, 0, 1) * 2 - 1
    torch.testing.assert_close(seen[1][0, :, :64, :96], first_output, atol=1e-6, rtol=0)
    torch.testing.assert_close(seen[1][1, :, :64, :96], warped[4].permute(2, 0, 1) * 2 - 1, atol=1e-6, rtol=0)


def test_guidance_one_halves_the_unet_calls(stereocrafter_model):
    warped, mask = scene(6)
    guided = inpaint_clip(stereocrafter_model, warped, mask, InpaintSettings(**FAST), seed=0)
    plain = inpaint_clip(stereocrafter_model, warped, mask,
                         InpaintSettings(**FAST, min_guidance=1.0, max_guidance=1.0), seed=0)
    assert guided.unet_calls == 2 * plain.unet_calls == 2 * len(guided.chunks)


def test_same_seed_same_result_and_given_latents(stereocrafter_model):
    warped, mask = scene(3)
    settings = InpaintSettings(**FAST)
    a = inpaint_clip(stereocrafter_model, warped, mask, settings, seed=4).frames
    b = inpaint_clip(stereocrafter_model, warped, mask, settings, generator=torch.Generator().manual_seed(4)).frames
    c = inpaint_clip(stereocrafter_model, warped, mask, settings, seed=5).frames
    assert torch.equal(a, b) and not torch.allclose(a, c, atol=1e-4)
    latents = torch.randn(3, 4, 8, 16, generator=torch.Generator().manual_seed(0))  # padded to 64x128
    d = inpaint_clip(stereocrafter_model, warped, mask, settings, seed=1, latents=latents).frames
    e = inpaint_clip(stereocrafter_model, warped, mask, settings, seed=2, latents=latents).frames
    assert torch.equal(d, e)  # noise_aug is 0, so the latents are the only randomness


def test_keep_unmasked_leaves_pixels_away_from_holes_exactly_warped(stereocrafter_model):
    warped, mask = scene(3)
    settings = InpaintSettings(**{**FAST, "color_match": "chunk"}, keep_unmasked=True, feather=2)
    out = inpaint_clip(stereocrafter_model, warped, mask, settings, seed=0).frames
    far = torch.ones(64, 96, dtype=torch.bool)
    far[16 - 8:32 + 8, 32 - 8:48 + 8] = False
    assert torch.equal(out[:, far], warped[:, far])
    assert not torch.allclose(out[:, 20:28, 36:44], warped[:, 20:28, 36:44], atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precisions_run(stereocrafter_model, dtype):
    import copy

    model = copy.deepcopy(stereocrafter_model)
    model.unet.to(dtype)
    model.image_encoder.to(dtype)
    model.dtype = dtype
    warped, mask = scene(2)
    out = inpaint_clip(model, warped, mask, InpaintSettings(**FAST), seed=0).frames
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_out_of_memory_retries_with_more_tiles(stereocrafter_model, monkeypatch):
    real = inpainting._Denoiser.__call__
    sizes = []

    def tight_memory(self, frames, mask, latents):
        sizes.append(tuple(frames.shape[-2:]))
        if frames.shape[-1] > 192:
            raise inpainting.OutOfMemoryError("simulated")
        return real(self, frames, mask, latents)

    monkeypatch.setattr(inpainting._Denoiser, "__call__", tight_memory)
    warped, mask = scene(2, 192, 256)
    result = inpaint_clip(stereocrafter_model, warped, mask, InpaintSettings(**FAST, tile_overlap=64), seed=0)
    assert result.tile_num_used == 2 and result.frames.shape == (2, 192, 256, 3)
    assert sizes[0] == (192, 256) and all(size[1] <= 192 for size in sizes[1:]) and len(sizes) == 5

    def never_fits(self, frames, mask, latents):
        raise inpainting.OutOfMemoryError("simulated")

    monkeypatch.setattr(inpainting._Denoiser, "__call__", never_fits)
    with pytest.raises(ValueError, match="Out of GPU memory even with 8x8 tiles. Lower frames_chunk"):
        inpaint_clip(stereocrafter_model, warped, mask, InpaintSettings(**FAST, tile_overlap=64), seed=0)


def test_color_match_moves_statistics_to_the_reference():
    generator = torch.Generator().manual_seed(0)
    reference = torch.rand(4, 16, 16, 3, generator=generator) * 0.5 + 0.25
    drifted = (reference * 0.8 + torch.tensor([0.15, 0.0, -0.05])).clamp(0, 1)
    matched = match_colors(drifted, reference, mode="clip")
    assert (matched - reference).abs().mean() < 0.25 * (drifted - reference).abs().mean()
    assert torch.equal(match_colors(drifted, reference, mode="off"), drifted)
    # Masked pixels are left out of the statistics: wild values there change nothing.
    mask = torch.zeros(4, 16, 16)
    mask[:, :4] = 1
    wild = drifted.clone()
    wild[:, :4] = 1.0
    torch.testing.assert_close(match_colors(wild, reference, mask=mask)[:, 4:],
                               match_colors(drifted, reference, mask=mask)[:, 4:], atol=1e-5, rtol=0)


def test_bad_inputs_are_named(stereocrafter_model, depthcrafter_model, caplog):
    warped, mask = scene(3)
    with pytest.raises(ValueError, match="'mask' has 2 frames but 'warped' has 3"):
        inpaint_clip(stereocrafter_model, warped, mask[:2], InpaintSettings(**FAST))
    with pytest.raises(ValueError, match="'mask' is 90x64 but 'warped' is 96x64"):
        inpaint_clip(stereocrafter_model, warped, mask[:, :, :90], InpaintSettings(**FAST))
    with pytest.raises(ValueError, match="needs a StereoCrafter model, but a DepthCrafter model is connected"):
        inpaint_clip(depthcrafter_model, warped, mask, InpaintSettings(**FAST))
    with pytest.raises(ValueError, match="overlap \\(4\\) must be at least 0 and smaller than frames_chunk \\(4\\)"):
        inpaint_clip(stereocrafter_model, warped, mask, InpaintSettings(**{**FAST, "overlap": 4}))
    with pytest.raises(ValueError, match="tile_num 3 makes tiles"):
        inpaint_clip(stereocrafter_model, warped, mask, InpaintSettings(**FAST, tile_num=3))
    with caplog.at_level("WARNING"):
        out = inpaint_clip(stereocrafter_model, warped, mask * 2 - 0.5, InpaintSettings(**FAST), seed=0)
    assert "clamped to 0..1" in caplog.text and out.frames.shape == warped.shape


def test_inpaint_node_and_its_progress(nodes, stereocrafter_model, fake_comfy):
    warped, mask = scene(7)
    node = nodes["SC3D_StereoCrafterInpaintChunked"]()
    args = dict(steps=2, guidance=1.01, min_guidance=1.01, frames_chunk=4, overlap=1, tile_num=1,
                color_match="chunk", keep_unmasked=False, seed=0)
    (right,) = node.inpaint(stereocrafter_model, warped, mask, **args, left=warped)
    assert right.shape == warped.shape
    assert fake_comfy.updates == [(i, 4) for i in range(1, 5)]  # 2 chunks x 2 steps
    fake_comfy.updates.clear()
    fake_comfy.cancel_after = 1
    from conftest import Cancelled

    with pytest.raises(Cancelled):
        node.inpaint(stereocrafter_model, warped, mask, **args)


def test_stereocrafter_loader_errors_name_the_folders(nodes, models_dir):
    loader = nodes["SC3D_StereoCrafterModelLoader"]()
    with pytest.raises(ValueError) as error:
        loader.load("stable-video-diffusion-img2vid-xt-1-1", "DepthCrafter", "fp32", "keep on GPU")
    message = str(error.value)
    assert "It looks like the DepthCrafter download" in message
    assert "unet_diffusers/config.json" in message and "TencentARC/StereoCrafter" in message


def test_color_match_node(nodes):
    generator = torch.Generator().manual_seed(1)
    reference = torch.rand(3, 8, 8, 3, generator=generator)
    drifted = (reference * 0.7 + 0.2).clamp(0, 1)
    (matched,) = nodes["SC3D_StereoColorMatch"]().match(drifted, reference, "frame", 20, 1.0)
    assert matched.shape == drifted.shape
    assert (matched - reference).abs().mean() < 0.3 * (drifted - reference).abs().mean()
    (unchanged,) = nodes["SC3D_StereoColorMatch"]().match(drifted, reference, "clip", 20, 0.0)
    assert torch.equal(unchanged, drifted)
