"""Atomic, durable file writes: every file appears under its final name complete, or not at all.

A file is written under a temporary name beside its target, flushed to disk, then renamed (atomic
on one filesystem); the folder is flushed too, so a power cut leaves the old state or the new,
never a truncated file under the final name.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import StereoInputError


def partial_path(path: Path) -> Path:
    """The temporary name a file is written under before it is renamed into place."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def publish(partial: Path, path: Path) -> None:
    """Move a complete file into place: its data flushed before the rename, the rename flushed after."""
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, path)
    try:
        folder = os.open(Path(path).parent, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yields the temporary path to write; on success the file is published as `path`, on any error
    (or interruption) the temporary file is removed and `path` is left as it was."""
    path = Path(path)
    partial = partial_path(path)
    try:
        yield partial
        publish(partial, path)
    finally:
        partial.unlink(missing_ok=True)


# --- OS errors in words a user can act on ----------------------------------------------------------------

# Filesystems made by the kernel, where no file can be created whatever the permissions.
SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))


def os_error_cause(error: OSError, path: Path | None = None) -> str:
    """Why `error` (raised for `path`, or for error.filename) happened, in a few words."""
    path = Path(error.filename) if getattr(error, "filename", None) else path
    code = error.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return "the disk is full"
    if path is not None:
        system = next((folder for folder in SYSTEM_FOLDERS if path.is_absolute() and path.is_relative_to(folder)),
                      None)
        if system is not None:
            return f"'{system}' is a system filesystem that holds no files of ours"
        blocker = _file_in_the_way(path)
        if blocker is not None and code in (errno.ENOTDIR, errno.EEXIST, errno.ENOENT):
            return f"'{blocker}' is a file, not a folder"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.EROFS:
        return "the filesystem is read-only"
    return error.strerror or str(error)


def _file_in_the_way(path: Path) -> Path | None:
    """The first of `path` and its parents (from the root down) that exists as something other than a
    folder, if any."""
    for place in (*reversed(Path(path).parents), Path(path)):
        if place.exists() and not place.is_dir():
            return place
    return None


def os_error_message(error: OSError, path: Path | None = None) -> str:
    """One line for an OS error while converting (`path`: the place, where the error does not name one):
    the place, the cause, and what to do."""
    place = error.filename if getattr(error, "filename", None) else path
    cause = os_error_cause(error, path)
    detail = f" ({error.strerror})" if error.strerror and error.strerror.lower() not in cause.lower() else ""
    writing = error.errno in WRITE_ERRNOS
    what = f"Cannot write '{place}'" if writing and place is not None else (
        f"'{place}'" if place is not None else "A file operation failed")
    remedy = "free some space" if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)) else "fix that"
    return (f"{what}: {cause}{detail}. The finished work is kept: {remedy} (or choose another place for the output "
            f"or the work folder) and run the same conversion again to carry on.")


WRITE_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EACCES, errno.EPERM, errno.EROFS,
                errno.ENOTDIR, errno.EEXIST, errno.EISDIR}


@contextmanager
def os_errors_explained(path: Path | None = None) -> Iterator[None]:
    """OS errors inside (disk full, permission, ...) become one StereoInputError line (os_error_message);
    `path`: the place to name where an error names none. Also a decorator."""
    try:
        yield
    except OSError as error:
        raise StereoInputError(os_error_message(error, path)) from error
