"""Depth -> disparity settings and whole-clip warping."""

import pytest
import torch

from reference_loops import splat_loops
from stereo_core.disparity import DisparitySettings
from stereo_core.errors import StereoInputError
from stereo_core.splatting import occlusion_from_depth, warp_clip

# The fixtures' frames are 40 px wide: the default 20 px would let the holes cover them.
SETTINGS = DisparitySettings(max_disp=8.0)


def test_default_settings_reproduce_the_reference_disparity():
    # The fixtures' scene at 64 px wide, room for the default 20 px.
    clip = torch.rand(4, 24, 64, 3, generator=torch.Generator().manual_seed(0))
    depth = torch.linspace(0, 0.3, 64).expand(4, 24, 64).clone()
    depth[:, 6:18, 22:42] = 0.9
    right, occlusion = warp_clip(clip, depth.unsqueeze(-1).expand(-1, -1, -1, 3))
    normalized = (depth - depth.min()) / (depth.max() - depth.min())  # whole-clip min-max
    ref_right, ref_occlusion = splat_loops(clip, (normalized * 2 - 1) * 20.0)
    torch.testing.assert_close(right.double(), ref_right, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(occlusion.double(), ref_occlusion, atol=2e-6, rtol=0)


def expected_disparity(depth, settings, width):
    return (depth - settings.convergence) * 2 * settings.pixels(width)


@pytest.mark.parametrize("settings", [
    DisparitySettings(max_disp=2.5, unit="percent"),
    DisparitySettings(max_disp=6.0, convergence=0.2),
    DisparitySettings(max_disp=6.0, invert=True),
    DisparitySettings(max_disp=6.0, normalize="none"),
])
def test_settings_change_the_disparity_as_documented(clip, settings):
    depth = torch.rand(4, 24, 40, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25
    right, _ = warp_clip(clip, depth, settings)
    normalized = depth if settings.normalize == "none" else (depth - depth.min()) / (depth.max() - depth.min())
    if settings.invert:
        normalized = 1 - normalized
    ref_right, _ = splat_loops(clip, expected_disparity(normalized, settings, 40))
    torch.testing.assert_close(right.double(), ref_right, atol=3e-5, rtol=1e-4)


def test_percent_means_the_same_picture_at_any_resolution():
    settings = DisparitySettings(max_disp=5.0, unit="percent")
    assert settings.pixels(1920) == pytest.approx(96.0) and settings.pixels(640) == pytest.approx(32.0)


def test_per_frame_normalisation_uses_each_frames_range(clip):
    depth = torch.rand(4, 24, 40, generator=torch.Generator().manual_seed(2))
    depth[2] = depth[2] * 0.1  # a frame with little relief
    settings = DisparitySettings(max_disp=4.0, normalize="frame")
    right, _ = warp_clip(clip, depth, settings)
    low = depth.amin(dim=(1, 2), keepdim=True)
    high = depth.amax(dim=(1, 2), keepdim=True)
    ref_right, _ = splat_loops(clip, expected_disparity((depth - low) / (high - low), settings, 40))
    torch.testing.assert_close(right.double(), ref_right, atol=3e-5, rtol=1e-4)


def test_flat_depth_sits_on_the_screen_plane(clip):
    right, occlusion = warp_clip(clip, torch.full((4, 24, 40), 0.7), SETTINGS)
    torch.testing.assert_close(right, clip)
    assert occlusion.max() == 0


def test_single_depth_frame_broadcasts_and_other_sizes_are_resized(clip, depth_clip):
    one = depth_clip[:1]
    right, occlusion = warp_clip(clip, one, SETTINGS)
    for frame in range(clip.shape[0]):
        expected = warp_clip(clip[frame : frame + 1], one, SETTINGS)
        torch.testing.assert_close(right[frame], expected[0][0])
    half = torch.nn.functional.interpolate(depth_clip.permute(0, 3, 1, 2), size=(12, 20), mode="nearest")
    right_small, _ = warp_clip(clip, half.permute(0, 2, 3, 1), SETTINGS)
    assert right_small.shape == clip.shape


def test_occlusion_from_depth_matches_the_warps_mask(clip, depth_clip):
    _, occlusion = warp_clip(clip, depth_clip, SETTINGS)
    torch.testing.assert_close(occlusion_from_depth(depth_clip, SETTINGS), occlusion)


def test_progress_is_reported_per_batch(clip, depth_clip):
    seen = []
    warp_clip(clip.repeat(5, 1, 1, 1), depth_clip.repeat(5, 1, 1, 1), SETTINGS, batch=8, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(8, 20), (16, 20), (20, 20)]


@pytest.mark.parametrize("image, depth, match", [
    (torch.rand(4, 8, 8, 3), torch.rand(3, 8, 8, 3), "'depth' has 3 frames but 'image' has 4"),
    (torch.rand(0, 8, 8, 3), torch.rand(1, 8, 8, 3), "'image' is empty"),
    (torch.rand(2, 8, 8, 3), torch.rand(0, 8, 8, 3), "'depth' is empty"),
    (torch.rand(2, 8, 8, 4), torch.rand(2, 8, 8, 3), "'image' has 4 channels.*alpha"),
    (torch.rand(2, 8, 8, 3), torch.rand(2, 8, 8, 2), "'depth' has 2 channels"),
    (torch.rand(8, 8, 3), torch.rand(2, 8, 8, 3), "frames, height, width, channels"),
])
def test_bad_inputs_get_clear_messages(image, depth, match):
    with pytest.raises(StereoInputError, match=match):
        warp_clip(image, depth)


def test_non_finite_depth_names_the_frames(clip, depth_clip):
    depth = depth_clip.clone()
    depth[2, 3, 4, 0] = float("nan")
    with pytest.raises(StereoInputError, match=r"NaN or infinite values \(frames 2\)"):
        warp_clip(clip, depth, SETTINGS)


@pytest.mark.parametrize("settings, match", [
    (DisparitySettings(max_disp=-3.0), "max_disp must be a number >= 0"),
    (DisparitySettings(max_disp=float("nan")), "max_disp must be a number >= 0"),
    (DisparitySettings(max_disp=500.0), "more than the frame width"),
    (DisparitySettings(max_disp=150.0, unit="percent"), "more than the frame width"),
    (DisparitySettings(convergence=1.5), "convergence must be between 0 and 1"),
    (DisparitySettings(unit="inches"), "disparity unit"),
])
def test_bad_settings_get_clear_messages(clip, depth_clip, settings, match):
    with pytest.raises(StereoInputError, match=match):
        warp_clip(clip, depth_clip, settings)


def depth_batch():
    """Grey and coloured pixels, a flat frame, and a scale away from 0..1."""
    generator = torch.Generator().manual_seed(3)
    depth = torch.rand(3, 6, 9, 1, generator=generator).expand(-1, -1, -1, 3).contiguous() * 4 + 1
    depth[0, :2] = torch.rand(2, 9, 3, generator=generator)
    depth[2] = 2.5
    return depth


@pytest.mark.parametrize("settings", [
    DisparitySettings(max_disp=2.0), DisparitySettings(max_disp=2.0, normalize="frame", invert=True),
    DisparitySettings(max_disp=1.0, unit="percent", convergence=0.3, normalize="none"),
])
@pytest.mark.parametrize("channels", [3, 1])
def test_compiled_depth_passes_compute_exactly_the_torch_steps(monkeypatch, settings, channels):
    from stereo_core import warp as warp_module
    from stereo_core.disparity import DepthRange, depth_disparity

    depth = depth_batch()[..., :channels]
    if settings.normalize == "none":
        depth = depth / 5
    results = {}
    for path in ("compiled", "torch"):
        if path == "torch":
            monkeypatch.setenv(warp_module.NO_NUMBA_ENV, "1")
        else:
            assert warp_module.compiled_cpu_depth() is not None
        depth_range = DepthRange.of(depth, batch=2)
        results[path] = depth_range.low, depth_range.high, depth_disparity(depth, depth_range, slice(0, 3), settings, 9)
    for compiled, expected in zip(results["compiled"], results["torch"]):
        assert torch.equal(compiled, expected)


def test_compiled_depth_range_finds_nan_and_infinity_in_any_frame():
    from stereo_core.disparity import DepthRange

    for spoil, frame in ((float("nan"), 1), (float("inf"), 2), (-float("inf"), 0)):
        depth = depth_batch()
        depth[frame, 5, 8, 1] = spoil
        with pytest.raises(StereoInputError, match=rf"'depth' contains NaN or infinite values \(frames {frame}\)"):
            DepthRange.of(depth, batch=2)


def test_a_grey_depth_image_warps_exactly_as_its_one_channel_depth(clip, depth_clip):
    """Depth nodes output grey IMAGEs: their value is the depth itself (the mean of three equal
    floats is not always that float)."""
    grey = torch.rand(4, 24, 40, 1, generator=torch.Generator().manual_seed(4)).expand(-1, -1, -1, 3).contiguous()
    for settings in (SETTINGS, DisparitySettings(max_disp=5.0, normalize="frame", invert=True)):
        from_image = warp_clip(clip, grey, settings)
        from_channel = warp_clip(clip, grey[..., 0], settings)
        assert torch.equal(from_image[0], from_channel[0]) and torch.equal(from_image[1], from_channel[1])
