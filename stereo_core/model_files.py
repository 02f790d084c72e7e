"""The weight folders users download: which files each needs, checked before anything is loaded.

Folders are in diffusers layout (NEEDED_FILES lists exactly what the loaders read):
- SVD img2vid-xt-1-1: vae/, image_encoder/, feature_extractor/, scheduler/ (its unet/ and its
  single-file checkpoint are never used)
- DepthCrafter: config.json + diffusion_pytorch_model.safetensors at the root (8-channel UNet)
- StereoCrafter: the same two files under unet_diffusers/ (9-channel UNet)
- Depth Anything V2 Small / Base / Large (transformers `-hf` repositories): config.json,
  preprocessor_config.json and model.safetensors at the root

Weights may be the plain files or the `fp16` variants (`*.fp16.safetensors`), single or
sharded; whichever is present is used. A wrong or incomplete folder gets a message that
lists what is missing, where it looked, and which download it looks like instead. The
same NEEDED_FILES drive the download command (stereo_core.download).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import StereoInputError

SVD = "svd"
DEPTHCRAFTER = "depthcrafter"
STEREOCRAFTER = "stereocrafter"
DAV2_SMALL = "depth-anything-v2-small"
DAV2_BASE = "depth-anything-v2-base"
DAV2_LARGE = "depth-anything-v2-large"
DAV2_KINDS = (DAV2_SMALL, DAV2_BASE, DAV2_LARGE)
VDA_SMALL = "video-depth-anything-small"
VDA_BASE = "video-depth-anything-base"
VDA_LARGE = "video-depth-anything-large"
VIDEO_DEPTH_ANYTHING = (VDA_SMALL, VDA_BASE, VDA_LARGE)
# Depth models that come in sizes: the engine asks for the family (its --depth-model name), the face picks the
# size (the command line's --depth-model-size, a loader's folder). Sizes in the order of MODEL_SIZES.
DAV2_FAMILY = "depth-anything-v2"
VDA_FAMILY = "video-depth-anything"
MODEL_SIZES = ("small", "base", "large")
FAMILIES = {DAV2_FAMILY: DAV2_KINDS, VDA_FAMILY: VIDEO_DEPTH_ANYTHING}

DOWNLOADS = {
    SVD: "stabilityai/stable-video-diffusion-img2vid-xt-1-1",
    DEPTHCRAFTER: "tencent/DepthCrafter",
    STEREOCRAFTER: "TencentARC/StereoCrafter",
    DAV2_SMALL: "depth-anything/Depth-Anything-V2-Small-hf",
    DAV2_BASE: "depth-anything/Depth-Anything-V2-Base-hf",
    DAV2_LARGE: "depth-anything/Depth-Anything-V2-Large-hf",
    VDA_SMALL: "depth-anything/Video-Depth-Anything-Small",
    VDA_BASE: "depth-anything/Video-Depth-Anything-Base",
    VDA_LARGE: "depth-anything/Video-Depth-Anything-Large",
}
TITLES = {SVD: "Stable Video Diffusion img2vid-xt-1-1", DEPTHCRAFTER: "DepthCrafter", STEREOCRAFTER: "StereoCrafter",
          DAV2_SMALL: "Depth Anything V2 Small", DAV2_BASE: "Depth Anything V2 Base",
          DAV2_LARGE: "Depth Anything V2 Large",
          VDA_SMALL: "Video Depth Anything Small", VDA_BASE: "Video Depth Anything Base",
          VDA_LARGE: "Video Depth Anything Large",
          DAV2_FAMILY: "Depth Anything V2", VDA_FAMILY: "Video Depth Anything"}
# The weights' licences, stated where they are offered (Base and Large of both may not be used commercially).
NON_COMMERCIAL = "CC-BY-NC-4.0 (non-commercial use only)"
LICENCES = {DAV2_SMALL: "Apache-2.0", DAV2_BASE: NON_COMMERCIAL, DAV2_LARGE: NON_COMMERCIAL,
            VDA_SMALL: "Apache-2.0", VDA_BASE: NON_COMMERCIAL, VDA_LARGE: NON_COMMERCIAL}
# Outside ComfyUI, the folders holding the downloads (os.pathsep-separated); default ./models/stereocrafter.
MODELS_ENV = "STEREOCRAFTER_MODELS"


def env_model_roots() -> list[Path]:
    return [Path(p) for p in os.environ.get(MODELS_ENV, os.path.join("models", "stereocrafter")).split(os.pathsep)]


# Folder names as the README's download commands create them.
FOLDER_NAMES = {SVD: "stable-video-diffusion-img2vid-xt-1-1", DEPTHCRAFTER: "DepthCrafter", STEREOCRAFTER: "StereoCrafter",
                DAV2_SMALL: "Depth-Anything-V2-Small-hf", DAV2_BASE: "Depth-Anything-V2-Base-hf",
                DAV2_LARGE: "Depth-Anything-V2-Large-hf",
                VDA_SMALL: "Video-Depth-Anything-Small", VDA_BASE: "Video-Depth-Anything-Base",
                VDA_LARGE: "Video-Depth-Anything-Large"}
# The download command's --only choice that fetches each folder (the SVD folder comes with both).
ONLY_CHOICE = {DEPTHCRAFTER: "depth", STEREOCRAFTER: "inpaint", DAV2_SMALL: DAV2_SMALL, DAV2_BASE: DAV2_BASE,
               DAV2_LARGE: DAV2_LARGE, VDA_SMALL: "video-depth-anything",
               VDA_BASE: "video-depth-anything-base", VDA_LARGE: "video-depth-anything-large"}


@dataclass(frozen=True)
class FolderFiles:
    """What one download folder holds for the loaders, as paths inside the folder ('/'-separated)."""

    configs: tuple[str, ...]
    weights: tuple[str, ...]  # stems: <stem>.safetensors, <stem>.fp16.safetensors, or a sharded index of either
    extras: tuple[str, ...] = ()  # fetched with the folder (small), not needed to load
    checkpoints: tuple[str, ...] = ()  # single weight files used as published (no variants), e.g. .pth


NEEDED_FILES = {
    SVD: FolderFiles(
        configs=("vae/config.json", "image_encoder/config.json", "feature_extractor/preprocessor_config.json",
                 "scheduler/scheduler_config.json"),
        weights=("vae/diffusion_pytorch_model", "image_encoder/model"),
        extras=("model_index.json",),
    ),
    DEPTHCRAFTER: FolderFiles(configs=("config.json",), weights=("diffusion_pytorch_model",)),
    STEREOCRAFTER: FolderFiles(configs=("unet_diffusers/config.json",),
                               weights=("unet_diffusers/diffusion_pytorch_model",)),
    **{kind: FolderFiles(configs=("config.json", "preprocessor_config.json"), weights=("model",))
       for kind in DAV2_KINDS},
    # Video Depth Anything: the one checkpoint of the repository, named after its ViT size.
    VDA_SMALL: FolderFiles(configs=(), weights=(), checkpoints=("video_depth_anything_vits.pth",)),
    VDA_BASE: FolderFiles(configs=(), weights=(), checkpoints=("video_depth_anything_vitb.pth",)),
    VDA_LARGE: FolderFiles(configs=(), weights=(), checkpoints=("video_depth_anything_vitl.pth",)),
}
# Which weight variant the Hub repositories hold (for the manual `hf download` command).
HUB_VARIANT = {SVD: "fp16", DEPTHCRAFTER: None, STEREOCRAFTER: None,
               **{kind: None for kind in DAV2_KINDS + VIDEO_DEPTH_ANYTHING}}
# A Depth Anything V2 folder's size, from its config.json's backbone width.
DAV2_WIDTHS = {384: DAV2_SMALL, 768: DAV2_BASE, 1024: DAV2_LARGE}

# Where each UNet lives inside its folder, and how many input channels it has.
UNET_SUBFOLDER = {kind: posixpath.dirname(NEEDED_FILES[kind].weights[0]) for kind in (DEPTHCRAFTER, STEREOCRAFTER)}
UNET_IN_CHANNELS = {DEPTHCRAFTER: 8, STEREOCRAFTER: 9}


def weight_file_names(stem: str, variant: str | None) -> tuple[str, str]:
    """The single file and the sharded index that hold `stem`'s weights in `variant` (None = plain)."""
    if variant is None:
        return f"{stem}.safetensors", f"{stem}.safetensors.index.json"
    return f"{stem}.{variant}.safetensors", f"{stem}.safetensors.index.{variant}.json"


