"""Nodes refuse bad tensors the same way: a StereoInputError naming the input, raised by
the library (so the command line gets it too), never NaN or garbage passed on."""

import pytest
import torch

from stereo_core.anaglyph import anaglyph
from stereo_core.color import match_colors
from stereo_core.disparity import DisparitySettings
from stereo_core.errors import StereoInputError
from stereo_core.frames import check_clip, check_mask, depth_channel, is_grey
from stereo_core.layouts import compose_stereo, split_splat_grid
from stereo_core.mask import refine_mask
from stereo_core.splatting import occlusion_from_depth, warp_clip
from stereo_core.visualize import visualize_depth
from stereo_core.warp import forward_warp

WARP = dict(max_disp=3.0, disp_unit="pixels", convergence=0.5, invert_depth=False, normalize="clip")
NAN = r"contains NaN or infinite values \(frames 1\)"
BYTE_SCALE = r"holds values from [\d.]+ to 25\d.*It looks like 0\.\.255: divide it by 255"


def with_nan(tensor):
    bad = tensor.clone()
    bad[1, 2, 3] = float("nan")
    return bad


def scaled(tensor):
    return tensor * 255


@pytest.fixture
def node_error(pack):
    """StereoInputError as the nodes raise it (the pack imported under its package name)."""
    return pack.stereo_core.errors.StereoInputError


@pytest.fixture
def inputs(clip, depth_clip):
    """Good values for every input name used below (frames [4, 24, 40])."""
    right, occlusion = warp_clip(clip, depth_clip, DisparitySettings(max_disp=3.0))
    grid = torch.cat([torch.cat([clip, clip], 2), torch.cat([occlusion.unsqueeze(-1).expand(-1, -1, -1, 3), right], 2)], 1)
    return {"image": clip, "left": clip, "right": right, "depth": depth_clip, "mask": occlusion,
            "occlusion": occlusion, "warped": right, "reference": clip.flip(2), "grid": grid}


# node type, how to call it with a dict of inputs, the input to spoil, how, the message
CASES = [
    ("SC3D_ForwardWarpStereo", lambda n, i: n.warp(i["image"], i["depth"], **WARP), "image", with_nan, NAN),
    ("SC3D_ForwardWarpStereo", lambda n, i: n.warp(i["image"], i["depth"], **WARP), "image", scaled, BYTE_SCALE),
    ("SC3D_ForwardWarpStereo", lambda n, i: n.warp(i["image"], i["depth"], **WARP), "depth", with_nan, NAN),
    ("SC3D_ForwardWarpStereo", lambda n, i: n.warp(i["image"], i["depth"], **{**WARP, "normalize": "none"}),
     "depth", scaled, r"'depth' holds values from 0 to [\d.]+, but normalize 'none' expects depth already in 0\.\.1"),
    ("SC3D_OcclusionMask", lambda n, i: n.make(0.5, 2, 1.0, mask=i["mask"], **WARP), "mask", with_nan, NAN),
    ("SC3D_OcclusionMask", lambda n, i: n.make(0.5, 2, 1.0, mask=i["mask"], **WARP), "mask", scaled,
     r"'mask' holds values from 0 to 25\d, but masks hold 0\.\.1, 1 = hole"),
    ("SC3D_OcclusionMask", lambda n, i: n.make(0.5, 2, 1.0, depth=i["depth"], **WARP), "depth", with_nan, NAN),
    ("SC3D_SBSCompose", lambda n, i: n.compose(i["left"], i["right"], "sbs", False), "left", with_nan, NAN),
    ("SC3D_SBSCompose", lambda n, i: n.compose(i["left"], i["right"], "half-sbs", False), "right", scaled,
     BYTE_SCALE),
    ("SC3D_Anaglyph", lambda n, i: n.make(i["left"], i["right"], "color"), "left", with_nan, NAN),
    ("SC3D_Anaglyph", lambda n, i: n.make(i["left"], i["right"], "dubois"), "right", with_nan, NAN),
    ("SC3D_Anaglyph", lambda n, i: n.make(i["left"], i["right"], "color"), "right", scaled, BYTE_SCALE),
    ("SC3D_DepthVisualize", lambda n, i: n.visualize(i["depth"], "inferno", "clip"), "depth", with_nan, NAN),
    ("SC3D_DepthVisualize", lambda n, i: n.visualize(i["depth"], "gray", "none"), "depth", scaled,
     r"'depth' holds values from 0 to [\d.]+, but normalize 'none'"),
    ("SC3D_SplatGridCompose", lambda n, i: n.compose(i["left"], i["depth"], i["occlusion"], i["warped"], "inferno"),
     "left", with_nan, NAN),
    ("SC3D_SplatGridCompose", lambda n, i: n.compose(i["left"], i["depth"], i["occlusion"], i["warped"], "inferno"),
     "occlusion", with_nan, NAN),
    ("SC3D_SplatGridCompose", lambda n, i: n.compose(i["left"], i["depth"], i["occlusion"], i["warped"], "inferno"),
     "warped", scaled, BYTE_SCALE),
    ("SC3D_SplatGridCompose", lambda n, i: n.compose(i["left"], i["depth"], i["occlusion"], i["warped"], "inferno"),
     "depth", with_nan, NAN),
    ("SC3D_SplatGridSplit", lambda n, i: n.split(i["grid"]), "grid", with_nan, NAN),
    ("SC3D_SplatGridSplit", lambda n, i: n.split(i["grid"]), "grid", scaled, BYTE_SCALE),
    ("SC3D_StereoColorMatch", lambda n, i: n.match(i["image"], i["reference"], "clip", 20, 1.0), "image", with_nan,
     NAN),
    ("SC3D_StereoColorMatch", lambda n, i: n.match(i["image"], i["reference"], "clip", 20, 1.0), "reference",
     with_nan, NAN),
    ("SC3D_StereoColorMatch", lambda n, i: n.match(i["image"], i["reference"], "frame", 20, 1.0, mask=i["mask"]),
     "mask", with_nan, NAN),
    ("SC3D_StereoColorMatch", lambda n, i: n.match(i["image"], i["reference"], "clip", 20, 1.0), "reference",
     scaled, BYTE_SCALE),
]


