"""The ComfyUI face: mappings, documentation in the UI, node behaviour and errors."""

import pytest
import torch
from conftest import Cancelled

EXPECTED_NAMES = {
    "Forward Warp Stereo", "Occlusion Mask", "SBS Compose", "Anaglyph",
    "Depth Visualize", "Splat Grid Compose", "Splat Grid Split",
}


def test_every_node_is_registered_with_prefix_display_name_and_category(pack):
    names = pack.NODE_DISPLAY_NAME_MAPPINGS
    assert EXPECTED_NAMES <= set(names.values())
    assert set(names) == set(pack.NODE_CLASS_MAPPINGS)
    categories = {cls.CATEGORY for cls in pack.NODE_CLASS_MAPPINGS.values()}
    assert len(categories) == 1
    for type_name, cls in pack.NODE_CLASS_MAPPINGS.items():
        assert type_name.startswith("SC3D_")
        assert len(cls.DESCRIPTION) > 40
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES)
        assert callable(getattr(cls(), cls.FUNCTION))


def test_every_input_has_a_tooltip(nodes):
    for type_name, cls in nodes.items():
        for section_name, section in cls.INPUT_TYPES().items():
            if section_name == "hidden":  # filled in by ComfyUI, never shown
                continue
            for input_name, spec in section.items():
                options = spec[1] if len(spec) > 1 else {}
                assert options.get("tooltip"), f"{type_name}.{input_name} has no tooltip"


def warp_args(**overrides):
    args = dict(max_disp=3.0, disp_unit="pixels", convergence=0.5, invert_depth=False, normalize="clip")
    args.update(overrides)
    return args


def test_forward_warp_node_outputs_image_and_mask(nodes, clip, depth_clip):
    right, occlusion = nodes["SC3D_ForwardWarpStereo"]().warp(clip, depth_clip, **warp_args())
    assert right.shape == clip.shape and occlusion.shape == clip.shape[:3]
    assert 0 < occlusion.mean() < 0.5  # holes at the near square's edge only


def test_occlusion_mask_node_from_depth_and_refining(nodes, clip, depth_clip):
    node = nodes["SC3D_OcclusionMask"]()
    _, raw = nodes["SC3D_ForwardWarpStereo"]().warp(clip, depth_clip, **warp_args())
    (from_depth,) = node.make(0.5, 0, 0.0, depth=depth_clip, **warp_args())
    torch.testing.assert_close(from_depth, (raw > 0.5).float())
    (refined,) = node.make(0.5, 2, 0.0, mask=raw, **warp_args())
    assert refined.sum() > from_depth.sum()
    with pytest.raises(ValueError, match="connect 'mask' to refine it, or 'depth'"):
        node.make(0.5, 0, 0.0, **warp_args())


def test_layout_and_preview_nodes(nodes, clip, depth_clip):
    (sbs,) = nodes["SC3D_SBSCompose"]().compose(clip, clip.flip(2), "sbs", False)
    assert sbs.shape == (4, 24, 80, 3)
    (vr180,) = nodes["SC3D_SBSCompose"]().compose(clip, clip.flip(2), "vr180", False, vr180_screen_fov=60,
                                                  vr180_screen_distance=2.0, vr180_eye_size=64)
    assert vr180.shape == (4, 64, 128, 3) and vr180[:, :, :64].sum() > 0 and vr180[:, :, 64:].sum() > 0
    (red_cyan,) = nodes["SC3D_Anaglyph"]().make(clip, clip.flip(2), "color")
    assert torch.equal(red_cyan[..., 0], clip[..., 0])
    (vis,) = nodes["SC3D_DepthVisualize"]().visualize(depth_clip, "inferno", "clip")
    assert vis.shape == clip.shape
    right, occlusion = nodes["SC3D_ForwardWarpStereo"]().warp(clip, depth_clip, **warp_args())
    small_depth = depth_clip[:, ::2, ::2]
    (grid,) = nodes["SC3D_SplatGridCompose"]().compose(clip, small_depth, occlusion, right, "inferno")
    left, _, mask, warped = nodes["SC3D_SplatGridSplit"]().split(grid)
    assert torch.equal(left, clip) and torch.equal(warped, right)
    torch.testing.assert_close(mask, occlusion)


def test_node_errors_are_plain_messages_not_torch_tracebacks(nodes, clip, depth_clip):
    warp = nodes["SC3D_ForwardWarpStereo"]()
    with pytest.raises(ValueError, match="'depth' has 2 frames but 'image' has 4"):
        warp.warp(clip, depth_clip[:2], **warp_args())
    with pytest.raises(ValueError, match="max_disp must be a number >= 0"):
        warp.warp(clip, depth_clip, **warp_args(max_disp=-1.0))


def test_progress_drives_comfyuis_bar_and_honours_cancel(pack, fake_comfy, clip, depth_clip):
    long_clip, long_depth = clip.repeat(3, 1, 1, 1), depth_clip.repeat(3, 1, 1, 1)  # 12 frames, 2 batches
    pack.NODE_CLASS_MAPPINGS["SC3D_ForwardWarpStereo"]().warp(long_clip, long_depth, **warp_args())
    assert fake_comfy.updates == [(8, 12), (12, 12)]
    fake_comfy.cancel_after = 0
    with pytest.raises(Cancelled):
        pack.NODE_CLASS_MAPPINGS["SC3D_ForwardWarpStereo"]().warp(long_clip, long_depth, **warp_args())
