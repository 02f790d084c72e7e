"""Fetch the model folders from the Hugging Face Hub: python -m stereo_core download --models DIR.

Only the files the loaders read (model_files.NEEDED_FILES) are fetched, into the folder
layout they read; SVD's UNet and single-file checkpoint never are. Downloads go through
huggingface_hub's snapshot_download, so it behaves as the library does: HF_ENDPOINT,
HF_TOKEN or the token `hf auth login` stored, HF_HUB_OFFLINE, its cache (a file already
there is copied, not downloaded again) and its bookkeeping in each folder's
.cache/huggingface/. Running again after an interruption fetches only what is missing.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import model_files
from .model_files import DAV2_KINDS, DEPTHCRAFTER, STEREOCRAFTER, SVD, VIDEO_DEPTH_ANYTHING

# Weight variants in order of preference: a repository without the first gets the second.
VARIANTS = {"fp16": ("fp16", None), "fp32": (None, "fp16")}
ONLY = {"depth": (SVD, DEPTHCRAFTER), "inpaint": (SVD, STEREOCRAFTER),
        # Depth Anything V2 and Video Depth Anything need no SVD parts.
        **{model_files.ONLY_CHOICE[kind]: (kind,) for kind in DAV2_KINDS + VIDEO_DEPTH_ANYTHING}}
ALL = (SVD, DEPTHCRAFTER, STEREOCRAFTER)
log = logging.getLogger(__name__)
AGAIN = "run the same command again"

Progress = Callable[[int, int], None]  # progress(bytes done, bytes in all); raising from it stops the download


@dataclass
class RemoteFile:
    path: str
    size: int


@dataclass
class FolderPlan:
    """One folder: what is still to fetch into it, or why it cannot be fetched."""

    kind: str
    folder: Path
    revision: str | None = None
    files: list[RemoteFile] = field(default_factory=list)  # not yet complete here
    complete: bool = False
    problem: str | None = None

    @property
    def repo(self) -> str:
        return model_files.DOWNLOADS[self.kind]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def human_size(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def access_message(kind: str, error: Exception | None = None, again: str = AGAIN) -> str:
    """What to do when a gated repository refuses us: the licence page, then a token, then again."""
    from huggingface_hub import get_token

    repo, endpoint = model_files.DOWNLOADS[kind], _endpoint()
    status = getattr(getattr(error, "response", None), "status_code", None)
    if get_token() is None or status == 401:
        why = "no Hugging Face token was given"
    else:
        why = "the token given has no access to it yet (accept the licence with the account the token belongs to)"
    return (
        f"{model_files.TITLES[kind]} ({repo}) is a gated repository and {why}. To fetch it: 1) log in on "
        f"{endpoint} and accept its licence at {endpoint}/{repo}; 2) give a token of that account (read "
        f"access, from {endpoint}/settings/tokens): run `hf auth login` once, or set the HF_TOKEN environment "
        f"variable; 3) {again}: the folders already fetched are kept."
    )


def explain(error: Exception, kind: str, again: str = AGAIN) -> str:
    """One clear sentence for a failed Hub request (never a traceback)."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    repo = model_files.DOWNLOADS[kind]
    if isinstance(error, GatedRepoError):
        return access_message(kind, error, again)
    if isinstance(error, OfflineModeIsEnabled):
        return (f"HF_HUB_OFFLINE is set, so {repo} cannot be downloaded: unset it (or set it to 0) where the Hub "
                f"can be reached, then {again}.")
    if isinstance(error, RepositoryNotFoundError):
        return (f"{_endpoint()} did not give access to {repo} ({str(error).splitlines()[0]}). Check HF_ENDPOINT "
                f"and your token (`hf auth whoami`), then {again}.")
    if isinstance(error, HfHubHTTPError):
        return f"Downloading {repo} failed: {str(error).splitlines()[0]}. {again.capitalize()} to continue."
    return (f"Could not reach {_endpoint()} for {repo} ({type(error).__name__}: {error}). Check the connection "
            f"(and HF_ENDPOINT if you use a mirror), then {again} to continue.")


def _choose_files(kind: str, listing: dict[str, int], variant: str) -> tuple[list[RemoteFile], list[str]]:
    """The repository files that make `kind`'s folder usable, and the needed ones it lacks."""
    spec = model_files.NEEDED_FILES[kind]
    chosen = [name for name in spec.extras if name in listing]
    lacking = [name for name in spec.configs if name not in listing]
    chosen += [name for name in spec.configs if name in listing]
    lacking += [name for name in spec.checkpoints if name not in listing]
    chosen += [name for name in spec.checkpoints if name in listing]
    for stem in spec.weights:
        for candidate in VARIANTS[variant]:
            single, index = model_files.weight_file_names(stem, candidate)
            if single in listing:
                chosen.append(single)
                break
            if index in listing:
                chosen.append(index)
                chosen += sorted(name for name in listing if model_files.is_weight_shard(name, stem, candidate))
                break
        else:
            lacking.append(f"{stem}.safetensors")
    return [RemoteFile(name, listing[name]) for name in chosen], lacking


