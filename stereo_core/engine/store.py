"""The work store: a conversion's finished pieces on disk, so a killed run continues where it stopped.

A work folder holds one subfolder per stage, named by a hash of everything that stage's result
depends on (the source, the frame range, the settings of the stage and of the stages before it).
Changing a setting therefore starts a new subfolder for exactly the stages it affects; stale
subfolders of a stage are removed when a new one starts. Inside a stage folder every piece is one
file, written under a temporary name, flushed and renamed: a file that exists is complete.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch

from ..errors import StereoInputError
from ..files import atomic_output, os_error_cause

log = logging.getLogger(__name__)


# Raised whenever what a stage stores changes shape, so work kept by an older version is not misread.
STORE_VERSION = 2


def settings_key(*parts) -> str:
    """A short stable hash of JSON-able settings (and of the store's version)."""
    text = json.dumps([STORE_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def source_identity(path: Path) -> dict:
    """What identifies an input file's content cheaply: its path, size and modification time."""
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns}


class WorkStore:
    """A work folder: one `StageStore` per stage."""

    def __init__(self, folder: Path, option: str = "--work-dir"):
        """`option`: how the face that runs this names the setting that places the work folder."""
        self.folder, self.option = Path(folder), option

    def create(self) -> Path:
        """The work folder, made if missing (a clear error where it cannot be)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StereoInputError(f"Cannot create the work folder '{self.folder}' ({os_error_cause(error)}). "
                                   f"Choose a writable place with {self.option}.") from error
        return self.folder

    def stage(self, name: str, key: str) -> "StageStore":
        """The store of stage `name` for settings hash `key`; other versions of the stage are removed."""
        self.create()
        for stale in self.folder.glob(f"{name}-*"):
            if stale.name != f"{name}-{key}" and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        return StageStore(self.folder / f"{name}-{key}")

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    @contextmanager
    def claim(self, wait: bool = False, waiting: Callable[[int | None], None] | None = None) -> Iterator[None]:
        """Hold the folder for this run: one run per work folder (so per output), by an OS file lock that
        the system releases when the process ends, however it ends: a killed run leaves no stale claim.

        When another run holds it: raise WorkFolderBusy at once, or with `wait` poll until it is free,
        calling `waiting(other pid)` between tries (a face's progress tick, which may raise to cancel)."""
        while True:
            handle = self._open_lock()
            try:
                if _try_lock(handle):
                    if self._same_lock_file(handle):  # not a file a finished run removed meanwhile
                        break
                elif not wait:
                    raise WorkFolderBusy(self.folder, _holder(handle))
                else:
                    if waiting is not None:
                        waiting(_holder(handle))
                    time.sleep(LOCK_POLL_S)
            except BaseException:
                os.close(handle)
                raise
            os.close(handle)
        try:
            os.lseek(handle, 0, os.SEEK_SET)
            os.write(handle, f"{os.getpid():<20d}\n".encode())  # fixed width: no old digits remain
            yield
        finally:
            os.close(handle)  # releases the lock

    def _open_lock(self) -> int:
        path = self.create() / LOCK_NAME
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StereoInputError(f"Cannot write in the work folder '{self.folder}' ({os_error_cause(error)}). "
                                   f"Choose a writable place with --work-dir.") from error

    def _same_lock_file(self, handle: int) -> bool:
        try:
            return os.stat(self.folder / LOCK_NAME).st_ino == os.fstat(handle).st_ino
        except FileNotFoundError:
            return False


# The lock file inside a work folder; it holds the process id of the run that has the lock.
LOCK_NAME = ".lock"
LOCK_POLL_S = 0.5
LOCK_OFFSET_NT = 1 << 16


class WorkFolderBusy(StereoInputError):
    """Another run is converting into the same work folder (so to the same output)."""

    def __init__(self, folder: Path, pid: int | None):
        self.folder, self.pid = folder, pid
        who = f"process {pid}" if pid else "another process"
        stop = f"stop it (kill {pid})" if pid else "stop it"
        super().__init__(f"Another run ({who}) is already converting this video into '{folder}'. Wait for it to "
                         f"finish or {stop}, then run again; or let this run wait for it (--wait).")


def _try_lock(handle: int) -> bool:
    try:
        if os.name == "nt":
            import msvcrt

            # A byte past the process id, so that other runs can still read the id.
            os.lseek(handle, LOCK_OFFSET_NT, os.SEEK_SET)
            msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK):
            return False
        raise


def _holder(handle: int, patience_s: float = 2.0) -> int | None:
    """The process id the holding run wrote into the lock file. It writes it just after taking the lock, so
    a run that finds the lock taken gives it `patience_s` to appear (None if it has not by then)."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            os.lseek(handle, 0, os.SEEK_SET)
            return int(os.read(handle, 32).split()[0])
        except (OSError, ValueError, IndexError):
            if time.monotonic() >= deadline:
                return None
        time.sleep(0.02)


class StageStore:
    """Finished pieces of one stage: tensors (safetensors), small records (JSON) and whole files."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.folder / name

    def has(self, name: str) -> bool:
        return self.path(name).is_file()

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(p.name for p in self.folder.glob(pattern) if not p.name.startswith("."))

    def _write(self, name: str, write) -> None:
        with atomic_output(self.path(name)) as partial:
            write(partial)

    def save_tensors(self, name: str, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
        from safetensors.torch import save_file

        tensors = {key: value.detach().cpu().contiguous() for key, value in tensors.items()}

        def write(partial: Path) -> None:
            try:
                save_file(tensors, str(partial), metadata={"meta": json.dumps(meta or {})})
            except Exception as error:  # safetensors' I/O errors are no OSErrors: give them the one they carry
                found = re.search(r"os error (\d+)", str(error))
                if found is None:
                    raise
                code = int(found.group(1))
                raise OSError(code, os.strerror(code), str(partial)) from error

        self._write(name, write)

    def load_tensors(self, name: str) -> tuple[dict[str, torch.Tensor], dict] | None:
        """The tensors and record saved under `name`, or None if it was never finished (or is unreadable)."""
        from safetensors import safe_open

        if not self.has(name):
            return None
        try:
            with safe_open(str(self.path(name)), framework="pt") as stored:
                meta = json.loads(stored.metadata().get("meta", "{}"))
                return {key: stored.get_tensor(key) for key in stored.keys()}, meta
        except Exception as error:  # damaged on disk: redo the piece
            log.warning("Work file %s is unreadable (%s); it is computed again.", self.path(name), error)
            self.remove(name)
            return None

    def require_tensors(self, name: str) -> tuple[dict[str, torch.Tensor], dict]:
        """What load_tensors gives, for a piece an earlier step has finished: a damaged one is removed and
        reported, and the same command run again computes it anew."""
        saved = self.load_tensors(name)
        if saved is None:
            raise StereoInputError(f"The work file '{self.path(name)}' was damaged on disk and has been removed; "
                                   f"run the same command again to compute it anew.")
        return saved

    def save_json(self, name: str, record: dict) -> None:
        self._write(name, lambda partial: partial.write_text(json.dumps(record)))

    def load_json(self, name: str) -> dict | None:
        if not self.has(name):
            return None
        try:
            return json.loads(self.path(name).read_text())
        except (OSError, ValueError):
            self.remove(name)
            return None

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)


def generator_state(generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    return {} if generator is None else {"generator_state": generator.get_state()}


def restore_generator(generator: torch.Generator | None, tensors: dict[str, torch.Tensor]) -> None:
    if generator is not None:
        generator.set_state(tensors["generator_state"])


