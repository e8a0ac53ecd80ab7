"""Atomic publication of output files: temp file, fsync, ``os.replace``, fsync the folder.

A reader (web server, feed reader polling a static host) sees either the old
file or the new one, never half of one. Unchanged bytes are not rewritten, so
mtimes and HTTP validators stay put.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["remove_stale", "sync_folders", "write_atomic", "write_if_changed"]


def write_if_changed(path: Path, data: bytes, folders: set[Path] | None = None) -> bool:
    """Write ``data`` to ``path`` unless it already holds exactly these bytes.

    With ``folders``, the folder's own fsync (which makes the rename durable, not
    visible: readers see the new file at once) is left to :func:`sync_folders`, so a
    build writing hundreds of files syncs each folder once.
    """
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    write_atomic(path, data, sync_folder=folders is None)
    if folders is not None:
        folders.add(path.parent)
    return True


def sync_folders(folders: set[Path]) -> None:
    for folder in sorted(folders):
        _fsync_folder(folder)


def write_atomic(path: Path, data: bytes, *, sync_folder: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)  # mkstemp's 0600 would hide feeds from the web server
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if sync_folder:
        _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale(folder: Path, keep: set[Path], pattern: str = "*.atom") -> list[Path]:
    """Delete files matching ``pattern`` under ``folder`` that are not in ``keep``."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in sorted(folder.rglob(pattern)):
        if path not in keep and path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(path)
    return removed
