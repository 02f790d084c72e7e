"""The three weight folders users download, checked before anything is loaded.

Folders are in diffusers layout:
- SVD img2vid-xt-1-1: vae/, image_encoder/, feature_extractor/, scheduler/ (its unet/ is never used)
- DepthCrafter: config.json + diffusion_pytorch_model.safetensors at the root (8-channel UNet)
- StereoCrafter: the same two files under unet_diffusers/ (9-channel UNet)

Weights may be the plain files or the `fp16` variants (`*.fp16.safetensors`);
whichever is present is used. A wrong or incomplete folder gets a message that
lists what is missing, where it looked, and which download it looks like instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import StereoInputError

SVD = "svd"
DEPTHCRAFTER = "depthcrafter"
STEREOCRAFTER = "stereocrafter"

DOWNLOADS = {
    SVD: "stabilityai/stable-video-diffusion-img2vid-xt-1-1",
    DEPTHCRAFTER: "tencent/DepthCrafter",
    STEREOCRAFTER: "TencentARC/StereoCrafter",
}
TITLES = {SVD: "Stable Video Diffusion img2vid-xt-1-1", DEPTHCRAFTER: "DepthCrafter", STEREOCRAFTER: "StereoCrafter"}
# Outside ComfyUI, the folders holding the downloads (os.pathsep-separated); default ./models/stereocrafter.
MODELS_ENV = "STEREOCRAFTER_MODELS"


def env_model_roots() -> list[Path]:
    return [Path(p) for p in os.environ.get(MODELS_ENV, os.path.join("models", "stereocrafter")).split(os.pathsep)]


# Folder names as the README's download commands create them.
FOLDER_NAMES = {SVD: "stable-video-diffusion-img2vid-xt-1-1", DEPTHCRAFTER: "DepthCrafter", STEREOCRAFTER: "StereoCrafter"}

# Where each UNet lives inside its folder, and how many input channels it has.
UNET_SUBFOLDER = {DEPTHCRAFTER: "", STEREOCRAFTER: "unet_diffusers"}
UNET_IN_CHANNELS = {DEPTHCRAFTER: 8, STEREOCRAFTER: 9}

# Parts of the SVD folder we use: (subfolder, config file, weight stem or None).
SVD_PARTS = (
    ("vae", "config.json", "diffusion_pytorch_model"),
    ("image_encoder", "config.json", "model"),
    ("feature_extractor", "preprocessor_config.json", None),
    ("scheduler", "scheduler_config.json", None),
)


@dataclass(frozen=True)
class WeightFile:
    path: Path
    variant: str | None  # None for the plain file, "fp16" for the fp16 variant


def find_weights(folder: Path, stem: str, dtype: torch.dtype = torch.float32) -> WeightFile | None:
    """The weight file for `stem` in `folder`: plain or fp16 variant, preferring the one nearest `dtype`."""
    plain = [folder / f"{stem}.safetensors", folder / f"{stem}.safetensors.index.json"]
    half = [folder / f"{stem}.fp16.safetensors", folder / f"{stem}.safetensors.index.fp16.json"]
    found_plain = next((p for p in plain if p.is_file()), None)
    found_half = next((p for p in half if p.is_file()), None)
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


def looks_like(folder: Path) -> str | None:
    """Which of the three downloads `folder` looks like, from its layout alone."""
    if (folder / "model_index.json").is_file() or (folder / "vae").is_dir() or (folder / "image_encoder").is_dir():
        return SVD
    if (folder / "unet_diffusers").is_dir():
        return STEREOCRAFTER
    config = folder / "config.json"
    if config.is_file():
        channels = _read_json(config).get("in_channels")
        return {8: DEPTHCRAFTER, 9: STEREOCRAFTER}.get(channels)
    return None


def _folder_problem(folder: Path, kind: str, missing: list[str]) -> StereoInputError:
    lines = [f"The {TITLES[kind]} folder '{folder}' is not usable."]
    other = looks_like(folder) if folder.is_dir() else None
    if other is not None and other != kind:
        lines.append(
            f"It looks like the {TITLES[other]} download ({DOWNLOADS[other]}); choose it in the "
            f"{TITLES[other]} input instead, and choose the {TITLES[kind]} folder here."
        )
    if missing:
        lines.append("Missing: " + ", ".join(missing) + ".")
    lines.append(
        f"Download {DOWNLOADS[kind]} into that folder as the README shows "
        f"(huggingface-cli download {DOWNLOADS[kind]} --local-dir \"{folder}\")."
    )
    return StereoInputError(" ".join(lines))


def check_svd_folder(folder: str | Path) -> Path:
    """The SVD folder, with every part we load present (plain or fp16 weights)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise _folder_problem(folder, SVD, ["the folder itself"])
    missing = []
    for sub, config, stem in SVD_PARTS:
        if not (folder / sub / config).is_file():
            missing.append(f"{sub}/{config}")
        if stem is not None and find_weights(folder / sub, stem) is None:
            missing.append(f"{sub}/{stem}.safetensors (or {stem}.fp16.safetensors)")
    if missing:
        raise _folder_problem(folder, SVD, missing)
    return folder


def check_unet_folder(folder: str | Path, kind: str) -> Path:
    """The folder holding the `kind` UNet (config + plain or fp16 weights), with the right channel count."""
    folder = Path(folder)
    if not folder.is_dir():
        raise _folder_problem(folder, kind, ["the folder itself"])
    unet_dir = folder / UNET_SUBFOLDER[kind]
    prefix = f"{UNET_SUBFOLDER[kind]}/" if UNET_SUBFOLDER[kind] else ""
    missing = []
    if not (unet_dir / "config.json").is_file():
        missing.append(prefix + "config.json")
    if find_weights(unet_dir, "diffusion_pytorch_model") is None:
        missing.append(prefix + "diffusion_pytorch_model.safetensors")
    if missing:
        raise _folder_problem(folder, kind, missing)
    channels = _read_json(unet_dir / "config.json").get("in_channels")
    if channels != UNET_IN_CHANNELS[kind]:
        raise _folder_problem(folder, kind, [
            f"a UNet with {UNET_IN_CHANNELS[kind]} input channels ({prefix}config.json says {channels})"
        ])
    return unet_dir


def read_svd_config(folder: Path, sub: str, name: str) -> dict:
    return _read_json(folder / sub / name)