def plan_folder(kind: str, folder: Path, variant: str = "fp16", again: str = AGAIN) -> FolderPlan:
    """Ask the Hub what `folder` still needs (nothing is asked when it is already usable)."""
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url

    plan = FolderPlan(kind, Path(folder))
    holds = model_files.looks_like(plan.folder) if plan.folder.is_dir() else None
    if holds not in (None, kind):
        plan.problem = (f"'{plan.folder}' holds the {model_files.TITLES[holds]} download, not "
                        f"{model_files.TITLES[kind]}: move it aside, then {again}.")
        return plan
    if model_files.folder_problem(plan.folder, kind) is None:
        plan.complete = True
        return plan
    try:
        info = HfApi().model_info(plan.repo, files_metadata=True)
    except Exception as error:  # every Hub or network failure (their types vary by version) becomes a sentence
        plan.problem = explain(error, kind, again)
        return plan
    listing = {s.rfilename: (s.lfs.size if s.lfs is not None else s.size) or 0 for s in info.siblings or ()}
    chosen, lacking = _choose_files(kind, listing, variant)
    if lacking:
        plan.problem = f"{plan.repo} on {_endpoint()} lacks {', '.join(lacking)}; it cannot be used as is."
        return plan
    plan.revision = info.sha
    plan.files = [f for f in chosen if not _is_complete(plan.folder / f.path, f.size)]
    if info.gated and plan.files:
        try:  # asking for one file tells whether we may download: fail now, not after the other folders
            get_hf_file_metadata(hf_hub_url(plan.repo, plan.files[0].path, revision=plan.revision))
        except Exception as error:
            plan.problem = explain(error, kind, again)
    return plan