@pytest.mark.parametrize("node_type, call, name, spoil, message", CASES,
                         ids=[f"{c[0][5:]}-{c[2]}-{c[3].__name__}" for c in CASES])
def test_nodes_refuse_bad_values_naming_the_input(nodes, node_error, inputs, node_type, call, name, spoil, message):
    inputs[name] = spoil(inputs[name])
    with pytest.raises(node_error, match=f"'{name}' {message}" if message.startswith(("contains", "holds"))
                       else message):
        call(nodes[node_type](), inputs)


def test_inpaint_refuses_a_nan_mask_and_an_image_in_0_255(nodes, node_error, stereocrafter_model, inputs):
    node = nodes["SC3D_StereoCrafterInpaintChunked"]()
    settings = dict(steps=1, guidance=1.0, min_guidance=1.0, frames_chunk=4, overlap=0, tile_num=1, color_match="off",
                    keep_unmasked=False, seed=0)
    with pytest.raises(node_error, match=f"'mask' {NAN}"):
        node.inpaint(stereocrafter_model, inputs["warped"], with_nan(inputs["mask"]), **settings)
    with pytest.raises(node_error, match=f"'warped' {BYTE_SCALE}"):
        node.inpaint(stereocrafter_model, scaled(inputs["warped"]), inputs["mask"], **settings)


def test_depthcrafter_depth_refuses_an_image_in_0_255(nodes, node_error, depthcrafter_model, clip):
    settings = dict(steps=1, guidance=1.0, window=4, overlap=0, noise_aug=0.02, max_res=1024, seed=0,
                    encode_chunk=8, decode_chunk=8)
    with pytest.raises(node_error, match=f"'image' {BYTE_SCALE}"):
        nodes["SC3D_DepthCrafterDepth"]().estimate(depthcrafter_model, scaled(clip), **settings)


def test_color_match_no_longer_turns_the_clip_nan_from_one_pixel(clip):
    with pytest.raises(StereoInputError, match=f"'image' {NAN}"):
        match_colors(with_nan(clip), clip.flip(2))


def test_library_functions_check_too_so_the_command_line_gets_the_same_errors(clip, depth_clip):
    settings = DisparitySettings(max_disp=3.0)
    with pytest.raises(StereoInputError, match=f"'image' {NAN}"):
        warp_clip(with_nan(clip), depth_clip, settings)
    with pytest.raises(StereoInputError, match=f"'right' {NAN}"):
        anaglyph(clip, with_nan(clip))
    with pytest.raises(StereoInputError, match=f"'left' {BYTE_SCALE}"):
        compose_stereo(scaled(clip), clip)
    with pytest.raises(StereoInputError, match=f"'mask' {NAN}"):
        refine_mask(with_nan(depth_clip[..., 0]))
    with pytest.raises(StereoInputError, match=f"'grid' {NAN}"):
        split_splat_grid(with_nan(torch.zeros(2, 8, 8, 3)))