def is_weight_shard(name: str, stem: str, variant: str | None) -> bool:
    """Whether `name` is one shard of `stem`'s sharded weights (diffusers/transformers naming)."""
    middle = re.escape(f".{variant}") if variant else ""
    return re.fullmatch(re.escape(stem) + middle + r"-\d+-of-\d+\.safetensors", name) is not None


@dataclass(frozen=True)
class WeightFile:
    path: Path
    variant: str | None  # None for the plain file, "fp16" for the fp16 variant


def find_weights(folder: Path, stem: str, dtype: torch.dtype = torch.float32) -> WeightFile | None:
    """The weight file for `stem` in `folder`: plain or fp16 variant, preferring the one nearest `dtype`."""
    found_plain = next((folder / n for n in weight_file_names(stem, None) if (folder / n).is_file()), None)
    found_half = next((folder / n for n in weight_file_names(stem, "fp16") if (folder / n).is_file()), None)
    # Reading the fp16 files for a half-precision run halves the disk read and gives the same weights.
    if found_half is not None and (dtype != torch.float32 or found_plain is None):
        return WeightFile(found_half, "fp16")
    if found_plain is not None:
        return WeightFile(found_plain, None)
    return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StereoInputError(f"Cannot read {path}: {error}. Download that file again.") from error


