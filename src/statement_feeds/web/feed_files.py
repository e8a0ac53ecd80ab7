"""The published feed files as the web side serves them: bytes, gzip, validators.

Paths are checked against the feed file names the build writes, and resolved with
``realpath`` inside the feeds folder: no traversal, no symlinks out of it. The files
are served as bytes and never parsed: what the pages show of them comes from the
build's own index (``adapters.front_page``).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["FeedFile", "FeedFiles", "FileCache"]

_FEED_PATH = re.compile(r"(?:archive/([A-Za-z0-9-]{1,35})/[0-9]{1,9}|([A-Za-z0-9-]{1,35}))\.atom")


@dataclass(slots=True)
class FeedFile:
    """A feed as served: bytes, gzip bytes, strong validators (content hash, mtime)."""

    body: bytes
    gzipped: bytes
    etag: str  # of the identity body; the gzip body's is etag_gzip
    etag_gzip: str
    last_modified: datetime

    @classmethod
    def load(cls, body: bytes, mtime: float) -> FeedFile:
        digest = hashlib.blake2b(body, digest_size=16).hexdigest()
        return cls(
            body=body,
            # mtime=0: the same feed gzips to the same bytes every time.
            gzipped=gzip.compress(body, compresslevel=6, mtime=0),
            etag=f'"{digest}"',
            etag_gzip=f'"{digest}-gz"',  # a different representation needs its own tag
            last_modified=datetime.fromtimestamp(int(mtime), UTC),
        )


class FileCache:
    """Served files read once and kept by (inode, mtime, size), at most ``limit`` of them.

    The build replaces files by rename, so a new inode means a new file: the cache never
    serves a stale body, and a request costs one ``stat`` when nothing changed. Only
    regular files are served, opened without following a symlink.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._entries: dict[str, tuple[tuple[int, int, int], FeedFile]] = {}

    async def load(self, relative: str, path: Path) -> FeedFile | None:
        try:
            info = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        key = (info.st_ino, info.st_mtime_ns, info.st_size)
        cached = self._entries.get(relative)
        if cached is not None and cached[0] == key:
            return cached[1]
        loaded = await asyncio.to_thread(_read, path)
        if loaded is None:
            return None
        if len(self._entries) > self._limit:  # bounded: archives and pages of a huge site
            self._entries.clear()
        self._entries[relative] = (key, loaded)
        return loaded


class FeedFiles:
    """Feed files under ``<output>/feeds``, cached by (inode, mtime, size) (``FileCache``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files = FileCache()

    def resolve(self, relative: str) -> Path | None:
        """The file for a request path below ``feeds/``, or None (unknown or unsafe)."""
        if not _FEED_PATH.fullmatch(relative):
            return None
        path = self.folder / relative
        root = os.path.realpath(self.folder)
        # No symlinks anywhere below feeds/: the real path must be the literal one.
        if os.path.realpath(path) != os.path.join(root, *relative.split("/")):
            return None
        return path

    async def get(self, relative: str) -> FeedFile | None:
        path = self.resolve(relative)
        return None if path is None else await self._files.load(relative, path)

    def last_written(self, languages: Iterable[str]) -> datetime | None:
        """When the newest of these languages' feeds was written (their files' mtime).

        Only the names given (the languages the build described) are looked at, and
        only regular files count: nothing planted in the folder.
        """
        times = []
        for lang in languages:
            try:
                info = os.stat(self.folder / f"{lang}.atom", follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                times.append(info.st_mtime)
        return datetime.fromtimestamp(max(times), UTC) if times else None


def _read(path: Path) -> FeedFile | None:
    try:
        # O_NONBLOCK: opening a FIFO put where a file was must not hang the reader.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        return FeedFile.load(handle.read(), info.st_mtime)
