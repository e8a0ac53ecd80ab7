"""Filling a small real file system (the ``small_disk`` fixture) for "disk full" tests."""

from __future__ import annotations

import os
from pathlib import Path


def fill_disk(folder: Path, leave: int) -> Path:
    """Fill ``folder``'s file system until only about ``leave`` bytes are free."""
    filler = folder / "filler"
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    with filler.open("wb") as stream:
        stream.write(b"\0" * max(0, free - leave))
    return filler