def test_infinity_and_minus_one_to_one_scale_are_refused_too(clip):
    spoiled = clip.clone()
    spoiled[2, 0, 0, 1] = float("inf")
    with pytest.raises(StereoInputError, match=r"'left' contains NaN or infinite values \(frames 2\)"):
        check_clip(spoiled, "left")
    with pytest.raises(StereoInputError, match=r"'left' holds values from -0\.99\d* to 0\.99\d*.*It looks like -1\.\.1"):
        check_clip(clip * 2 - 1, "left")
    with pytest.raises(StereoInputError, match=r"'mask' holds values from -3 .*masks hold 0\.\.1"):
        check_mask(torch.tensor([[[-3.0, 0.0]]]), "mask")


def test_small_overshoot_is_accepted_and_depth_on_any_scale_with_clip_normalisation(clip, depth_clip):
    check_clip(clip * 1.1 - 0.05, "image")  # resampling and sharpening overshoot a little
    settings = DisparitySettings(max_disp=3.0)
    expected = warp_clip(clip, depth_clip, settings)
    in_bytes = warp_clip(clip, depth_clip * 255, settings)  # e.g. a depth IMAGE on a byte scale
    torch.testing.assert_close(in_bytes, expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("max_disp, unit", [(40.0, "pixels"), (20.0, "pixels"), (50.0, "percent"), (500.0, "pixels")])
def test_max_disp_that_lets_the_holes_cover_the_frame_is_refused(nodes, node_error, clip, depth_clip, max_disp, unit):
    """40 px frames: nearest and farthest points 2 max_disp apart, as wide as the frame or wider."""
    message = (r"max_disp of .* px: the nearest and farthest points would move \d+ px relative to each other, as "
               r"much as or more than the frame width \(40 px\), so the holes could cover the whole frame\. Typical "
               r"values are 10-40 \(reference or px\) or 1-4 percent; keep it below 20 px")
    settings = {**WARP, "max_disp": max_disp, "disp_unit": unit}
    with pytest.raises(node_error, match=message):
        nodes["SC3D_ForwardWarpStereo"]().warp(clip, depth_clip, **settings)
    with pytest.raises(node_error, match=message):
        nodes["SC3D_OcclusionMask"]().make(0.5, 0, 0.0, depth=depth_clip, **settings)


def test_at_the_bound_a_plausible_depth_leaves_almost_nothing_but_holes(clip):
    """Why the bound: a ramp from far (left) to near (right), e.g. a wall seen at an angle,
    with max_disp half the frame width folds the whole row onto its middle."""
    ramp = torch.linspace(0, 1, 40).expand(4, 24, 40)
    _, holes = forward_warp(clip, (ramp * 2 - 1) * 20.0)
    assert (holes > 0.5).float().mean() > 0.9


def test_splat_grid_compose_names_the_depth_input_and_broadcasts_one_frame(nodes, node_error, inputs):
    node = nodes["SC3D_SplatGridCompose"]()
    args = inputs["left"], inputs["depth"], inputs["occlusion"], inputs["warped"]
    with pytest.raises(node_error, match="'depth' has 2 frames but 'left' has 4"):
        node.compose(args[0], args[1][:2], *args[2:], "inferno")
    (grid,) = node.compose(args[0], args[1][:1], *args[2:], "inferno")
    (first,) = node.compose(args[0][:1], args[1][:1], args[2][:1], args[3][:1], "inferno")
    assert grid.shape == (4, 48, 80, 3) and torch.equal(grid[3, :24, 40:], first[0, :24, 40:])


def test_grey_depth_gives_its_own_value_exactly_and_colour_the_mean():
    grey = torch.rand(2, 5, 7, 1).expand(-1, -1, -1, 3).contiguous()
    assert is_grey(grey) and torch.equal(depth_channel(grey), grey[..., 0])
    mixed = grey.clone()
    mixed[1, 4, 6, 2] += 0.5
    assert not is_grey(mixed)
    expected = grey[..., 0].clone()
    expected[1, 4, 6] = mixed[1, 4, 6].mean()  # the one coloured pixel; the others stay exact
    assert torch.equal(depth_channel(mixed), expected)


def test_occlusion_from_depth_checks_depth_scale_only_for_normalize_none(depth_clip):
    with pytest.raises(StereoInputError, match="normalize 'none' expects depth already in 0..1"):
        occlusion_from_depth(depth_clip * 255, DisparitySettings(max_disp=3.0, normalize="none"))
    torch.testing.assert_close(occlusion_from_depth(depth_clip * 255, DisparitySettings(max_disp=3.0)),
                               occlusion_from_depth(depth_clip, DisparitySettings(max_disp=3.0)), atol=2e-5, rtol=0)


def test_visualize_accepts_any_scale_when_normalising(depth_clip):
    torch.testing.assert_close(visualize_depth(depth_clip * 255, "gray"), visualize_depth(depth_clip, "gray"))