read_json = _read_json  # for the loaders outside this module

def looks_like(folder: Path) -> str | None:
    """Which of the downloads `folder` looks like, from its layout alone."""
    for kind in VIDEO_DEPTH_ANYTHING:
        if any((folder / name).is_file() for name in NEEDED_FILES[kind].checkpoints):
            return kind
    if (folder / "model_index.json").is_file() or (folder / "vae").is_dir() or (folder / "image_encoder").is_dir():
        return SVD
    if (folder / "unet_diffusers").is_dir():
        return STEREOCRAFTER
    config = folder / "config.json"
    if config.is_file():
        settings = _read_json(config)
        if settings.get("model_type") == "depth_anything":
            return DAV2_WIDTHS.get((settings.get("backbone_config") or {}).get("hidden_size"))
        channels = settings.get("in_channels")
        return {8: DEPTHCRAFTER, 9: STEREOCRAFTER}.get(channels)
    return None


def download_command(root: Path, kind: str | None = None) -> str:
    """Our command that fetches `kind`'s folder (with the SVD folder it needs) into `root`."""
    only = f" --only {ONLY_CHOICE[kind]}" if kind in ONLY_CHOICE else ""
    return f'python -m stereo_core download --models "{root}"{only}'


def manual_command(kind: str, folder: Path) -> str:
    """The `hf download` command that fetches exactly the files `kind`'s folder needs."""
    spec = NEEDED_FILES[kind]
    weights = [weight_file_names(stem, HUB_VARIANT[kind])[0] for stem in spec.weights]
    files = " ".join([*spec.extras, *spec.configs, *weights, *spec.checkpoints])
    return f'hf download {DOWNLOADS[kind]} {files} --local-dir "{folder}"'


def how_to_fetch(kind: str, folder: Path, first: str = "") -> str:
    """The sentence telling users how to get `kind` into `folder`: our command first, `hf download` by hand."""
    lead = f"{first} or fetch" if first else "Fetch"
    return (f"{lead} it from the pack's folder with: {download_command(folder.parent, kind)} "
            f"(by hand: {manual_command(kind, folder)}).")


