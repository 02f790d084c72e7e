"""Auto-convergence: per-shot screen plane from subject depth, smoothed, never jumping inside a shot."""

import pytest
import torch

from stereo_core.convergence import AutoConvergence, auto_convergence, subject_depth
from stereo_core.disparity import DepthRange, DisparitySettings, disparity_bounds, disparity_from_depth
from stereo_core.errors import StereoInputError


def test_each_shots_subject_lands_on_the_screen_plane():
    subject = torch.tensor([0.3] * 10 + [0.7] * 10)
    curve = auto_convergence(subject, shot_starts=[10], fps=24, settings=AutoConvergence(max_shift=0.5))
    torch.testing.assert_close(curve, subject)  # no smoothing across the cut at frame 10


def test_the_plane_glides_inside_a_shot_instead_of_jumping():
    generator = torch.Generator().manual_seed(0)
    subject = 0.5 + 0.1 * torch.randn(48, generator=generator)  # a noisy per-frame statistic
    subject[24:] += 0.1  # the subject moves closer mid-shot
    curve = auto_convergence(subject, fps=24, settings=AutoConvergence(smoothing_seconds=0.5, max_shift=1.0))
    assert curve.diff().abs().max() < 0.25 * subject.diff().abs().max()
    assert curve[-8:].mean() > curve[:8].mean() + 0.05  # it still follows the move


def test_no_smoothing_gives_one_value_per_shot():
    subject = torch.tensor([0.40, 0.45, 0.90, 0.42, 0.60, 0.62, 0.64])
    curve = auto_convergence(subject, shot_starts=[4], settings=AutoConvergence(smoothing_seconds=0, max_shift=1.0))
    assert torch.all(curve[:4] == subject[:4].median()) and torch.all(curve[4:] == subject[4:].median())


def test_strength_and_max_shift_bound_the_plane():
    subject = torch.tensor([0.95] * 5 + [0.05] * 5)
    fixed = auto_convergence(subject, [5], base=0.4, settings=AutoConvergence(strength=0.0))
    assert torch.all(fixed == 0.4)
    half = auto_convergence(subject, [5], base=0.5, settings=AutoConvergence(strength=0.5, max_shift=1.0))
    torch.testing.assert_close(half, torch.tensor([0.725] * 5 + [0.275] * 5))
    clamped = auto_convergence(subject, [5], base=0.5, settings=AutoConvergence(max_shift=0.2))
    torch.testing.assert_close(clamped, torch.tensor([0.7] * 5 + [0.3] * 5))


def test_subject_depth_weights_the_centre_and_ignores_small_outliers():
    depth = torch.full((2, 30, 40), 0.2)
    depth[0, 8:23, 10:30] = 0.8  # a centred subject covering a quarter of the frame
    depth[1, :3, :3] = 1.0  # a tiny near corner
    centre = subject_depth(depth, "center")
    plain = subject_depth(depth, "median")
    assert centre[0] == pytest.approx(0.8) and plain[0] == pytest.approx(0.2)
    assert centre[1] == pytest.approx(0.2) and plain[1] == pytest.approx(0.2)


def test_per_frame_convergence_puts_each_frames_plane_at_zero_disparity():
    settings = DisparitySettings(max_disp=10)
    normalized = torch.tensor([0.3, 0.7]).view(2, 1, 1).expand(2, 2, 3)
    disparity = disparity_from_depth(normalized, settings, 100, convergence=torch.tensor([0.3, 0.7]))
    assert torch.all(disparity == 0)
    low, high = disparity_bounds(DepthRange(torch.zeros(2), torch.ones(2)), settings, 100, torch.tensor([0.3, 0.7]))
    assert (low, high) == pytest.approx(((0 - 0.7) * 20, (1 - 0.3) * 20))
    assert disparity_bounds(DepthRange(torch.zeros(2), torch.ones(2)), settings, 100) == (-10.0, 10.0)


def test_bad_inputs_are_plain_messages():
    with pytest.raises(StereoInputError, match="Shot start 12 is outside the clip's 10 frames"):
        auto_convergence(torch.full((10,), 0.5), shot_starts=[12])
    with pytest.raises(StereoInputError, match="NaN or infinite at frames 2"):
        auto_convergence(torch.tensor([0.5, 0.5, float("nan")]))
    with pytest.raises(StereoInputError, match="strength must be between 0 and 1"):
        auto_convergence(torch.full((3,), 0.5), settings=AutoConvergence(strength=2))
    with pytest.raises(StereoInputError, match="3 values for 2 frames"):
        disparity_from_depth(torch.zeros(2, 1, 1), DisparitySettings(), 10, convergence=torch.zeros(3))
