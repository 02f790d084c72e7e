"""SBS / TB layouts, the splatting grid, anaglyphs, mask refinement, depth pictures."""

import math

import pytest
import torch

from stereo_core.anaglyph import anaglyph
from stereo_core.errors import StereoInputError
from stereo_core.layouts import VirtualScreen, compose_splat_grid, compose_stereo, split_splat_grid
from stereo_core.mask import refine_mask
from stereo_core.visualize import visualize_depth
from stereo_core.colormap_data import INFERNO


@pytest.fixture
def pair():
    left = torch.zeros(2, 4, 6, 3)
    right = torch.ones(2, 4, 6, 3)
    left[..., 0] = torch.arange(6).float() / 10  # a horizontal ramp in red
    return left, right


def test_full_sbs_and_tb_place_each_eye(pair):
    left, right = pair
    sbs = compose_stereo(left, right, "sbs")
    assert sbs.shape == (2, 4, 12, 3)
    assert torch.equal(sbs[:, :, :6], left) and torch.equal(sbs[:, :, 6:], right)
    tb = compose_stereo(left, right, "tb")
    assert tb.shape == (2, 8, 6, 3)
    assert torch.equal(tb[:, :4], left) and torch.equal(tb[:, 4:], right)


def test_swap_puts_the_right_eye_first(pair):
    left, right = pair
    swapped = compose_stereo(left, right, "sbs", swap=True)
    assert torch.equal(swapped[:, :, :6], right) and torch.equal(swapped[:, :, 6:], left)


def test_half_layouts_keep_the_frame_size_and_average_instead_of_dropping():
    left = torch.zeros(1, 4, 8, 3)
    left[:, :, 1::2] = 1.0  # alternating columns: decimation would give all 0 or all 1
    right = torch.full((1, 4, 8, 3), 0.25)
    half = compose_stereo(left, right, "half-sbs")
    assert half.shape == (1, 4, 8, 3)
    torch.testing.assert_close(half[:, :, :4], torch.full((1, 4, 4, 3), 0.5), atol=0.1, rtol=0)
    torch.testing.assert_close(half[:, :, 4:], torch.full((1, 4, 4, 3), 0.25))
    rows = torch.zeros(1, 8, 4, 3)
    rows[:, 1::2] = 1.0
    half_tb = compose_stereo(rows, rows, "half-tb")
    assert half_tb.shape == (1, 8, 4, 3)
    torch.testing.assert_close(half_tb, torch.full((1, 8, 4, 3), 0.5), atol=0.1, rtol=0)


def test_layout_bad_inputs():
    with pytest.raises(StereoInputError, match="'right' has 3 frames but 'left' has 2"):
        compose_stereo(torch.rand(2, 4, 4, 3), torch.rand(3, 4, 4, 3))
    with pytest.raises(StereoInputError, match="same size"):
        compose_stereo(torch.rand(2, 4, 4, 3), torch.rand(2, 4, 6, 3))
    with pytest.raises(StereoInputError, match="layout must be one of"):
        compose_stereo(torch.rand(2, 4, 4, 3), torch.rand(2, 4, 4, 3), "over-under")


def test_anaglyph_modes_give_expected_pixels():
    left = torch.tensor([0.8, 0.4, 0.2]).view(1, 1, 1, 3)
    right = torch.tensor([0.1, 0.6, 0.9]).view(1, 1, 1, 3)
    luma = lambda rgb: 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    torch.testing.assert_close(anaglyph(left, right, "color")[0, 0, 0], torch.tensor([0.8, 0.6, 0.9]))
    torch.testing.assert_close(anaglyph(left, right, "half-color")[0, 0, 0],
                               torch.tensor([luma(left[0, 0, 0]), 0.6, 0.9]), atol=1e-3, rtol=0)
    torch.testing.assert_close(anaglyph(left, right, "gray")[0, 0, 0],
                               torch.tensor([luma(left[0, 0, 0])] + [luma(right[0, 0, 0])] * 2), atol=1e-3, rtol=0)


