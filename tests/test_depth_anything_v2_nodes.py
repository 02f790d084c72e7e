"""The Depth Anything V2 nodes as ComfyUI runs them: loader, depth image, progress bar, errors."""

import pytest
import torch
from conftest import Cancelled

LOADER, DEPTH = "SC3D_DepthAnythingV2ModelLoader", "SC3D_DepthAnythingV2Depth"
SMALL = "Depth-Anything-V2-Small-hf"
FAST = dict(input_size=42, normalize="ema", ema_buffer=3, ema_decay=0.5, batch_size=2)


@pytest.fixture
def dav2_model(nodes, models_dir):
    (model,) = nodes[LOADER]().load(SMALL, "fp32")
    return model


def test_loader_lists_the_depth_anything_folders_only_with_small_first(nodes, models_dir):
    choices = nodes[LOADER].INPUT_TYPES()["required"]["model_folder"][0]
    assert choices[:3] == [SMALL, "Depth-Anything-V2-Base-hf", "Depth-Anything-V2-Large-hf"]
    assert "DepthCrafter" not in choices and "StereoCrafter" not in choices
    assert nodes[LOADER].VALIDATE_INPUTS(model_folder="anything") is True


def test_loader_loads_the_real_layout_and_says_the_licence(nodes, dav2_model):
    assert type(dav2_model).__name__ == "DepthAnythingV2Model" and dav2_model.dtype == torch.float32
    assert dav2_model.kind == "depth-anything-v2-small"
    assert "CC-BY-NC" in nodes[LOADER].DESCRIPTION and "Apache-2.0" in nodes[LOADER].DESCRIPTION


def test_a_missing_folder_names_the_switch_and_the_download(nodes, models_dir):
    with pytest.raises(ValueError) as error:
        nodes[LOADER]().load("Depth-Anything-V2-Large-hf", "fp32")
    message = str(error.value)
    assert "download_if_missing" in message and "--only depth-anything-v2-large" in message
    with pytest.raises(ValueError, match="not a Depth Anything V2 folder"):
        nodes[LOADER]().load("DepthCrafter", "fp32")


def test_depth_node_outputs_a_three_channel_white_near_image_in_0_1(nodes, dav2_model):
    image = torch.rand(7, 30, 44, 3, generator=torch.Generator().manual_seed(0))
    (depth,) = nodes[DEPTH]().estimate(dav2_model, image, **FAST)
    assert depth.shape == (7, 30, 44, 3) and depth.dtype == torch.float32 and depth.is_contiguous()
    assert torch.equal(depth[..., 0], depth[..., 1]) and torch.equal(depth[..., 0], depth[..., 2])
    assert 0.0 <= float(depth.min()) and float(depth.max()) <= 1.0
    (clip,) = nodes[DEPTH]().estimate(dav2_model, image, **{**FAST, "normalize": "clip"})
    assert float(clip.min()) == 0.0 and float(clip.max()) == 1.0
    (frame,) = nodes[DEPTH]().estimate(dav2_model, image, **{**FAST, "normalize": "frame"})
    assert all(float(f.min()) == 0.0 and float(f.max()) == 1.0 for f in frame)
    assert not torch.equal(clip, frame)


def test_depth_node_refuses_another_model(nodes, depthcrafter_model):
    with pytest.raises(ValueError, match="Connect the Depth Anything V2 Model Loader"):
        nodes[DEPTH]().estimate(depthcrafter_model, torch.rand(1, 20, 20, 3), **FAST)


def test_depth_node_moves_comfys_progress_bar_and_stops_on_cancel(nodes, dav2_model, fake_comfy):
    image = torch.rand(5, 28, 28, 3)
    nodes[DEPTH]().estimate(dav2_model, image, **FAST)
    assert fake_comfy.updates == [(2, 5), (4, 5), (5, 5)]  # one tick per batch of 2 frames

    fake_comfy.updates.clear()
    fake_comfy.cancel_after = 1
    with pytest.raises(Cancelled):
        nodes[DEPTH]().estimate(dav2_model, image, **FAST)
    assert len(fake_comfy.updates) == 1