def missing_files(folder: Path, kind: str) -> list[str]:
    """The NEEDED_FILES of `kind` that `folder` lacks (plain or fp16 weights both count)."""
    spec = NEEDED_FILES[kind]
    missing = [name for name in (*spec.configs, *spec.checkpoints) if not (folder / name).is_file()]
    for stem in spec.weights:
        if find_weights(folder, stem) is None:
            missing.append(f"{stem}.safetensors (or {posixpath.basename(stem)}.fp16.safetensors)")
    return missing


def folder_problem(folder: str | Path, kind: str, first: str = "") -> StereoInputError | None:
    """Why `folder` cannot be loaded as `kind` (None when it can); `first` names a way to fetch it
    that comes before the command line (the loader's download switch)."""
    folder = Path(folder)
    if not folder.is_dir():
        missing = ["the folder itself"]
    else:
        missing = missing_files(folder, kind)
        unet = UNET_SUBFOLDER.get(kind)
        if not missing and unet is not None:
            config = folder / unet / "config.json"
            channels = _read_json(config).get("in_channels")
            if channels != UNET_IN_CHANNELS[kind]:
                prefix = f"{unet}/" if unet else ""
                missing = [f"a UNet with {UNET_IN_CHANNELS[kind]} input channels ({prefix}config.json says "
                           f"{channels})"]
    if not missing:
        return None
    lines = [f"The {TITLES[kind]} folder '{folder}' is not usable."]
    other = looks_like(folder) if folder.is_dir() else None
    swapped = other is not None and other != kind
    if swapped:
        lines.append(
            f"It looks like the {TITLES[other]} download ({DOWNLOADS[other]}); choose it in the "
            f"{TITLES[other]} input instead, and choose the {TITLES[kind]} folder ({DOWNLOADS[kind]}) here."
        )
    lines.append("Missing: " + ", ".join(missing) + ".")
    if not swapped:  # downloading into another model's folder would not help
        lines.append(how_to_fetch(kind, folder, first))
    return StereoInputError(" ".join(lines))


def check_svd_folder(folder: str | Path) -> Path:
    """The SVD folder, with every part we load present (plain or fp16 weights)."""
    problem = folder_problem(folder, SVD)
    if problem is not None:
        raise problem
    return Path(folder)


def check_unet_folder(folder: str | Path, kind: str) -> Path:
    """The folder holding the `kind` UNet (config + plain or fp16 weights), with the right channel count."""
    problem = folder_problem(folder, kind)
    if problem is not None:
        raise problem
    return Path(folder) / UNET_SUBFOLDER[kind]


def video_depth_anything_kind(folder: str | Path) -> str:
    """Which Video Depth Anything size a folder holds: by its checkpoint, else by its name (Small when
    neither tells, so a missing folder gets the Small download's message)."""
    folder = Path(folder)
    held = looks_like(folder) if folder.is_dir() else None
    if held in VIDEO_DEPTH_ANYTHING:
        return held
    named = [kind for kind in VIDEO_DEPTH_ANYTHING if FOLDER_NAMES[kind].lower() == folder.name.lower()]
    return named[0] if named else VDA_SMALL


def check_video_depth_anything_folder(folder: str | Path, first: str = "") -> tuple[str, Path]:
    """The size and the checkpoint file of a Video Depth Anything folder."""
    kind = video_depth_anything_kind(folder)
    problem = folder_problem(folder, kind, first)
    if problem is not None:
        raise problem
    return kind, Path(folder) / NEEDED_FILES[kind].checkpoints[0]


def read_svd_config(folder: Path, sub: str, name: str) -> dict:
    return _read_json(folder / sub / name)


def family_member(family: str, size: str) -> str:
    """The model kind of `family` (a FAMILIES name) in `size` (one of MODEL_SIZES)."""
    if size not in MODEL_SIZES:
        raise StereoInputError(f"The model size must be one of {', '.join(MODEL_SIZES)}, got {size!r}.")
    return FAMILIES[family][MODEL_SIZES.index(size)]
