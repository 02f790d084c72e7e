"""Model folders, the loader nodes, the per-frame UNet, placement and dtype choices."""

import pytest
import torch

from stereo_core import model_files, placement
from stereo_core.depth_unet import PerFrameConditionedUNet
from stereo_core.video_diffusion import clip_embeddings, load_video_diffusion

SVD_NAME = "stable-video-diffusion-img2vid-xt-1-1"


@pytest.fixture
def loader(nodes):
    return nodes["SC3D_DepthCrafterModelLoader"]()


def test_loader_lists_the_folders_found_with_the_expected_names_first(nodes, models_dir):
    inputs = nodes["SC3D_DepthCrafterModelLoader"].INPUT_TYPES()["required"]
    svd_choices, unet_choices = inputs["svd_folder"][0], inputs["model_folder"][0]
    assert svd_choices[0] == SVD_NAME and unet_choices[0] == "DepthCrafter"
    assert {"StereoCrafter", "svd-fp16-only", "DepthCrafter"} <= set(svd_choices)
    assert len(svd_choices) == len(set(svd_choices))


def test_loader_node_loads_the_real_layout(loader, models_dir):
    (model,) = loader.load(SVD_NAME, "DepthCrafter", "fp32", "keep on GPU")
    assert model.kind == "depthcrafter" and model.dtype == torch.float32
    assert type(model.unet).__name__ == "PerFrameConditionedUNet"
    assert model.unet.config.in_channels == 8
    assert model.vae_scale_factor == 8 and model.clip_size == 224
    assert model.clip_mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert model.new_scheduler().config.prediction_type == "v_prediction"


def test_fp16_variant_files_are_used_when_they_are_the_only_ones(model_tree):
    from safetensors.torch import load_file

    folder = model_tree["svd_fp16_only"]
    model = load_video_diffusion("depthcrafter", folder, model_tree["depthcrafter"], dtype="fp32")
    stored = load_file(folder / "vae" / "diffusion_pytorch_model.fp16.safetensors")
    name, weight = next(iter(model.vae.state_dict().items()))
    assert stored[name].dtype == torch.float16 and weight.dtype == torch.float32
    assert torch.equal(weight, stored[name].float())


def test_variant_choice_follows_the_dtype(model_tree):
    vae_dir = model_tree["svd"] / "vae"
    assert model_files.find_weights(vae_dir, "diffusion_pytorch_model", torch.float32).variant is None
    assert model_files.find_weights(vae_dir, "diffusion_pytorch_model", torch.float16).variant == "fp16"
    assert model_files.find_weights(model_tree["depthcrafter"], "diffusion_pytorch_model", torch.float16).variant is None
    assert model_files.find_weights(model_tree["svd"], "diffusion_pytorch_model") is None


def test_missing_folder_names_where_it_looked_and_what_to_download(loader, models_dir):
    with pytest.raises(ValueError) as error:
        loader.load("no-such-folder", "DepthCrafter", "fp32", "keep on GPU")
    message = str(error.value)
    assert "No model folder 'no-such-folder' found" in message and str(models_dir) in message
    # The loader's own switch first, then our command, then by hand with `hf download` (huggingface_hub's only
    # command line since 1.0).
    switch = message.index("Turn on download_if_missing in this loader")
    command = message.index(f'python -m stereo_core download --models "{models_dir}"')
    manual = message.index("(by hand: hf download stabilityai/stable-video-diffusion-img2vid-xt-1-1 model_index.json ")
    assert switch < command < manual


def test_incomplete_svd_folder_lists_the_missing_files(loader, models_dir):
    with pytest.raises(ValueError) as error:
        loader.load("svd-incomplete", "DepthCrafter", "fp32", "keep on GPU")
    message = str(error.value)
    assert "image_encoder/config.json" in message and "image_encoder/model.safetensors" in message
    assert "vae/diffusion_pytorch_model.safetensors" in message
    assert "feature_extractor" not in message.split("Missing:")[1].split(".")[0]


@pytest.mark.parametrize("svd, unet, complaint", [
    ("DepthCrafter", "DepthCrafter", "It looks like the DepthCrafter download (tencent/DepthCrafter)"),
    (SVD_NAME, SVD_NAME, "It looks like the Stable Video Diffusion img2vid-xt-1-1 download"),
    (SVD_NAME, "StereoCrafter", "It looks like the StereoCrafter download (TencentARC/StereoCrafter)"),
])
def test_swapped_folders_are_recognised(loader, models_dir, svd, unet, complaint):
    with pytest.raises(ValueError, match="choose it in the") as error:
        loader.load(svd, unet, "fp32", "keep on GPU")
    assert complaint in str(error.value)


def test_unet_with_the_wrong_channel_count_is_refused(model_tree, tmp_path):
    import shutil

    fake = tmp_path / "DepthCrafter"
    shutil.copytree(model_tree["stereocrafter"] / "unet_diffusers", fake)
    with pytest.raises(ValueError, match="a UNet with 8 input channels \\(config.json says 9\\)"):
        load_video_diffusion("depthcrafter", model_tree["svd"], fake, dtype="fp32")


def test_corrupt_weights_get_a_download_again_message(model_tree, tmp_path):
    import shutil

    broken = tmp_path / "DepthCrafter"
    shutil.copytree(model_tree["depthcrafter"], broken)
    (broken / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="Loading the DepthCrafter UNet from .* failed: .*download them again"):
        load_video_diffusion("depthcrafter", model_tree["svd"], broken, dtype="fp32")


def test_unsupported_dtype_is_named(model_tree, monkeypatch):
    monkeypatch.setattr(placement, "_dtype_works", lambda device, dtype: False)
    with pytest.raises(ValueError, match="dtype bf16 is not supported on cpu"):
        load_video_diffusion("depthcrafter", model_tree["svd"], model_tree["depthcrafter"], dtype="bf16")


def test_auto_dtype_is_fp32_on_cpu_and_fp16_on_accelerators():
    assert placement.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert placement.resolve_dtype("auto", torch.device("cuda")) == torch.float16
    with pytest.raises(ValueError, match="dtype 'int8' is not one of auto, fp16, bf16, fp32"):
        placement.resolve_dtype("int8", torch.device("cpu"))


def test_per_frame_unet_equals_the_stock_unet_when_frames_share_one_embedding(model_tree):
    from diffusers import UNetSpatioTemporalConditionModel

    stock = UNetSpatioTemporalConditionModel.from_pretrained(model_tree["depthcrafter"]).eval()
    per_frame = PerFrameConditionedUNet.from_pretrained(model_tree["depthcrafter"]).eval()
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 5, 8, 8, 8, generator=generator)
    embedding = torch.randn(2, 1, 32, generator=generator)
    time_ids = torch.tensor([[7.0, 127.0, 0.02], [6.0, 100.0, 0.0]])
    t = torch.tensor(3.2)
    with torch.no_grad():
        expected = stock(sample, t, encoder_hidden_states=embedding, added_time_ids=time_ids).sample
        ours = per_frame(sample, t, encoder_hidden_states=embedding.expand(-1, 5, -1),
                         added_time_ids=time_ids).sample
        # And per-frame conditioning does condition per frame: changing frame 4's embedding changes the output.
        changed = embedding.expand(-1, 5, -1).clone()
        changed[:, 4] += 1.0
        other = per_frame(sample, t, encoder_hidden_states=changed, added_time_ids=time_ids).sample
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(other, ours, atol=1e-4)


def test_clip_resize_is_svds_antialiased_resize(depthcrafter_model):
    from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing

    frames = torch.rand(3, 3, 96, 160, generator=torch.Generator().manual_seed(0)) * 2 - 1
    captured = []
    hook = depthcrafter_model.image_encoder.register_forward_pre_hook(
        lambda m, a, k: captured.append(k["pixel_values"]), with_kwargs=True)
    try:
        with torch.no_grad():
            clip_embeddings(depthcrafter_model, frames)
    finally:
        hook.remove()
    mean = torch.tensor(depthcrafter_model.clip_mean).view(1, 3, 1, 1)
    std = torch.tensor(depthcrafter_model.clip_std).view(1, 3, 1, 1)
    expected = ((_resize_with_antialiasing(frames, (224, 224)) + 1) / 2 - mean) / std
    torch.testing.assert_close(captured[0], expected, atol=1e-5, rtol=1e-5)


def test_placement_on_the_cpu_keeps_parts_where_they_are():
    chosen = placement.Placement(device=torch.device("cpu"), policy="sequential")
    assert chosen.policy == "keep"
    with pytest.raises(ValueError, match="offload policy 'somewhere' is not one of keep, offload, sequential"):
        placement.Placement(device=torch.device("cpu"), policy="somewhere")


def test_unindexed_and_indexed_devices_are_the_same_place():
    assert placement.same_device(torch.device("cuda"), torch.device("cuda:0"))
    assert not placement.same_device(torch.device("cuda:1"), torch.device("cuda"))
    assert not placement.same_device(torch.device("cpu"), torch.device("cuda"))


def test_the_clip_encoder_keeps_the_stored_fp32_weights(model_tree):
    """transformers 5 would load the dtype its config names (float16 here) unless the loader asks for one."""
    import json

    from safetensors.torch import load_file

    from stereo_core.video_diffusion import load_video_diffusion

    folder = model_tree["svd"] / "image_encoder"
    assert json.loads((folder / "config.json").read_text()).get("dtype", "float16") == "float16"
    model = load_video_diffusion("depthcrafter", model_tree["svd"], model_tree["depthcrafter"], dtype="fp32")
    stored, loaded = load_file(folder / "model.safetensors"), model.image_encoder.state_dict()
    assert all(loaded[name].dtype == torch.float32 and torch.equal(loaded[name], tensor)
               for name, tensor in stored.items() if name in loaded)
