"""The Video Depth Anything loader and depth nodes, imported as ComfyUI imports the pack (no ComfyUI needed)."""

import pytest
import torch

from stereo_core import model_files
from stereo_core import video_depth_anything as vda

LOADER, DEPTH = "SC3D_VideoDepthAnythingModelLoader", "SC3D_VideoDepthAnythingDepth"


@pytest.fixture
def model(nodes, models_dir):
    (loaded,) = nodes[LOADER]().load("Video-Depth-Anything-Small", "fp32")
    return loaded


def test_loader_lists_the_small_folder_first_and_loads_it(nodes, models_dir, model):
    choices = nodes[LOADER].INPUT_TYPES()["required"]["model_folder"][0]
    assert choices[0] == "Video-Depth-Anything-Small" and "DepthCrafter" in choices
    assert model.kind == model_files.VDA_SMALL and model.dtype == torch.float32
    assert not any(parameter.requires_grad for parameter in model.network.parameters())


def test_depth_node_gives_the_clip_normalised_depth_as_an_image(nodes, model, fake_comfy):
    generator = torch.Generator().manual_seed(5)
    video = torch.rand(30, 24, 40, 3, generator=generator)  # two windows
    (image,) = nodes[DEPTH]().estimate(model, video, 28)
    assert image.shape == (30, 24, 40, 3)
    assert torch.equal(image[..., 0], image[..., 1]) and torch.equal(image[..., 0], image[..., 2])
    assert float(image.min()) == 0.0 and float(image.max()) == pytest.approx(1.0)
    raw = vda.infer_video_depth(model.network, video, 28)
    torch.testing.assert_close(image[..., 0], (raw - raw.min()) / (raw.max() - raw.min()))
    done = [value for value, total in fake_comfy.updates]
    assert fake_comfy.updates[-1] == (2, 2) and done == sorted(done)


def test_depth_node_refuses_another_model(nodes, clip):
    with pytest.raises(ValueError, match="Video Depth Anything Model Loader"):  # the pack's StereoInputError
        nodes[DEPTH]().estimate(object(), clip, 518)


def test_a_missing_folder_names_the_download_switch_and_command(nodes, models_dir):
    with pytest.raises(ValueError, match="download_if_missing") as error:
        nodes[LOADER]().load("Video-Depth-Anything-Large", "fp32")
    assert "--only video-depth-anything-large" in str(error.value)
