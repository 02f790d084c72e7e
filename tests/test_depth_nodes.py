"""The DepthCrafter nodes as ComfyUI runs them: outputs, progress bar, Cancel, model folders."""

import pytest
import torch
from conftest import Cancelled

FAST = dict(steps=2, guidance=1.2, window=6, overlap=2, noise_aug=0.02, max_res=1024, seed=3, encode_chunk=8,
            decode_chunk=8)


def test_depth_node_outputs_a_three_channel_depth_image(nodes, depthcrafter_model):
    image = torch.rand(7, 50, 70, 3, generator=torch.Generator().manual_seed(0))
    (depth,) = nodes["SC3D_DepthCrafterDepth"]().estimate(depthcrafter_model, image, **FAST)
    assert depth.shape == (7, 50, 70, 3) and depth.dtype == torch.float32 and depth.is_contiguous()
    assert torch.equal(depth[..., 0], depth[..., 1]) and torch.equal(depth[..., 0], depth[..., 2])
    assert 0.0 <= float(depth.min()) and float(depth.max()) <= 1.0
    (again,) = nodes["SC3D_DepthCrafterDepth"]().estimate(depthcrafter_model, image, **FAST)
    assert torch.equal(depth, again)  # the seed fixes the result


def test_depth_node_spans_exactly_0_to_1_over_the_clip_at_the_input_size(nodes, depthcrafter_model):
    # 176x144 runs at 192x128 and is resized back: the extremes must be taken after the resize.
    image = torch.rand(5, 144, 176, 3, generator=torch.Generator().manual_seed(1))
    (depth,) = nodes["SC3D_DepthCrafterDepth"]().estimate(depthcrafter_model, image, **FAST)
    assert depth.shape == (5, 144, 176, 3)
    assert float(depth.min()) == 0.0 and float(depth.max()) == 1.0
    (again,) = nodes["SC3D_DepthCrafterDepth"]().estimate(depthcrafter_model, image, **FAST)
    assert torch.equal(depth, again)


def test_depth_node_moves_comfys_progress_bar_and_stops_on_cancel(nodes, depthcrafter_model, fake_comfy):
    image = torch.rand(11, 64, 64, 3)
    nodes["SC3D_DepthCrafterDepth"]().estimate(depthcrafter_model, image, **FAST)
    total = 2 * 2 + 3 * 2 + 2  # encode chunks (CLIP, VAE), 3 windows x 2 steps, decode chunks
    assert fake_comfy.updates == [(i, total) for i in range(1, total + 1)]

    fake_comfy.updates.clear()
    fake_comfy.cancel_after = 6  # mid-way through the windows
    with pytest.raises(Cancelled):
        nodes["SC3D_DepthCrafterDepth"]().estimate(depthcrafter_model, image, **FAST)
    assert len(fake_comfy.updates) == 6


def test_comfy_model_folders_and_memory_are_used(pack, model_tree, monkeypatch, tmp_path):
    adapter = pack.nodes.comfy_adapter
    registered, freed = {}, []
    root = model_tree["svd"].parent

    class FakeFolderPaths:
        models_dir = str(tmp_path / "models")

        @staticmethod
        def add_model_folder_path(key, path):
            registered.setdefault(key, []).append(path)

        @staticmethod
        def get_folder_paths(key):
            if key == "diffusers":
                return [str(tmp_path / "models" / "diffusers")]
            return registered.get(key, [])

    class FakeModelManagement:
        @staticmethod
        def get_torch_device():
            return torch.device("cpu")

        @staticmethod
        def unet_offload_device():
            return torch.device("cpu")

        @staticmethod
        def free_memory(size, device):
            freed.append((size, device))

        @staticmethod
        def soft_empty_cache():
            pass

    monkeypatch.setattr(adapter, "_folder_paths", FakeFolderPaths)
    monkeypatch.setattr(adapter, "_mm", FakeModelManagement)
    registered["stereocrafter"] = [str(root)]  # as extra_model_paths.yaml would have added it
    adapter.register_model_folder()
    assert registered["stereocrafter"] == [str(root), str(tmp_path / "models" / "stereocrafter")]
    assert (tmp_path / "models" / "stereocrafter").is_dir()

    choices = pack.NODE_CLASS_MAPPINGS["SC3D_DepthCrafterModelLoader"].INPUT_TYPES()["required"]["model_folder"][0]
    assert "DepthCrafter" in choices and "svd-fp16-only" in choices
    (model,) = pack.NODE_CLASS_MAPPINGS["SC3D_DepthCrafterModelLoader"]().load(
        "stable-video-diffusion-img2vid-xt-1-1", "DepthCrafter", "auto", "offload to CPU between uses")
    assert model.dtype == torch.float32  # auto on the CPU
    hooks = model.placement.memory
    hooks.free(123, torch.device("cpu"))
    assert freed == [(123, torch.device("cpu"))]


def test_shipped_workflows_validate_before_weights_are_downloaded(nodes):
    # Folder names are checked at load time (with download instructions), not by ComfyUI's combo check.
    loader = nodes["SC3D_DepthCrafterModelLoader"]
    assert loader.VALIDATE_INPUTS(svd_folder="anything", model_folder="anything") is True