def test_dubois_is_computed_in_linear_light():
    def to_linear(v):
        return torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)

    def to_srgb(v):
        return torch.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)

    left = torch.tensor([0.8, 0.4, 0.2])
    right = torch.tensor([0.1, 0.6, 0.9])
    matrix_left = torch.tensor([[0.456, 0.500, 0.176], [-0.040, -0.038, -0.016], [-0.015, -0.021, -0.005]])
    matrix_right = torch.tensor([[-0.043, -0.088, -0.002], [0.378, 0.734, -0.018], [-0.072, -0.113, 1.226]])
    expected = to_srgb((matrix_left @ to_linear(left) + matrix_right @ to_linear(right)).clamp(0, 1))
    got = anaglyph(left.view(1, 1, 1, 3), right.view(1, 1, 1, 3), "dubois")[0, 0, 0]
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_wimmer_takes_red_from_the_left_greens_and_blues_and_brightens_it():
    left = torch.tensor([0.9, 0.4, 0.2]).view(1, 1, 1, 3)
    right = torch.tensor([0.1, 0.6, 0.9]).view(1, 1, 1, 3)
    got = anaglyph(left, right, "wimmer")[0, 0, 0]
    red = (0.7 * 0.4 + 0.3 * 0.2) ** (1 / 1.5)  # the left eye's own red (0.9) is not used
    torch.testing.assert_close(got, torch.tensor([red, 0.6, 0.9]), atol=1e-5, rtol=0)
    pure_red = torch.tensor([1.0, 0.0, 0.0]).view(1, 1, 1, 3)
    assert anaglyph(pure_red, pure_red, "wimmer")[0, 0, 0, 0] == 0  # no red flash in one eye only


def test_splat_grid_round_trip_and_layout():
    left, vis, warped = (torch.rand(3, 4, 6, 3) for _ in range(3))
    occlusion = (torch.rand(3, 4, 6) > 0.5).float()
    occlusion[:, 0, 0] = 0.6  # soft hole borders are fine
    grid = compose_splat_grid(left, vis, occlusion, warped)
    assert grid.shape == (3, 8, 12, 3)
    assert torch.equal(grid[:, 4:, :6, 1], occlusion)  # grey bottom-left tile
    parts = split_splat_grid(grid)
    assert torch.equal(parts["left"], left) and torch.equal(parts["depth_vis"], vis)
    assert torch.equal(parts["warped"], warped)
    torch.testing.assert_close(parts["occlusion"], occlusion)


def test_split_rejects_grids_that_cannot_be_2x2():
    with pytest.raises(StereoInputError, match="even width and height.*13x8"):
        split_splat_grid(torch.rand(2, 8, 13, 3))


def test_split_rejects_videos_that_are_not_splatting_grids():
    ordinary_video = torch.rand(2, 8, 12, 3)
    with pytest.raises(StereoInputError, match="12x8 video does not look like a 2x2 splatting grid.*coloured"):
        split_splat_grid(ordinary_video)
    grey_gradient = torch.linspace(0, 1, 12).view(1, 1, 12, 1).expand(2, 8, 12, 3)
    with pytest.raises(StereoInputError, match="mostly grey tones"):
        split_splat_grid(grey_gradient)


def test_split_accepts_a_grid_after_lossy_compression():
    left, vis, warped = (torch.rand(2, 8, 8, 3) for _ in range(3))
    occlusion = torch.zeros(2, 8, 8)
    occlusion[:, :, 5:] = 1
    grid = compose_splat_grid(left, vis, occlusion, warped)
    codec_noise = 0.02 * torch.randn(grid.shape, generator=torch.Generator().manual_seed(0))
    parts = split_splat_grid((grid + codec_noise).clamp(0, 1))
    assert torch.equal(parts["occlusion"] > 0.5, occlusion > 0.5)


def test_mask_threshold_dilate_feather():
    mask = torch.zeros(1, 9, 9)
    mask[0, 4, 4] = 0.7
    mask[0, 0, 0] = 0.2
    binary = refine_mask(mask, threshold=0.5)
    assert binary.sum() == 1 and binary[0, 4, 4] == 1
    dilated = refine_mask(mask, threshold=0.5, dilate=1)
    assert dilated.sum() == 9 and torch.all(dilated[0, 3:6, 3:6] == 1)
    feathered = refine_mask(mask, threshold=0.5, dilate=1, feather=1.0)
    assert torch.all(feathered[0, 3:6, 3:6] == 1)  # holes stay holes
    assert 0 < feathered[0, 2, 4] < 1 and feathered[0, 0, 8] < feathered[0, 2, 4]
    assert torch.equal(refine_mask(mask), mask)  # all off: unchanged
    with pytest.raises(StereoInputError, match="dilate and feather must be >= 0"):
        refine_mask(mask, dilate=-1)


