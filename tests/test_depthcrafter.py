"""DepthCrafter pipeline on tiny random-weight models: windows, blending, seeds, sizes, memory bounds."""

import pytest
import torch
from reference_depthcrafter import reference_depth, reference_working_size

from stereo_core.depthcrafter import (
    DepthCrafterSettings,
    Window,
    blend_overlap,
    count_unet_calls,
    estimate_depth,
    plan_windows,
    working_size,
)

FAST = dict(steps=2, window=6, overlap=2)


def clip_of(frames, height=64, width=64, seed=0):
    return torch.rand(frames, height, width, 3, generator=torch.Generator().manual_seed(seed))


class UNetRecorder:
    """Records the frames and conditioning of every UNet call."""

    def __init__(self, model):
        self.calls = []
        self._handle = model.unet.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        self.calls.append({"frames": args[0].shape[1], "embeddings": kwargs["encoder_hidden_states"][0].clone()})

    def close(self):
        self._handle.remove()


@pytest.mark.parametrize("size, max_res, expected", [
    ((272, 640), 1024, (256, 640)),     # rounded to the nearest multiple of 64
    ((1080, 1920), 1024, (576, 1024)),  # over max_res: scaled from the original size
    ((576, 1024), 1024, (576, 1024)),
    ((60, 90), 1024, (64, 64)),
    ((20, 33), 1024, (64, 64)),         # never below one 64 px block
    ((720, 1280), 512, (256, 512)),     # 288 / 64 = 4.5 rounds to even, as Python's round
])
def test_working_size(size, max_res, expected):
    assert working_size(*size, max_res) == expected


def test_working_size_matches_reference_rounding_on_a_grid():
    for height in range(40, 1300, 37):
        for width in range(40, 2000, 53):
            ours = working_size(height, width, 1024)
            reference = reference_working_size(height, width, 1024)
            if min(reference) >= 64:
                assert ours == reference, (height, width)


@pytest.mark.parametrize("frames, expected", [
    (10, [Window(0, 10, 0)]),                                       # shorter than a window
    (70, [Window(0, 70, 0)]),                                       # exactly one window
    (71, [Window(0, 70, 0), Window(45, 71, 25)]),
    (115, [Window(0, 70, 0), Window(45, 115, 25)]),                 # stops once start >= T - overlap
    (116, [Window(0, 70, 0), Window(45, 115, 25), Window(90, 116, 25)]),
])
def test_window_plan_with_reference_defaults(frames, expected):
    assert plan_windows(frames, 70, 25) == expected


@pytest.mark.parametrize("window, overlap", [(70, 25), (6, 2), (5, 4), (8, 0)])
def test_windows_cover_every_frame_and_overlap_the_previous_one(window, overlap):
    for frames in range(1, 60):
        plan = plan_windows(frames, window, overlap)
        assert plan[0].start == 0 and plan[-1].end == frames
        for before, after in zip(plan, plan[1:]):
            assert after.start == before.end - overlap == before.end - after.blend
            assert after.frames > after.blend


@pytest.mark.parametrize("frames", [5, 6, 11])
def test_unet_calls_and_the_frames_each_window_covers(depthcrafter_model, frames):
    recorder = UNetRecorder(depthcrafter_model)
    try:
        result = estimate_depth(depthcrafter_model, clip_of(frames), DepthCrafterSettings(**FAST), seed=1)
    finally:
        recorder.close()
    plan = plan_windows(frames, 6, 2)
    expected_frames = [w.frames for w in plan for _ in range(2 * 2)]  # steps x (cond + uncond)
    assert [call["frames"] for call in recorder.calls] == expected_frames
    assert result.unet_calls == len(recorder.calls) == count_unet_calls(frames, DepthCrafterSettings(**FAST))
    # Each window is conditioned on the embeddings of exactly its own frames (and zeros for the second pass).
    calls = iter(recorder.calls)
    for window in plan:
        for _ in range(2):
            conditional, unconditional = next(calls), next(calls)
            assert not torch.equal(conditional["embeddings"][0], conditional["embeddings"][-1]) or window.frames == 1
            assert torch.count_nonzero(unconditional["embeddings"]) == 0


