"""Atomic, durable file writes: every file appears under its final name complete, or not at all.

A file is written under a temporary name beside its target, flushed to disk, then renamed (atomic
on one filesystem); the folder is flushed too, so a power cut leaves the old state or the new,
never a truncated file under the final name.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


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
