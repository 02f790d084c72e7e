"""Forward warp: hand-computed splats, borders, agreement with the loop reference.

Every test runs twice: with the compiled CPU kernel (numba) and with the torch path
that other devices, and CPUs without numba, use.
"""

import logging
import sys

import numba
import numpy as np
import pytest
import torch

from reference_loops import splat_loops
from stereo_core import warp as warp_module
from stereo_core import warp_cpu
from stereo_core.warp import forward_warp, needs_stable_weights, splat_rows


@pytest.fixture(autouse=True, params=["compiled", "torch"])
def backend(request, monkeypatch):
    if request.param == "torch":
        monkeypatch.setenv(warp_module.NO_NUMBA_ENV, "1")
    else:
        monkeypatch.delenv(warp_module.NO_NUMBA_ENV, raising=False)
    return request.param


def one_row(values, disparity):
    """A 1-frame, 1-row, 1-channel clip."""
    image = torch.tensor(values, dtype=torch.float32).view(1, 1, -1, 1)
    disp = torch.tensor(disparity, dtype=torch.float32).view(1, 1, -1)
    warped, occlusion = forward_warp(image, disp)
    return warped[0, 0, :, 0], occlusion[0, 0]


def test_zero_disparity_is_identity_with_no_holes_even_at_the_border():
    image = torch.rand(2, 5, 7, 3)
    warped, occlusion = forward_warp(image, torch.zeros(2, 5, 7))
    torch.testing.assert_close(warped, image)
    assert occlusion.abs().max() == 0  # the reference would mark the last row (and column) as holes


def test_subpixel_shares_split_between_two_neighbours():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    warped, occlusion = one_row(values, [0.25] * 5)
    # each pixel lands at x - 0.25: 0.25 of it on x - 1, 0.75 on x
    expected = [0.75 * values[p] + 0.25 * values[p + 1] for p in range(4)] + [values[4]]
    torch.testing.assert_close(warped, torch.tensor(expected))
    torch.testing.assert_close(occlusion, torch.tensor([0.0, 0.0, 0.0, 0.0, 0.25]))


def test_collision_is_resolved_toward_the_near_pixel():
    values = [0.1, 0.2, 0.3, 0.9, 0.5, 0.6]
    disparity = [0.0, 0.0, 0.0, 2.0, 0.0, 0.0]  # pixel 3 (near) lands exactly on pixel 1 (far)
    warped, occlusion = one_row(values, disparity)
    near_weight = 1.414 ** 2.0
    assert warped[1].item() == pytest.approx((0.9 * near_weight + 0.2) / (near_weight + 1.0), rel=1e-5)
    assert occlusion[3] == 1.0 and warped[3] == 0.0  # where pixel 3 came from, nothing landed


def test_near_pixel_wins_outright_when_the_depth_gap_is_large():
    image = torch.zeros(1, 1, 42, 1)
    image[0, 0, 0, 0], image[0, 0, 41, 0] = 0.2, 0.9
    disparity = torch.zeros(1, 1, 42)
    disparity[0, 0, 41] = 41.0  # 41 px nearer, lands on pixel 0
    warped, _ = forward_warp(image, disparity)
    near_weight = 1.414 ** 41.0
    expected = (0.9 * near_weight + 0.2) / (near_weight + 1.0)
    assert warped[0, 0, 0, 0].item() == pytest.approx(expected, rel=1e-6)
    assert expected > 0.8999