def test_guidance_one_skips_the_unconditional_pass(depthcrafter_model):
    guided = estimate_depth(depthcrafter_model, clip_of(11), DepthCrafterSettings(**FAST, guidance=1.2), seed=0)
    unguided = estimate_depth(depthcrafter_model, clip_of(11), DepthCrafterSettings(**FAST, guidance=1.0), seed=0)
    assert unguided.unet_calls * 2 == guided.unet_calls == 3 * 2 * 2


@pytest.mark.parametrize("frames, window, overlap, guidance", [
    (5, 6, 2, 1.2),    # shorter than a window
    (6, 6, 2, 1.2),    # one full window
    (11, 6, 2, 1.2),   # three windows, two blends, rotated noise
    (9, 4, 3, 1.0),    # heavy overlap (windows shorter than twice the overlap), no guidance
])
def test_matches_the_straightforward_whole_clip_reference(depthcrafter_model, frames, window, overlap, guidance):
    video = clip_of(frames, 60, 90, seed=frames)
    settings = DepthCrafterSettings(steps=2, guidance=guidance, window=window, overlap=overlap, encode_chunk=3,
                                    decode_chunk=4)
    ours = estimate_depth(depthcrafter_model, video, settings, seed=7).depth
    expected = reference_depth(depthcrafter_model, video, steps=2, guidance=guidance, window=window,
                               overlap=overlap, seed=7, decode_chunk=4)
    assert ours.shape == expected.shape == (frames, 60, 90)
    # Initial noise at sigma 700 magnifies float rounding of chunked vs whole-clip work to a few 1e-5.
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=0)


def test_overlap_blend_fades_from_the_earlier_to_the_later_window():
    earlier, later = torch.zeros(5, 4, 2, 2), torch.ones(5, 4, 2, 2)
    blended = blend_overlap(earlier, later)
    assert blended[:, 0, 0, 0].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert torch.equal(blend_overlap(earlier[:1], later[:1]), earlier[:1])  # one shared frame keeps the earlier


def test_same_seed_same_depth_other_seed_other_depth(depthcrafter_model):
    video = clip_of(7)
    settings = DepthCrafterSettings(**FAST)
    first = estimate_depth(depthcrafter_model, video, settings, seed=11).depth
    again = estimate_depth(depthcrafter_model, video, settings, generator=torch.Generator().manual_seed(11)).depth
    other = estimate_depth(depthcrafter_model, video, settings, seed=12).depth
    assert torch.equal(first, again)
    assert not torch.allclose(first, other, atol=1e-4)


def test_given_latents_replace_the_drawn_initial_noise(depthcrafter_model):
    video = clip_of(7)
    settings = DepthCrafterSettings(**FAST, noise_aug=0.0)
    latents = torch.randn(6, 4, 8, 8, generator=torch.Generator().manual_seed(99))
    a = estimate_depth(depthcrafter_model, video, settings, seed=1, latents=latents).depth
    b = estimate_depth(depthcrafter_model, video, settings, seed=2, latents=latents.unsqueeze(0)).depth
    c = estimate_depth(depthcrafter_model, video, settings, seed=2).depth
    assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-4)
    with pytest.raises(ValueError, match=r"latents must be shaped \(6, 4, 8, 8\)"):
        estimate_depth(depthcrafter_model, video, settings, latents=torch.zeros(5, 4, 8, 8))


@pytest.mark.parametrize("frames, height, width", [(1, 37, 53), (3, 64, 128), (2, 100, 30)])
def test_any_size_and_a_single_frame(depthcrafter_model, frames, height, width):
    result = estimate_depth(depthcrafter_model, clip_of(frames, height, width), DepthCrafterSettings(**FAST), seed=0)
    assert result.depth.shape == (frames, height, width)
    assert result.depth.device.type == "cpu" and result.depth.dtype == torch.float32
    assert torch.isfinite(result.depth).all()
    assert result.resized == ((height, width) != result.working_size)
    assert ("resized back" in result.describe()) == result.resized


