"""Comfort report (per-frame disparity statistics, limits, verdict, plot) and its nodes."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from stereo_core.comfort import ComfortLimits, ComfortReport, measure_depth
from stereo_core.disparity import DisparitySettings
from stereo_core.errors import StereoInputError


def ramp_frames(values_pct, width=200, height=10):
    """Frames whose disparity runs evenly over [-v, +v] percent of the width, one frame per value."""
    ramps = [torch.linspace(-v, v, width).expand(height, width) * width / 100 for v in values_pct]
    return torch.stack(ramps)


def test_per_frame_nearest_median_farthest_in_percent_and_screen_pixels():
    report = ComfortReport(width=200, screen_width_px=1000, outlier_share=0.0)
    disparity = ramp_frames([0.5, 1.5])
    disparity[1] += 0.02 * 200 / 100  # the second frame also sits 0.02% further in front
    report.update(disparity, first_frame=10)
    table = report.table()
    assert table["frame"].tolist() == [10, 11]
    np.testing.assert_allclose(table["nearest"], [0.5, 1.52], atol=1e-5)
    np.testing.assert_allclose(table["farthest"], [-0.5, -1.48], atol=1e-5)
    np.testing.assert_allclose(table["median"], [0.0, 0.02], atol=1e-5)
    assert report.pixels(1.5) == 15.0  # 1.5% of a 1000 px screen
    assert table["beyond"].tolist() == [False, True]  # 1.52% in front is past the 1% limit


def test_outlier_pixels_do_not_decide_a_frames_nearest_point():
    disparity = torch.zeros(1, 40, 50)
    disparity[0, 0, :3] = 100.0  # three stray pixels far in front
    report = ComfortReport(width=50)
    report.update(disparity)
    assert report.table()["nearest"][0] == pytest.approx(0.0)


def test_verdict_counts_frames_beyond_each_limit_and_names_the_worst():
    report = ComfortReport(width=200, outlier_share=0.0)
    report.update(ramp_frames([0.5, 0.8, 1.2, 0.9]))
    farthest_only = torch.full((1, 10, 200), -2.5 * 2)  # everything 2.5% behind the screen
    report.update(farthest_only, first_frame=4)
    verdict = report.verdict()
    assert verdict.startswith("Uncomfortable: 2 of 5 frames (40%) beyond the limits")
    assert "in front > 1%: 1 frames, worst +1.20% at frame 2" in verdict
    assert "behind > 2%: 1 frames, worst -2.50% at frame 4" in verdict
    calm = ComfortReport(width=200)
    calm.update(ramp_frames([0.4, 0.6]))
    assert calm.verdict().startswith("Comfortable: all 2 frames within the limits")


def test_chunks_in_any_order_and_a_restored_state_give_the_same_report():
    disparity = ramp_frames([0.2, 0.9, 1.4, 0.3, 2.2, 0.1])
    whole = ComfortReport(width=200)
    whole.update(disparity)
    parts = ComfortReport(width=200)
    parts.update(disparity[4:], first_frame=4)
    parts.update(disparity[:2])
    resumed = ComfortReport.from_state(json.loads(json.dumps(parts.state_dict())))
    resumed.update(disparity[2:4], first_frame=2)
    assert resumed.summary() == whole.summary()


def test_limits_for_a_real_screen_follow_the_one_degree_rule_and_forbid_divergence():
    tv = ComfortLimits.for_screen(screen_width_m=1.2, viewing_distance_m=2.5)
    one_degree = 100 * 2.5 * math.tan(math.radians(1)) / 1.2
    assert tv.front == pytest.approx(one_degree) and tv.behind == pytest.approx(one_degree)
    cinema = ComfortLimits.for_screen(screen_width_m=10, viewing_distance_m=15)
    assert cinema.behind == pytest.approx(0.65)  # 6.5 cm of a 10 m screen: the eyes must not diverge
    with pytest.raises(StereoInputError, match="positive screen width"):
        ComfortLimits.for_screen(0, 2)


def test_plot_and_summary_are_written_beside_each_other(tmp_path):
    report = ComfortReport(width=200, fps=24)
    report.update(ramp_frames([0.3 + 0.01 * i for i in range(48)]))
    png = report.save(tmp_path / "clip_comfort.png", tmp_path / "clip_comfort.json")
    picture = np.asarray(Image.open(png).convert("RGB"))
    assert picture.shape == (520, 1200, 3)
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 20  # a chart, not a blank page
    summary = json.loads((tmp_path / "clip_comfort.json").read_text())
    assert summary["frames"] == list(range(48)) and summary["verdict"] == report.verdict()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip_comfort.json", "clip_comfort.png"]


def test_long_clips_plot_an_envelope_that_keeps_one_frame_spikes():
    disparity = torch.zeros(3000, 4, 4)
    disparity[1234] = 12.0  # one frame 6% in front (width 200)
    report = ComfortReport(width=200)
    report.update(disparity)
    plain = ComfortReport(width=200)
    plain.update(torch.zeros(3000, 4, 4))
    orange = np.array([230, 120, 20])
    spike = np.asarray(report.plot())
    # The spike rises far above the zero line; without it no curve pixel is up there.
    top_half = lambda image: np.all(np.abs(image[60:200].astype(int) - orange) < 10, axis=-1).sum()
    assert top_half(spike) > 20 and top_half(np.asarray(plain.plot())) == 0


def test_measure_depth_uses_the_warps_disparity_at_the_frame_width(depth_clip):
    settings = DisparitySettings(max_disp=2, unit="percent")
    report = measure_depth(depth_clip, settings, ComfortReport(width=400, outlier_share=0.0))
    table = report.table()
    # Clip-normalised depth spans 0..1, so the nearest pixels sit at +2% and the farthest at -2%.
    assert table["nearest"].max() == pytest.approx(2.0, abs=1e-4)
    assert table["farthest"].min() == pytest.approx(-2.0, abs=1e-4)
    with pytest.raises(StereoInputError, match="NaN or infinite"):
        report.update(torch.full((1, 2, 2), float("nan")))


def test_comfort_check_node_returns_a_plot_image_and_a_verdict(nodes, clip, depth_clip):
    node = nodes["SC3D_StereoComfortCheck"]()
    plot, verdict = node.check(depth_clip, 8.0, "pixels", 0.5, False, "clip", 1.0, 2.0, 3.0, 1920, 24.0, image=clip)
    assert plot.shape == (1, 520, 1200, 3) and plot.dtype == torch.float32 and 0 <= plot.min() <= plot.max() <= 1
    # 8 px of a 40 px wide frame is 20% of the width: far beyond the limits.
    assert verdict.startswith("Uncomfortable: 4 of 4 frames")
    _, mild = node.check(depth_clip, 0.2, "percent", 0.5, False, "clip", 1.0, 2.0, 3.0, 1920, 0.0)
    assert mild.startswith("Comfortable")


def test_auto_convergence_node_recentres_each_shots_subject(nodes):
    depth = torch.full((6, 20, 48, 3), 0.1)  # wide enough for the default 20 px strength
    depth[:3, 5:15, 12:36] = 0.9  # shot 1: a near subject in the middle
    depth[3:, 5:15, 12:36] = 0.3  # shot 2: a farther one
    node = nodes["SC3D_AutoConvergenceDepth"]()
    shifted, info = node.converge(depth, 0.5, False, "clip", 1.0, 0.0, 1.0, 24.0, "center", shot_starts="3")
    centre = shifted[:, 10, 24, 0]
    torch.testing.assert_close(centre, torch.full((6,), 0.5))  # each subject now sits at the fixed convergence
    assert info == "0: 1.000, 3: 0.250"
    with pytest.raises(ValueError, match="shot_starts must be frame numbers"):  # the pack's own StereoInputError
        node.converge(depth, 0.5, False, "clip", 1.0, 0.0, 1.0, 24.0, "center", shot_starts="0, ten")