def test_border_samples_are_kept_per_neighbour():
    # pixel 0 lands at -0.5: its right half still reaches pixel 0 (the reference drops it whole,
    # leaving a black hole there)
    warped, occlusion = one_row([0.8, 0.4, 0.4], [0.5, 0.0, 0.0])
    assert occlusion[0].item() == pytest.approx(0.5)
    assert warped[0].item() == pytest.approx(0.8)
    # at an integer disparity the last column is a real hole only when nothing lands there
    _, occlusion = one_row([1.0] * 4, [1.0] * 4)
    torch.testing.assert_close(occlusion, torch.tensor([0.0, 0.0, 0.0, 1.0]))
    _, occlusion = one_row([1.0] * 4, [-1.0] * 4)
    torch.testing.assert_close(occlusion, torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_the_reference_quirk_blackens_the_last_row_which_we_do_not():
    image = torch.rand(1, 4, 6, 3)
    disparity = torch.full((1, 4, 6), 0.5)
    ref_warped, ref_occlusion = splat_loops(image, disparity, reference_quirk=True)
    warped, occlusion = forward_warp(image, disparity)
    assert torch.all(ref_occlusion[0, -1] == 1) and torch.all(ref_warped[0, -1] == 0)
    assert torch.all(occlusion[0, -1] < 1) and warped[0, -1].abs().sum() > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_inputs_agree_with_the_loop_reference(seed):
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 5, 23, 3, generator=generator)
    disparity = (torch.rand(2, 5, 23, generator=generator) * 2 - 1) * 6
    disparity[:, :, 10:14] += 7  # a near object: folds, collisions and holes
    warped, occlusion = forward_warp(image, disparity)
    ref_warped, ref_occlusion = splat_loops(image, disparity)
    torch.testing.assert_close(warped.double(), ref_warped, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(occlusion.double(), ref_occlusion, atol=2e-6, rtol=0)
    # with the reference's border rule, we agree everywhere away from the border
    quirk_warped, quirk_occlusion = splat_loops(image, disparity, reference_quirk=True)
    inner = (slice(None), slice(0, -1), slice(1, -1))
    torch.testing.assert_close(warped[inner].double(), quirk_warped[inner], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(occlusion[inner].double(), quirk_occlusion[inner], atol=2e-6, rtol=0)


def test_huge_disparity_range_stays_finite_and_exact():
    generator = torch.Generator().manual_seed(3)
    width = 700
    image = torch.rand(1, 2, width, 3, generator=generator)
    disparity = torch.linspace(-300, 300, width).view(1, 1, width).expand(1, 2, width).clone()
    disparity[:, :, 400:420] += 10  # collisions between far and near samples
    assert needs_stable_weights(float(disparity.min()), float(disparity.max()))
    fast_exponent_weights = torch.exp2((disparity - disparity.min()) * warp_module.LOG2_BASE)
    assert not torch.isfinite(fast_exponent_weights).all()  # the reference's weights overflow here
    warped, occlusion = forward_warp(image, disparity)
    assert torch.isfinite(warped).all() and torch.isfinite(occlusion).all()
    ref_warped, ref_occlusion = splat_loops(image, disparity)  # float64 does not overflow yet
    torch.testing.assert_close(warped.double(), ref_warped, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(occlusion.double(), ref_occlusion, atol=1e-5, rtol=0)


def test_stable_and_fast_weights_agree_on_ordinary_ranges():
    generator = torch.Generator().manual_seed(4)
    rows = torch.rand(6, 50, 3, generator=generator)
    disparity = (torch.rand(6, 50, generator=generator) * 2 - 1) * 20
    fast = splat_rows(rows, disparity, float(disparity.min()), stable=False)
    stable = splat_rows(rows, disparity, float(disparity.min()), stable=True)
    torch.testing.assert_close(stable[0], fast[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stable[1], fast[1])


def test_complex_and_interleaved_scatter_paths_agree():
    generator = torch.Generator().manual_seed(5)
    pairs = torch.rand(4, 3, 9, 2, generator=generator)
    slot = torch.randint(0, 12, (3, 9), generator=generator)
    packed = warp_module._scatter_pairs(pairs, slot, 12, as_complex=True)
    interleaved = warp_module._scatter_pairs(pairs, slot, 12, as_complex=False)
    torch.testing.assert_close(packed, interleaved)


def test_float16_input_gives_float16_output_close_to_float32():
    generator = torch.Generator().manual_seed(6)
    image = torch.rand(1, 8, 32, 3, generator=generator)
    disparity = (torch.rand(1, 8, 32, generator=generator) * 2 - 1) * 20
    warped16, occlusion16 = forward_warp(image.half(), disparity.half())
    warped32, occlusion32 = forward_warp(image, disparity.half().float())
    assert warped16.dtype == torch.float16 and occlusion16.dtype == torch.float16
    torch.testing.assert_close(warped16.float(), warped32, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(occlusion16.float(), occlusion32, atol=2e-3, rtol=0)


def test_blocks_of_rows_do_not_change_the_result(monkeypatch):
    generator = torch.Generator().manual_seed(7)
    image = torch.rand(3, 7, 16, 3, generator=generator)
    disparity = (torch.rand(3, 7, 16, generator=generator) * 2 - 1) * 5
    whole = forward_warp(image, disparity)
    monkeypatch.setattr(warp_module, "_BLOCK_PIXELS", 16 * 2)  # two rows per block
    monkeypatch.setattr(warp_module, "_COMPILED_BLOCK_PIXELS", 16 * 2)
    monkeypatch.setattr(warp_module, "_COMPILED_BLOCK_PIXELS_IN_PLACE", 16 * 2)
    blocked = forward_warp(image, disparity)
    torch.testing.assert_close(blocked[0], whole[0])
    torch.testing.assert_close(blocked[1], whole[1])


def test_each_backend_is_the_one_running(backend, monkeypatch):
    calls = []
    compiled = warp_cpu.splat_rows_compiled
    monkeypatch.setattr(warp_module, "splat_rows", lambda *args: calls.append("torch") or splat_rows(*args))
    monkeypatch.setattr(warp_module, "_compiled_cpu_splat", lambda *args: calls.append("compiled") or compiled(*args))
    forward_warp(torch.rand(1, 2, 5, 3), torch.zeros(1, 2, 5))
    assert calls == [backend]


@pytest.mark.parametrize("channels", [0, 1, 3, 4, 7])
@pytest.mark.parametrize("stable", [False, True])
def test_compiled_kernel_agrees_with_the_torch_path(channels, stable):
    generator = torch.Generator().manual_seed(8 + channels)
    rows = torch.rand(9, 37, channels, generator=generator)
    disparity = (torch.rand(9, 37, generator=generator) * 2 - 1) * 9
    disparity[:, 12:20] += 11  # folds, collisions and holes
    disp_min = float(disparity.min())
    expected = splat_rows(rows, disparity, disp_min, stable)
    compiled = warp_cpu.splat_rows_compiled(rows, disparity, disp_min, stable)
    torch.testing.assert_close(compiled[0], expected[0], atol=2e-6, rtol=2e-6)
    torch.testing.assert_close(compiled[1], expected[1], atol=1e-6, rtol=0)


def test_compiled_kernel_splits_rows_between_threads_without_changing_them():
    generator = torch.Generator().manual_seed(9)
    colour = torch.rand(11, 29, 3, generator=generator).numpy()
    disparity = ((torch.rand(11, 29, generator=generator) * 2 - 1) * 6).numpy()
    results = []
    for threads in (1, 2, 5):  # 11 rows: uneven shares, a last thread with fewer rows
        out, occlusion = np.full_like(colour, np.nan), np.full_like(disparity, np.nan)
        warp_cpu._splat_rgb_rows(colour, disparity, np.float32(disparity.min()), np.float32(warp_module.LOG2_BASE),
                                 False, np.float32(warp_module.DENOMINATOR_EPS), threads, out, occlusion)
        results.append((out, occlusion))
    for out, occlusion in results:
        assert np.isfinite(out).all() and np.isfinite(occlusion).all()  # every row written
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(occlusion, results[0][1])


def test_compiled_exp2_is_accurate_over_its_whole_range():
    exponents = np.linspace(-126, 127, 4001, dtype=np.float32)
    ours = np.array([warp_cpu._exp2(value) for value in exponents], dtype=np.float64)
    exact = np.exp2(exponents.astype(np.float64))
    assert np.max(np.abs(ours / exact - 1)) < 3e-7


def test_any_disparity_value_stays_inside_its_row():
    # NaN, infinities and absurd values must not reach memory outside the row's slots
    # (the kernel runs without bounds checks); the rows around them are untouched.
    generator = torch.Generator().manual_seed(10)
    rows = torch.rand(3, 16, 3, generator=generator)
    disparity = (torch.rand(3, 16, generator=generator) * 2 - 1) * 3
    disparity[1, ::3] = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 3e9])
    clean = splat_rows(rows[[0, 2]], disparity[[0, 2]], -3.0)
    warped, occlusion = warp_cpu.splat_rows_compiled(rows, disparity, -3.0)
    torch.testing.assert_close(warped[[0, 2]], clean[0], atol=2e-6, rtol=2e-6)
    torch.testing.assert_close(occlusion[[0, 2]], clean[1])


def test_a_kernel_that_does_not_compile_falls_back_to_torch(monkeypatch, caplog):
    def broken(*args):
        raise numba.core.errors.TypingError("no implementation for this llvmlite")

    monkeypatch.delenv(warp_module.NO_NUMBA_ENV, raising=False)
    monkeypatch.setattr(warp_module, "_compiled_cpu_splat", None)
    monkeypatch.setattr(warp_cpu, "_splat_rgb_rows", broken)
    with caplog.at_level(logging.WARNING, logger="stereo_core.warp"):
        assert warp_module.compiled_cpu_splat() is None
    assert "no implementation for this llvmlite" in caplog.text


def test_without_numba_the_cpu_warp_falls_back_to_torch_and_says_so(monkeypatch, caplog):
    monkeypatch.delenv(warp_module.NO_NUMBA_ENV, raising=False)
    monkeypatch.setattr(warp_module, "_compiled_cpu_splat", None)
    monkeypatch.delitem(sys.modules, "stereo_core.warp_cpu")
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    image, disparity = torch.rand(1, 3, 8, 3), torch.full((1, 3, 8), 0.5)
    with caplog.at_level(logging.WARNING, logger="stereo_core.warp"):
        warped, occlusion = forward_warp(image, disparity)
    assert warp_module.compiled_cpu_splat() is None
    assert "numba" in caplog.text and "torch" in caplog.text
    expected = splat_rows(image[0], disparity[0], 0.5)
    torch.testing.assert_close(warped[0], expected[0])


@pytest.mark.parametrize("channels", [3, 4, 0])
@pytest.mark.parametrize("spread", [8.0, 400.0])  # ordinary and per-target (stable) weights
def test_disparity_may_be_the_occlusion_output_itself(channels, spread):
    generator = torch.Generator().manual_seed(5)
    image = torch.rand(3, 7, 33, channels, generator=generator)
    disparity = (torch.rand(3, 7, 33, generator=generator) * 2 - 1) * spread
    expected = forward_warp(image, disparity)
    shared = disparity.clone()
    warped, occlusion = forward_warp(image, shared, out_occlusion=shared)
    assert occlusion.data_ptr() == shared.data_ptr()
    assert torch.equal(warped, expected[0]) and torch.equal(occlusion, expected[1])