def _is_complete(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


class _Stopped(Exception):
    """Raised inside the download threads once the user stopped the download."""


def _hidden_bars(stop: threading.Event):
    """huggingface_hub's progress bars, silenced (ours shows the total) and ending the download when stopped."""
    from tqdm.auto import tqdm

    class Nowhere:
        def write(self, text):
            pass

        def flush(self):
            pass

    class HiddenBars(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["file"] = Nowhere()
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            if stop.is_set():
                raise _Stopped()
            return super().update(n)

    return HiddenBars


def _bytes_here(plans: list[FolderPlan]) -> int:
    """Bytes of the planned files on disk: finished ones plus the library's partial (.incomplete) files."""
    done = 0
    for plan in plans:
        for remote in plan.files:
            try:
                done += min((plan.folder / remote.path).stat().st_size, remote.size)
            except OSError:
                pass
        for partial in (plan.folder / ".cache" / "huggingface").glob("**/*.incomplete"):
            try:
                done += partial.stat().st_size
            except OSError:
                pass
    return done


def fetch(plans: list[FolderPlan], progress: Progress | None = None, again: str = AGAIN) -> None:
    """Download every plan that has files and no problem; a failure becomes that plan's problem.

    The downloads run in a worker thread while this thread reports progress, so an exception
    from `progress` (ComfyUI's Cancel, Ctrl+C) stops them and is raised here.
    """
    from huggingface_hub import snapshot_download

    todo = [plan for plan in plans if plan.files and plan.problem is None]
    total = sum(plan.size for plan in todo)
    stop = threading.Event()
    bars = _hidden_bars(stop)

    def work():
        for plan in todo:
            if stop.is_set():
                return
            try:
                snapshot_download(plan.repo, revision=plan.revision, local_dir=plan.folder,
                                  allow_patterns=[f.path for f in plan.files], tqdm_class=bars)
            except _Stopped:
                return
            except Exception as error:  # reported with the other folders' results
                log.debug("Downloading %s failed", plan.repo, exc_info=True)
                plan.problem = explain(error, plan.kind, again)
                continue
            problem = model_files.folder_problem(plan.folder, plan.kind)
            if problem is not None:
                plan.problem = f"After the download: {problem}"

    worker = threading.Thread(target=work, name="stereocrafter-download", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
            if progress is not None:
                progress(min(_bytes_here(todo), total), total)
    except BaseException:
        stop.set()
        worker.join(10)  # the threads stop at their next chunk; finished files stay for the next run
        raise
    if progress is not None:
        progress(total, total)


def describe(plans: list[FolderPlan], variant: str) -> list[str]:
    """What will be fetched, file by file, with sizes and the total."""
    lines = []
    width = max((len(f.path) for plan in plans for f in plan.files), default=0)
    for plan in plans:
        name = plan.folder.name
        if plan.complete:
            lines.append(f"  {name}: already complete")
        elif plan.problem is not None:
            lines.append(f"  {name}: cannot be fetched (see below)")
        else:
            licence = model_files.LICENCES.get(plan.kind)
            lines.append(f"  {name} <- {plan.repo} ({human_size(plan.size)}"
                         + (f"; weights licence: {licence})" if licence else ")"))
            lines += [f"      {f.path:<{width}}  {human_size(f.size):>9}" for f in plan.files]
    todo = [plan for plan in plans if plan.files and plan.problem is None]
    count = sum(len(plan.files) for plan in todo)
    if count:
        lines.append(f"  To download: {count} files, {human_size(sum(plan.size for plan in todo))} "
                     f"({variant} weights where the repository has them)")
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stereo_core download",
        description="Download the models into the folders the loaders and the command line read: the parts of "
                    "Stable Video Diffusion img2vid-xt-1-1 that are used (not its UNet or single-file checkpoint), "
                    "DepthCrafter and StereoCrafter. Stable Video Diffusion is gated: accept its licence on "
                    "Hugging Face and give a token (HF_TOKEN or `hf auth login`) first. Run it again after an "
                    "interruption to carry on.",
        epilog="Uses huggingface_hub's settings: HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE, HF_HOME / HF_HUB_CACHE, "
               "HF_HUB_DISABLE_PROGRESS_BARS. By hand instead: hf download <repository> <files> --local-dir <folder> "
               "(see the README).",
    )
    parser.add_argument("--models", type=Path, default=None,
                        help=f"Folder to download into (default: ${model_files.MODELS_ENV}, else ./models/stereocrafter;"
                             f" in ComfyUI: ComfyUI/models/stereocrafter).")
    parser.add_argument("--variant", choices=list(VARIANTS), default="fp16",
                        help="Weight precision to fetch where a repository has both (fp16: half the size; the "
                             "loaders run fp32 from it too).")
    parser.add_argument("--only", choices=list(ONLY),
                        help="depth: SVD parts + DepthCrafter; inpaint: SVD parts + StereoCrafter (default: those "
                             "three folders). "
                             + "; ".join(f"{model_files.ONLY_CHOICE[kind]}: {model_files.TITLES[kind]} only "
                                         f"({model_files.LICENCES[kind]})"
                                         for kind in DAV2_KINDS + VIDEO_DEPTH_ANYTHING) + ".")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = (args.models or model_files.env_model_roots()[0]).expanduser().resolve()
    kinds = ONLY[args.only] if args.only else ALL
    print(f"Models folder: {root}")
    plans = [plan_folder(kind, root / model_files.FOLDER_NAMES[kind], args.variant) for kind in kinds]
    print("\n".join(describe(plans, args.variant)), flush=True)
    try:
        total = sum(plan.size for plan in plans if plan.problem is None)
        if total:
            with _ByteBar(total) as bar:
                fetch(plans, progress=bar)
    except KeyboardInterrupt:
        print(f"\nInterrupted. Run the same command again to carry on: the files already fetched are kept in "
              f"{root}.", file=sys.stderr)
        return 130
    failed = [plan for plan in plans if plan.problem is not None]
    for plan in plans:
        if plan.problem is None and not plan.complete:
            print(f"  {plan.folder.name}: done")
    if failed:
        for plan in failed:
            print(f"error: {plan.folder.name}: {plan.problem}", file=sys.stderr)
        kept = [plan.folder.name for plan in plans if plan.problem is None]
        if kept:
            print(f"Kept: {', '.join(kept)}.", file=sys.stderr)
        return 1
    print(f"All model folders are ready in {root}.")
    return 0


class _ByteBar:
    """Our one progress bar over all folders' bytes (off with HF_HUB_DISABLE_PROGRESS_BARS, as the library's)."""

    def __init__(self, total: int):
        self.total = total

    def __enter__(self):
        from huggingface_hub.utils import are_progress_bars_disabled
        from tqdm.auto import tqdm

        self._bar = tqdm(desc="Downloading", total=self.total, unit="B", unit_scale=True,
                         disable=are_progress_bars_disabled())
        return self

    def __call__(self, done: int, total: int) -> None:
        self._bar.total = max(total, 1)
        self._bar.n = done
        self._bar.refresh()

    def __exit__(self, *exc):
        self._bar.close()