def test_depth_pictures():
    depth = torch.linspace(0, 1, 256).view(1, 1, 256).expand(2, 3, 256)
    grey = visualize_depth(depth, "gray")
    torch.testing.assert_close(grey[..., 0], depth)
    coloured = visualize_depth(depth, "inferno")
    # The reference's binning: floor(255 d) (float rounding may put k / 255 in bin k - 1, as there).
    torch.testing.assert_close(coloured[0, 0], torch.tensor(INFERNO)[(depth[0, 0] * 255).long()])
    torch.testing.assert_close(coloured[0, 0, [0, -1]], torch.tensor(INFERNO)[[0, -1]])
    assert coloured[0, 0, 0].sum() < 0.1 and coloured[0, 0, -1].sum() > 2.5  # dark far, bright near


def _eye_column(longitude_degrees: float, size: int) -> float:
    """The pixel column (centre = x.0) of a longitude in a half-equirect eye image."""
    return (longitude_degrees / 180 + 0.5) * size - 0.5


def test_vr180_frame_is_two_square_half_equirect_eyes_black_outside_the_screen():
    clip = torch.ones(3, 90, 160, 3)
    screen = VirtualScreen(fov=80, distance=0, eye_size=180)
    frame = compose_stereo(clip, clip, "vr180", screen=screen)
    assert frame.shape == (3, 180, 360, 3)
    assert torch.all(frame[:, :10] == 0) and torch.all(frame[:, -10:] == 0)  # above and below the screen
    row = frame[0, 90, :180, 0]  # the left eye's middle row
    lit = torch.nonzero(row > 0.5).flatten()
    # The screen spans 80 degrees of longitude, centred.
    assert abs(lit[0] - _eye_column(-40, 180)) <= 1 and abs(lit[-1] - _eye_column(40, 180)) <= 1
    # A flat screen's top edge is highest at its centre and lower towards its sides (pincushion in equirect).
    column_top = lambda col: int(torch.nonzero(frame[0, :, col, 0] > 0.5).flatten()[0])
    top_latitude = math.degrees(math.atan(math.tan(math.radians(40)) * 90 / 160))
    assert abs(column_top(90) - (90 - top_latitude - 0.5)) <= 1
    assert column_top(int(lit[0]) + 1) > column_top(90) + 2


def test_vr180_screens_converge_at_the_screen_distance():
    clip = torch.zeros(1, 90, 160, 3)
    clip[:, :, :80] = 1.0  # a vertical edge at the screen's centre
    size, distance = 360, 0.5
    frame = compose_stereo(clip, clip, "vr180", screen=VirtualScreen(fov=60, distance=distance, eye_size=size))
    # Seen from each eye, the screen's centre lies toward the nose: the left eye looks right, the right eye left.
    offset = math.degrees(math.atan(0.063 / 2 / distance))
    for eye, expected in ((0, offset), (1, -offset)):
        row = frame[0, size // 2, eye * size:(eye + 1) * size, 0]
        edge = int(torch.nonzero((row[:-1] > 0.5) & (row[1:] <= 0.5)).flatten()[0]) + 0.5
        assert abs(edge - _eye_column(expected, size)) <= 1.0


def test_vr180_shrinks_fine_sources_without_aliasing_and_sizes_eyes_from_the_source():
    stripes = torch.zeros(1, 256, 512, 3)
    stripes[:, :, ::2] = 1.0
    frame = compose_stereo(stripes, stripes, "vr180", screen=VirtualScreen(fov=70, distance=0, eye_size=128))
    centre = frame[0, 58:70, 56:72]
    assert centre.std() < 0.05 and abs(centre.mean() - 0.5) < 0.05  # grey, not a moire of 0s and 1s
    auto = VirtualScreen(fov=70)
    assert auto.eye_pixels(160) == 16 * math.ceil(math.pi * 160 / (2 * math.tan(math.radians(35))) / 16)
    assert auto.eye_pixels(3840) == 2048  # capped for H.264 players


def test_vr180_chunks_compose_independently_and_bad_settings_are_explained():
    clip = torch.rand(4, 18, 32, 3)
    screen = VirtualScreen(eye_size=64)
    whole = compose_stereo(clip, clip.flip(2), "vr180", screen=screen)
    parts = torch.cat([compose_stereo(clip[i:i + 2], clip.flip(2)[i:i + 2], "vr180", screen=screen) for i in (0, 2)])
    assert torch.equal(whole, parts)
    with pytest.raises(StereoInputError, match="swap_eyes is for cross-eyed viewing"):
        compose_stereo(clip, clip, "vr180", swap=True)
    with pytest.raises(StereoInputError, match="between 1 and 170 degrees"):
        compose_stereo(clip, clip, "vr180", screen=VirtualScreen(fov=180))
