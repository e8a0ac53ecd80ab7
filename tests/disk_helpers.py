"""Filling a small real file system (the ``small_disk`` fixture) for "disk full" tests."""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["fill_disk"]


def fill_disk(folder: Path, leave: int = 0) -> Path:
    """Fill ``folder``'s file system until it is full, then free about ``leave`` bytes."""
    filler = folder / "filler"
    block = b"\0" * 65536
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:  # unbuffered: every byte written is on the file system
            if os.write(fd, block) < len(block):
                break  # a short write: the file system is full
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler
