"""Downloading the models: the real huggingface_hub client against a Hub stand-in on 127.0.0.1.

The stand-in (hub_standin.py) serves the tiny random-weight folders as the three repositories,
with Stable Video Diffusion gated and holding files the pipeline never reads. No test reaches
the real Hub: the command runs with HF_ENDPOINT pointing at the stand-in, and in-process
tests give huggingface_hub the settings those environment variables would give it.
"""

import os
import re
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import pytest

from hub_standin import HubStandIn, repo_from_folder
from stereo_core import cli, download, model_files
from stereo_core.model_files import DEPTHCRAFTER, STEREOCRAFTER, SVD
from synthetic_video import describe, make_video
from test_cli import FAST

ROOT = Path(__file__).resolve().parents[1]
SVD_REPO, DC_REPO, SC_REPO = (model_files.DOWNLOADS[kind] for kind in (SVD, DEPTHCRAFTER, STEREOCRAFTER))
TOKEN = "hf_standin_token"
# In the real SVD repository: the 4.8 GB single-file checkpoint and the UNet, never used.
UNUSED = ("svd_xt_1_1.safetensors", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
          "unet/diffusion_pytorch_model.fp16.safetensors")
SVD_FP16 = ["model_index.json", "vae/config.json", "image_encoder/config.json",
            "feature_extractor/preprocessor_config.json", "scheduler/scheduler_config.json",
            "vae/diffusion_pytorch_model.fp16.safetensors", "image_encoder/model.fp16.safetensors"]


@pytest.fixture(scope="module")
def repos(model_tree, tmp_path_factory):
    extra = tmp_path_factory.mktemp("hub_extra")
    large = extra / "large.safetensors"
    large.write_bytes(bytes(4_000_000))
    card = extra / "README.md"
    card.write_text("model card")
    unused = {name: (model_tree["depthcrafter"] / "config.json" if name.endswith(".json") else large) for name in UNUSED}
    return {
        SVD_REPO: repo_from_folder(model_tree["svd"], {**unused, "README.md": card, "LICENSE.md": card},
                                   gated_token=TOKEN),
        DC_REPO: repo_from_folder(model_tree["depthcrafter"], {"README.md": card}),
        SC_REPO: repo_from_folder(model_tree["stereocrafter"], {"README.md": card}),
        model_files.DOWNLOADS[model_files.DAV2_SMALL]: repo_from_folder(model_tree["dav2"], {"README.md": card}),
    }


@pytest.fixture
def hub(repos):
    with HubStandIn(repos) as stand_in:
        yield stand_in


def point_hub_at(monkeypatch, url):
    """What HF_ENDPOINT=url gives huggingface_hub when set before it is imported."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    """huggingface_hub in this process as HF_HOME=<empty folder> with no token and the Hub unreachable would
    set it up (tests point it at a stand-in)."""
    from huggingface_hub import constants

    point_hub_at(monkeypatch, "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf" / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hub_settings(hub, hf_home, monkeypatch):
    """huggingface_hub in this process as HF_ENDPOINT=<stand-in>, HF_HOME=<empty folder> and no token would."""
    point_hub_at(monkeypatch, hub.url)
    return hub


def never_asked_for_unused_files(hub):
    asked = [r.path for r in hub.requests if r.path.endswith(UNUSED)]
    assert not asked, f"unused SVD files were requested: {asked}"


def usable(folder, kind):
    return model_files.folder_problem(folder, kind) is None


def run_command(hub, models, tmp_path, **env):
    """python -m stereo_core download, as a user runs it, with the stand-in as HF_ENDPOINT."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGING"))}
    clean.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), **env)
    return subprocess.run([sys.executable, "-m", "stereo_core", "download", "--models", str(models)], cwd=ROOT,
                          env=clean, capture_output=True, text=True, timeout=300)


def test_without_a_token_svd_is_refused_the_others_kept_then_a_token_completes_and_a_video_converts(hub, tmp_path):
    models = tmp_path / "models"
    first = run_command(hub, models, tmp_path)
    assert first.returncode == 1 and "Traceback" not in first.stderr + first.stdout
    # The refusal names the repository, the licence page and the two ways to give a token.
    assert f"({SVD_REPO}) is a gated repository and no Hugging Face token was given" in first.stderr
    assert f"accept its licence at {hub.url}/{SVD_REPO}" in first.stderr
    assert "`hf auth login`" in first.stderr and "HF_TOKEN" in first.stderr
    assert "Kept: DepthCrafter, StereoCrafter." in first.stderr
    # Before fetching, the plan: files with their sizes and the total.
    size = hub.repos[DC_REPO].meta["diffusion_pytorch_model.safetensors"]["size"]
    assert re.search(rf"\n +diffusion_pytorch_model\.safetensors +{download.human_size(size)}\n", first.stdout)
    assert "To download: 4 files" in first.stdout
    assert usable(models / "DepthCrafter", DEPTHCRAFTER) and usable(models / "StereoCrafter", STEREOCRAFTER)
    assert not usable(models / "stable-video-diffusion-img2vid-xt-1-1", SVD)
    assert hub.downloads(SVD_REPO) == []

    hub.requests.clear()
    second = run_command(hub, models, tmp_path, HF_TOKEN=TOKEN)
    assert second.returncode == 0, second.stderr
    assert "DepthCrafter: already complete" in second.stdout and "All model folders are ready" in second.stdout
    assert hub.downloads(DC_REPO) == [] and hub.downloads(SC_REPO) == [], "kept folders are not fetched again"
    assert sorted(path.split("/resolve/")[1].split("/", 1)[1] for path in hub.downloads(SVD_REPO)) == sorted(SVD_FP16)
    never_asked_for_unused_files(hub)

    source = make_video(tmp_path / "clip.mp4", frames=10, width=96, height=64, fps=Fraction(24))
    output = tmp_path / "clip_sbs.mp4"
    assert cli.main([str(source), "-o", str(output), "--models", str(models), "--max-frames", "6", *FAST]) == 0
    assert describe(output) == {"frames": 6, "width": 192, "height": 64, "fps": Fraction(24), "audio": "aac"}


def test_variant_and_only_pick_the_files(hub_settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert download.main(["--models", str(tmp_path), "--variant", "fp32", "--only", "depth"]) == 0
    fetched = {path.split("/resolve/")[1].split("/", 1)[1] for path in hub_settings.downloads()}
    assert {"vae/diffusion_pytorch_model.safetensors", "image_encoder/model.safetensors",
            "diffusion_pytorch_model.safetensors"} <= fetched
    assert not any(".fp16." in name for name in fetched)
    assert not any(SC_REPO in r.path for r in hub_settings.requests), "--only depth never asks for StereoCrafter"
    assert not (tmp_path / "StereoCrafter").exists()
    never_asked_for_unused_files(hub_settings)
    out = capsys.readouterr().out
    total = sum(path.stat().st_size for path in tmp_path.rglob("*") if path.is_file() and ".cache" not in path.parts)
    assert f"To download: {len(fetched)} files, {download.human_size(total)}" in out


def test_a_token_without_access_is_told_to_accept_the_licence(hub_settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_someone_else")
    assert download.main(["--models", str(tmp_path), "--only", "inpaint"]) == 1
    err = capsys.readouterr().err
    assert "the token given has no access to it yet (accept the licence" in err
    assert usable(tmp_path / "StereoCrafter", STEREOCRAFTER)


def test_complete_folders_ask_nothing_and_offline_mode_downloads_nothing(hub_settings, model_tree, tmp_path,
                                                                        monkeypatch, capsys):
    import shutil

    from huggingface_hub import constants

    for kind in (SVD, DEPTHCRAFTER, STEREOCRAFTER):
        shutil.copytree(model_tree[kind], tmp_path / "complete" / model_files.FOLDER_NAMES[kind])
    assert download.main(["--models", str(tmp_path / "complete")]) == 0
    assert capsys.readouterr().out.count("already complete") == 3
    assert hub_settings.requests == []

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert download.main(["--models", str(tmp_path / "empty"), "--only", "depth"]) == 1
    assert "HF_HUB_OFFLINE is set, so tencent/DepthCrafter cannot be downloaded" in capsys.readouterr().err
    assert hub_settings.requests == []


def test_stopping_from_progress_ends_the_download_and_the_next_run_fetches_the_rest(hub_settings, tmp_path,
                                                                                    monkeypatch):
    from huggingface_hub import constants

    # A slow network, and the client reading (and reporting) 64 kB at a time as it reads 10 MB of a large file.
    hub_settings.chunk, hub_settings.delay = 16 * 1024, 0.02
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        raise Cancelled()

    folder = tmp_path / "DepthCrafter"
    plan = download.plan_folder(DEPTHCRAFTER, folder)
    with pytest.raises(Cancelled):
        download.fetch([plan], progress=cancel)
    assert not any(t.name == "stereocrafter-download" for t in threading.enumerate()), "the download went on"
    assert (folder / "config.json").is_file() and not usable(folder, DEPTHCRAFTER)
    # The files are fetched in parallel, so the large one's request need not be the last recorded.
    assert any(sent.method == "GET" and sent.path.endswith("diffusion_pytorch_model.safetensors")
               for sent in hub_settings.requests)

    hub_settings.delay = 0
    hub_settings.requests.clear()
    updates = []
    plan = download.plan_folder(DEPTHCRAFTER, folder)
    assert [f.path for f in plan.files] == ["diffusion_pytorch_model.safetensors"], "finished files are kept"
    download.fetch([plan], progress=lambda done, total: updates.append((done, total)))
    assert plan.problem is None and usable(folder, DEPTHCRAFTER)
    assert updates[-1] == (plan.size, plan.size)
    assert [path.rsplit("/", 1)[1] for path in hub_settings.downloads()] == ["diffusion_pytorch_model.safetensors"]


def test_loader_downloads_only_when_asked(hub_settings, pack, fake_comfy, tmp_path, monkeypatch):
    monkeypatch.setenv("STEREOCRAFTER_MODELS", str(tmp_path))
    monkeypatch.setattr(pack.nodes.comfy_adapter, "_mm", None)  # ComfyUI's progress bar only
    loader = pack.NODE_CLASS_MAPPINGS["SC3D_DepthCrafterModelLoader"]()
    with pytest.raises(ValueError, match="Turn on download_if_missing in this loader to download it there"):
        loader.load("stable-video-diffusion-img2vid-xt-1-1", "DepthCrafter", "fp32", "keep on GPU")
    assert hub_settings.requests == [] and list(tmp_path.iterdir()) == []

    # Switched on without access to SVD: the gated message, and nothing downloaded at all.
    with pytest.raises(ValueError) as refused:
        loader.load("stable-video-diffusion-img2vid-xt-1-1", "DepthCrafter", "fp32", "keep on GPU",
                    download_if_missing=True)
    assert f"({SVD_REPO}) is a gated repository" in str(refused.value)
    assert "3) run the workflow again" in str(refused.value)
    assert hub_settings.downloads() == []

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    (model,) = loader.load("stable-video-diffusion-img2vid-xt-1-1", "DepthCrafter", "fp32", "keep on GPU",
                           download_if_missing=True)
    assert model.kind == DEPTHCRAFTER
    assert usable(tmp_path / "DepthCrafter", DEPTHCRAFTER) and not (tmp_path / "StereoCrafter").exists()
    total = fake_comfy.updates[-1][1]
    assert fake_comfy.updates[-1] == (total, total) and total > 1_000_000
    never_asked_for_unused_files(hub_settings)


def test_loader_does_not_download_into_another_models_folder(hub_settings, pack, model_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("STEREOCRAFTER_MODELS", str(model_tree["svd"].parent))
    loader = pack.NODE_CLASS_MAPPINGS["SC3D_DepthCrafterModelLoader"]()
    with pytest.raises(ValueError, match="It looks like the StereoCrafter download"):
        loader.load("stable-video-diffusion-img2vid-xt-1-1", "StereoCrafter", "fp32", "keep on GPU",
                    download_if_missing=True)
    assert hub_settings.requests == []


@pytest.mark.parametrize("variant, listing, expected", [
    ("fp16", ["config.json", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"],
     ["config.json", "diffusion_pytorch_model.fp16.safetensors"]),
    ("fp32", ["config.json", "diffusion_pytorch_model.fp16.safetensors"],  # only fp16 there: taken anyway
     ["config.json", "diffusion_pytorch_model.fp16.safetensors"]),
    ("fp32", ["config.json", "diffusion_pytorch_model.safetensors.index.json",
              "diffusion_pytorch_model-00001-of-00002.safetensors", "diffusion_pytorch_model-00002-of-00002.safetensors",
              "diffusion_pytorch_model.fp16-00001-of-00001.safetensors"],
     ["config.json", "diffusion_pytorch_model.safetensors.index.json",
      "diffusion_pytorch_model-00001-of-00002.safetensors", "diffusion_pytorch_model-00002-of-00002.safetensors"]),
])
def test_weight_files_follow_the_variant_and_sharding(variant, listing, expected):
    chosen, lacking = download._choose_files(DEPTHCRAFTER, dict.fromkeys(listing, 1), variant)
    assert [f.path for f in chosen] == expected and lacking == []
    # What was chosen is exactly what makes the folder usable (the checks and the downloads share NEEDED_FILES).
    assert not download._choose_files(DEPTHCRAFTER, {"README.md": 1}, variant)[0]


def test_an_unreachable_hub_is_one_sentence(hf_home, tmp_path, capsys):
    assert download.main(["--models", str(tmp_path), "--only", "depth"]) == 1
    err = capsys.readouterr().err
    assert "Could not reach http://127.0.0.1:9 for tencent/DepthCrafter" in err and "Traceback" not in err


def test_files_in_the_hugging_face_cache_are_copied_not_downloaded(hub_settings, tmp_path):
    from huggingface_hub import hf_hub_download

    hf_hub_download(DC_REPO, "diffusion_pytorch_model.safetensors")  # e.g. an earlier `hf download`, into the cache
    hub_settings.requests.clear()
    plans = [download.plan_folder(DEPTHCRAFTER, tmp_path / "DepthCrafter")]
    download.fetch(plans)
    assert plans[0].problem is None and usable(tmp_path / "DepthCrafter", DEPTHCRAFTER)
    assert [path.rsplit("/", 1)[1] for path in hub_settings.downloads()] == ["config.json"]


def test_only_depth_anything_v2_fetches_its_three_files_and_states_the_licence(hub_settings, tmp_path, capsys):
    assert download.main(["--models", str(tmp_path), "--only", "depth-anything-v2-small"]) == 0
    repo = model_files.DOWNLOADS[model_files.DAV2_SMALL]
    fetched = {path.split("/resolve/")[1].split("/", 1)[1] for path in hub_settings.downloads()}
    assert fetched == {"config.json", "preprocessor_config.json", "model.safetensors"}
    assert all(repo in r.path for r in hub_settings.requests), "nothing but its own repository is asked"
    assert usable(tmp_path / "Depth-Anything-V2-Small-hf", model_files.DAV2_SMALL)
    assert "weights licence: Apache-2.0" in capsys.readouterr().out


def test_depth_anything_v2_loader_downloads_when_asked(hub_settings, pack, fake_comfy, tmp_path, monkeypatch):
    monkeypatch.setenv("STEREOCRAFTER_MODELS", str(tmp_path))
    monkeypatch.setattr(pack.nodes.comfy_adapter, "_mm", None)
    loader = pack.NODE_CLASS_MAPPINGS["SC3D_DepthAnythingV2ModelLoader"]()
    with pytest.raises(ValueError, match="Turn on download_if_missing"):
        loader.load("Depth-Anything-V2-Small-hf", "fp32")
    assert hub_settings.requests == []
    (model,) = loader.load("Depth-Anything-V2-Small-hf", "fp32", download_if_missing=True)
    assert model.kind == model_files.DAV2_SMALL and usable(tmp_path / "Depth-Anything-V2-Small-hf", model.kind)
