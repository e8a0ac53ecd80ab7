"""Atomic publication of output files: temp file, fsync, ``os.replace``, fsync the folder.

A reader (web server, feed reader polling a static host) sees either the old
file or the new one, never half of one. Unchanged bytes are not rewritten, so
mtimes and HTTP validators stay put.

A big batch (a cold build writes ~11,000 pages, each in its own folder) is *staged*
instead: each file's bytes go to a hidden name next to it (:func:`stage_if_changed`,
in the worker processes), then :func:`publish_staged` makes all of them durable with
one filesystem sync (``syncfs``), moves each over its name, and syncs again so the
renames are durable too. The same order as one file's (bytes on disk before the
rename, the rename on disk before the build cache records it), so the same guarantee
after a crash: old file or new, never half of one; two syncs instead of two fsyncs a
file, which were two thirds of such a build's time. Where ``syncfs`` is missing
(not Linux) each file and folder is fsynced as before.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

__all__ = [
    "discard_staged",
    "publish_staged",
    "remove_stale",
    "stage_if_changed",
    "staged_path",
    "sync_folders",
    "write_atomic",
    "write_if_changed",
]


def _unchanged(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except FileNotFoundError:
        return False


def write_if_changed(path: Path, data: bytes, folders: set[Path] | None = None) -> bool:
    """Write ``data`` to ``path`` unless it already holds exactly these bytes.

    With ``folders``, the folder's own fsync (which makes the rename durable, not
    visible: readers see the new file at once) is left to :func:`sync_folders`, so a
    build writing hundreds of files syncs each folder once.
    """
    if _unchanged(path, data):
        return False
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


def staged_path(path: Path, token: str) -> Path:
    """Where :func:`stage_if_changed` puts ``path``'s new bytes in the batch ``token``:
    hidden, next to it (same folder, so the same filesystem for the rename)."""
    return path.with_name(f".{path.name}.{token}.tmp")


def stage_if_changed(path: Path, data: bytes, token: str) -> bool:
    """Unless ``path`` holds exactly ``data``: write it to :func:`staged_path` (mode
    0644, not synced, not renamed: :func:`publish_staged` does both for the batch)."""
    if _unchanged(path, data):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = staged_path(path, token)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.fchmod(fd, 0o644)  # whatever the umask: the web server must read it
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    os.close(fd)
    return True


def publish_staged(paths: list[Path], token: str) -> None:
    """Staged bytes → durable, then each over its name, then the renames durable.

    On an error the files not yet renamed keep their old bytes and their staged files
    are removed; the error is raised (the build fails, its cache is not updated).
    """
    if not paths:
        return
    staged = [staged_path(path, token) for path in paths]
    folders = {path.parent for path in paths}
    try:
        _sync_all(staged, set())  # the bytes, before any rename can make them visible
        for temp, path in zip(staged, paths, strict=True):
            os.replace(temp, path)
    except BaseException:
        discard_staged(paths, token)
        raise
    _sync_all([], folders)  # the renames, before the build cache records them


def discard_staged(paths: Iterable[Path], token: str) -> None:
    """Remove what the batch ``token`` staged for ``paths`` and did not publish."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(staged_path(path, token))


def _sync_all(files: list[Path], folders: set[Path]) -> None:
    """``files``' bytes and ``folders``' entries on disk: one ``syncfs`` per filesystem
    they are on, or (no ``syncfs``) an fsync of each."""
    syncfs = _syncfs()
    anchors = {path.parent for path in files} | folders
    if syncfs is None:
        for path in files:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        sync_folders(folders)
        return
    devices: dict[int, Path] = {}
    for folder in anchors:
        devices.setdefault(os.stat(folder).st_dev, folder)
    for folder in devices.values():
        fd = os.open(folder, os.O_RDONLY)
        try:
            if syncfs(fd) != 0:
                number = _errno()
                raise OSError(number, f"syncfs: {os.strerror(number)}", str(folder))
        finally:
            os.close(fd)


@lru_cache(maxsize=1)
def _syncfs() -> Callable[[int], int] | None:
    """Linux's ``syncfs(2)`` (through ctypes: Python has no binding), or None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only for a big batch: not a cost of every build's start

    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


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