def test_depth_is_min_max_normalised_over_the_whole_clip(depthcrafter_model):
    # At a working-size input nothing is resized, so the clip's extremes are exactly 0 and 1.
    result = estimate_depth(depthcrafter_model, clip_of(7, 64, 128), DepthCrafterSettings(**FAST), seed=0)
    depth = result.depth
    assert float(depth.min()) == 0.0 and float(depth.max()) == 1.0
    per_frame_max = depth.flatten(1).amax(dim=1)
    assert float(per_frame_max.min()) < 1.0  # one range for the clip, not per frame


def test_device_work_is_bounded_by_chunks_and_windows(depthcrafter_model):
    seen = {"encoder": [], "vae_encode": [], "vae_decode": [], "unet": []}
    model = depthcrafter_model
    hooks = [
        model.image_encoder.register_forward_pre_hook(
            lambda m, a, k: seen["encoder"].append(k["pixel_values"].shape[0]), with_kwargs=True),
        model.unet.register_forward_pre_hook(lambda m, a: seen["unet"].append(a[0].shape[1])),
    ]
    encode, decode = model.vae.encode, model.vae.decode
    model.vae.encode = lambda x, *a, **k: (seen["vae_encode"].append(x.shape[0]), encode(x, *a, **k))[1]
    model.vae.decode = lambda z, *a, **k: (seen["vae_decode"].append(z.shape[0]), decode(z, *a, **k))[1]
    try:
        settings = DepthCrafterSettings(steps=1, window=6, overlap=2, encode_chunk=4, decode_chunk=3)
        estimate_depth(model, clip_of(23), settings, seed=0)
    finally:
        for hook in hooks:
            hook.remove()
        del model.vae.encode, model.vae.decode
    assert seen["encoder"] == seen["vae_encode"] == [4, 4, 4, 4, 4, 3]
    assert seen["vae_decode"] == [3] * 7 + [2]
    assert max(seen["unet"]) == 6


def test_progress_counts_every_chunk_and_step_and_can_cancel(depthcrafter_model):
    reports = []
    settings = DepthCrafterSettings(**FAST, encode_chunk=4, decode_chunk=4)
    estimate_depth(depthcrafter_model, clip_of(11), settings, seed=0, progress=lambda d, t: reports.append((d, t)))
    total = 2 * 3 + 3 * 2 + 3  # CLIP and VAE chunks, windows x steps, decode chunks
    assert reports == [(i, total) for i in range(1, total + 1)]

    class Cancelled(Exception):
        pass

    def cancel_in_second_window(done, total):
        if done == 2 * 3 + 3:
            raise Cancelled

    recorder = UNetRecorder(depthcrafter_model)
    try:
        with pytest.raises(Cancelled):
            estimate_depth(depthcrafter_model, clip_of(11), settings, seed=0, progress=cancel_in_second_window)
    finally:
        recorder.close()
    assert len(recorder.calls) == 3 * 2  # stopped after the first step of the second window


@pytest.mark.parametrize("settings, message", [
    (dict(window=6, overlap=6), "overlap \\(6\\) must be at least 0 and smaller than window \\(6\\)"),
    (dict(window=4, overlap=9), "smaller than window"),
    (dict(steps=0), "steps must be at least 1"),
    (dict(guidance=0.5), "guidance must be at least 1.0"),
])
def test_bad_settings_are_named(depthcrafter_model, settings, message):
    with pytest.raises(ValueError, match=message):
        estimate_depth(depthcrafter_model, clip_of(3), DepthCrafterSettings(**settings), seed=0)


def test_bad_clips_are_named(depthcrafter_model):
    with pytest.raises(ValueError, match="empty \\(0 frames\\)"):
        estimate_depth(depthcrafter_model, torch.zeros(0, 64, 64, 3), DepthCrafterSettings(**FAST))
    nan_clip = clip_of(3)
    nan_clip[1, 5, 5, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite values \\(frames 1\\)"):
        estimate_depth(depthcrafter_model, nan_clip, DepthCrafterSettings(**FAST))


def test_a_model_of_the_other_kind_is_refused(depthcrafter_model):
    import copy

    other = copy.copy(depthcrafter_model)
    other.kind = "stereocrafter"
    with pytest.raises(ValueError, match="needs a DepthCrafter model, but a StereoCrafter model is connected"):
        estimate_depth(other, clip_of(2), DepthCrafterSettings(**FAST))
