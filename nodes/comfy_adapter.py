"""Everything this pack takes from ComfyUI, in one place.

Inside ComfyUI these use its device choice, progress bar and Cancel button;
without ComfyUI (tests, scripts) they fall back to plain torch behaviour, so the
nodes import and run anywhere.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
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


# --- output and temp folders, file names ------------------------------------------------------

# Outside ComfyUI (scripts, tests) these environment variables stand for its output and temp folders.
OUTPUT_ENV, TEMP_ENV = "STEREOCRAFTER_OUTPUT", "STEREOCRAFTER_TEMP"


def output_directory() -> Path:
    if _folder_paths is not None:
        return Path(_folder_paths.get_output_directory())
    return Path(os.environ.get(OUTPUT_ENV, os.path.join(tempfile.gettempdir(), "stereocrafter-3d", "output")))


def temp_directory() -> Path:
    """ComfyUI's temp folder (emptied when ComfyUI starts)."""
    if _folder_paths is not None:
        return Path(_folder_paths.get_temp_directory())
    return Path(os.environ.get(TEMP_ENV, os.path.join(tempfile.gettempdir(), "stereocrafter-3d", "temp")))


def work_directory() -> Path:
    """Where conversions keep finished pieces until their file is written: under the output folder, since
    ComfyUI empties its temp folder on start and a crashed server's work must survive the restart."""
    return output_directory() / ".stereo3d-work"


def next_file_stem(folder: Path, filename_prefix: str) -> tuple[Path, str]:
    """(folder to write in, "name_00001") for the next free number of `filename_prefix` in `folder`, numbered
    as core Save Video numbers its files (ComfyUI's %year%/%month%/... in the prefix are filled in)."""
    folder = Path(folder).resolve()
    target = (folder / os.path.normpath(filename_prefix or "")).resolve()
    if not filename_prefix or target == folder or folder not in target.parents:
        raise StereoInputError(f"filename_prefix '{filename_prefix}' must name a file inside ComfyUI's output "
                               f"folder (e.g. 'stereo3d/convert'), not '..' or an absolute path.")
    if _folder_paths is not None:
        full_folder, name, counter, _, _ = _folder_paths.get_save_image_path(filename_prefix, str(folder))
        return Path(full_folder), f"{name}_{counter:05}"
    target.parent.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(target.name) + r"_(\d+)")
    numbers = [int(match.group(1)) for child in target.parent.iterdir() if (match := pattern.match(child.name))]
    return target.parent, f"{target.name}_{max(numbers, default=0) + 1:05}"


def numbered_files(folder: Path, filename_prefix: str, count: int, suffix: str) -> tuple[Path, list[str]]:
    """(folder to write in, `count` file names) numbered on from the last file of `filename_prefix`, as core Save
    Image names its files ("name_00001_.png", "name_00002_.png", ...)."""
    target_folder, stem = next_file_stem(folder, filename_prefix)
    name, first = stem.rsplit("_", 1)
    return target_folder, [f"{name}_{int(first) + index:05}_{suffix}" for index in range(count)]


def workflow_text(prompt, extra_pnginfo) -> dict[str, str]:
    """The PNG text chunks core Save Image stores (the prompt and the workflow), unless ComfyUI runs with
    --disable-metadata; outside ComfyUI none."""
    import json

    try:  # pragma: no cover - exercised inside a real ComfyUI
        from comfy.cli_args import args
    except ImportError:
        return {}
    if args.disable_metadata:
        return {}
    text = {} if prompt is None else {"prompt": json.dumps(prompt)}
    for key, value in (extra_pnginfo or {}).items():
        text[key] = json.dumps(value)
    return text


# --- the VIDEO type (comfy_api's VideoInput) ----------------------------------------------------


class FileVideo:
    """A VIDEO backed by a file, for scripts and tests without ComfyUI (inside it: comfy_api's VideoFromFile)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def get_stream_source(self) -> str:
        return str(self.path)


def video_from_file(path: Path):
    """ComfyUI's VIDEO for a file on disk: Save Video copies its streams, Preview Video plays it."""
    try:  # pragma: no cover - exercised inside a real ComfyUI
        from comfy_api.input_impl import VideoFromFile
    except ImportError:
        return FileVideo(path)
    return VideoFromFile(str(path))


def video_file(video, input_name: str, spill_folder: Path) -> Path:
    """The file behind a VIDEO input, read through get_stream_source() so nothing is decoded: the path of a
    loaded file, or an in-memory video copied once into `spill_folder` (named by its content, so a run
    queued again finds the same file and resumes)."""
    if not hasattr(video, "get_stream_source"):
        raise StereoInputError(f"'{input_name}' must be a VIDEO (e.g. from core Load Video), got "
                               f"{type(video).__name__}. For IMAGE frames use Create Video first.")
    source = video.get_stream_source()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise StereoInputError(f"The video file '{path}' given to '{input_name}' does not exist.")
        return path
    return _spill(source, spill_folder)


def _spill(stream, folder: Path) -> Path:
    digest = hashlib.sha256()
    stream.seek(0)
    for block in iter(lambda: stream.read(_SPILL_BLOCK), b""):
        digest.update(block)
    path = Path(folder) / f"video-{digest.hexdigest()[:24]}"
    if not path.is_file():
        from ..stereo_core.files import atomic_output

        path.parent.mkdir(parents=True, exist_ok=True)
        stream.seek(0)
        with atomic_output(path) as partial, open(partial, "wb") as handle:
            shutil.copyfileobj(stream, handle, _SPILL_BLOCK)
    stream.seek(0)
    return path


_SPILL_BLOCK = 1 << 20
