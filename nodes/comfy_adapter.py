"""Everything this pack takes from ComfyUI, in one place.

Inside ComfyUI these use its device choice, progress bar and Cancel button;
without ComfyUI (tests, scripts) they fall back to plain torch behaviour, so the
nodes import and run anywhere.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from ..stereo_core import model_files
from ..stereo_core.errors import StereoInputError
from ..stereo_core.placement import MemoryHooks

log = logging.getLogger(__name__)

try:  # pragma: no cover - exercised inside a real ComfyUI
    import comfy.model_management as _mm
    import comfy.utils as _comfy_utils
except ImportError:
    _mm = None
    _comfy_utils = None


def compute_device() -> torch.device:
    """Where the work runs: ComfyUI's device, else CUDA when present, else the CPU."""
    if _mm is not None:
        return _mm.get_torch_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_interrupted() -> None:
    """Raise ComfyUI's interrupt exception when the user pressed Cancel."""
    if _mm is not None:
        _mm.throw_exception_if_processing_interrupted()


class Progress:
    """A progress bar in ComfyUI's UI; each tick also honours Cancel."""

    def __init__(self, total: int):
        self.total = max(1, int(total))
        self._bar = _comfy_utils.ProgressBar(self.total) if _comfy_utils is not None else None
        self.done = 0

    def __call__(self, done: int, total: int | None = None) -> None:
        """Report absolute progress (the stereo_core callback signature)."""
        check_interrupted()
        if total is not None:
            self.total = max(1, int(total))
        self.done = min(int(done), self.total)
        if self._bar is not None:
            self._bar.update_absolute(self.done, self.total)


# --- model folders and memory ----------------------------------------------------------------

try:  # pragma: no cover - exercised inside a real ComfyUI
    import folder_paths as _folder_paths
except ImportError:
    _folder_paths = None

# Our own models folder (models/stereocrafter/); extra_model_paths.yaml may add more under this key.
MODEL_FOLDER_KEY = "stereocrafter"


def register_model_folder() -> None:
    """Register models/stereocrafter with ComfyUI, keeping paths extra_model_paths.yaml already added."""
    if _folder_paths is None:
        return
    default = os.path.join(_folder_paths.models_dir, MODEL_FOLDER_KEY)
    os.makedirs(default, exist_ok=True)
    _folder_paths.add_model_folder_path(MODEL_FOLDER_KEY, default)


def model_roots() -> list[Path]:
    """Folders whose subfolders are model downloads: models/stereocrafter, then models/diffusers."""
    if _folder_paths is not None:
        roots = []
        for key in (MODEL_FOLDER_KEY, "diffusers"):
            try:
                roots += _folder_paths.get_folder_paths(key)
            except KeyError:
                continue
        return [Path(root) for root in roots]
    return model_files.env_model_roots()  # scripts and tests: $STEREOCRAFTER_MODELS


def list_model_dirs(expected: str) -> list[str]:
    """Model folders found in the model roots, with `expected` always first so shipped workflows validate."""
    found = sorted({child.name for root in model_roots() if root.is_dir()
                    for child in root.iterdir() if child.is_dir() and not child.name.startswith(".")})
    return [expected] + [name for name in found if name != expected]


# The loaders' switch that lets them fetch missing model folders (off: nothing is ever downloaded).
DOWNLOAD_SWITCH = "download_if_missing"
AGAIN_IN_UI = "run the workflow again"


def download_root() -> Path:
    """Where loaders download to: ComfyUI's first models/stereocrafter folder (outside ComfyUI, the first
    $STEREOCRAFTER_MODELS folder)."""
    if _folder_paths is not None:
        paths = _folder_paths.get_folder_paths(MODEL_FOLDER_KEY)
        if paths:
            return Path(paths[0])
    return model_files.env_model_roots()[0]


def _find_model_dir(name: str) -> Path | None:
    """The folder called `name` in the model roots (or `name` itself when it is a path)."""
    if os.path.isabs(name):
        return Path(name) if os.path.isdir(name) else None
    return next((root / name for root in model_roots() if (root / name).is_dir()), None)


def model_dirs(wanted: list[tuple[str, str]], download: bool = False, variant: str = "fp16") -> list[Path]:
    """The folders a loader names, as (folder name, model kind) pairs, each checked.

    With `download`, folders that are missing or incomplete are first fetched from the Hugging Face
    Hub into download_root() (only the files the loaders read), with ComfyUI's progress bar;
    a gated repository without access stops before anything is downloaded.
    """
    from ..stereo_core import download as hub

    folders, plans = [], []
    for name, kind in wanted:
        found = _find_model_dir(name)
        folder = found or (Path(name) if os.path.isabs(name) else download_root() / name)
        folders.append(folder)
        switch = f"Turn on {DOWNLOAD_SWITCH} in this loader to download {'it there' if found is None else 'them'},"
        problem = model_files.folder_problem(folder, kind, first="" if download else switch)
        if problem is None:
            continue
        if found is not None and (not download or model_files.looks_like(folder) not in (None, kind)):
            raise problem
        if not download:
            where = ", ".join(str(root) for root in model_roots()) or "(no model folders registered)"
            raise StereoInputError(f"No model folder '{name}' found (looked in: {where}). "
                                   + model_files.how_to_fetch(kind, folder, first=switch))
        plan = hub.plan_folder(kind, folder, variant, again=AGAIN_IN_UI)
        if plan.problem is not None:
            raise StereoInputError(plan.problem)
        plans.append(plan)
    if plans:
        log.info("StereoCrafter 3D: downloading into %s\n%s", download_root(), "\n".join(hub.describe(plans, variant)))
        hub.fetch(plans, progress=Progress(sum(plan.size for plan in plans)), again=AGAIN_IN_UI)
        problems = [plan.problem for plan in plans if plan.problem is not None]
        if problems:
            raise StereoInputError(" ".join(problems))
    return folders


def memory_hooks() -> MemoryHooks:
    """ComfyUI evicts its own models to make room for ours and empties its caches afterwards."""
    if _mm is None:
        return MemoryHooks()
    return MemoryHooks(free=lambda size, device: _mm.free_memory(size, device),
                       empty_cache=lambda device: _mm.soft_empty_cache())


def offload_device() -> torch.device:
    return _mm.unet_offload_device() if _mm is not None else torch.device("cpu")
