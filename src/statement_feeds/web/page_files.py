"""The published pages as the web side serves them: only what ``build`` writes, only
from inside ``<output>``.

A request path (below the site's root) is accepted only in the shapes the build writes:
a folder path ending in ``/`` (its ``index.html``), ``sitemap.xml``, ``sitemaps/<n>.xml``
and ``robots.txt``. Each segment is a plain name (no ``.``/``..``, no hidden file, no
backslash or NUL), the file is opened with ``O_NOFOLLOW`` after ``realpath`` showed no
symlink anywhere on the way, and it must be a regular file: nothing outside ``<output>``
is ever served. The feeds keep their own route (``feed_files``); the handler is
``feed_handler.page``.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from pathlib import Path

from .feed_files import FeedFile

__all__ = ["PageFiles", "media_type"]

_SEGMENT = re.compile(r"[^\s/\\\x00.][^/\\\x00]{0,200}")
_EXTRAS = re.compile(r"sitemap\.xml|robots\.txt|sitemaps/[0-9]{1,6}\.xml")
_MAX_DEPTH = 8
_TYPES = {".html": "text/html", ".xml": "application/xml", ".txt": "text/plain"}


def media_type(relative: str) -> str:
    return _TYPES[os.path.splitext(relative)[1]]


class PageFiles:
    """Files under ``<output>``, cached by (inode, mtime, size) as the feeds are."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cache: dict[str, tuple[tuple[int, int, int], FeedFile]] = {}

    def resolve(self, request_path: str) -> str | None:
        """The file (relative to the folder) for a path below the site root, or None."""
        if _EXTRAS.fullmatch(request_path):
            relative = request_path
        elif request_path == "" or request_path.endswith("/"):
            segments = request_path.split("/")[:-1]
            if len(segments) > _MAX_DEPTH or not all(_SEGMENT.fullmatch(s) for s in segments):
                return None
            if segments and segments[0] == "feeds":
                return None  # the feeds' own route serves that folder
            relative = "/".join([*segments, "index.html"])
        else:
            return None
        root = os.path.realpath(self.folder)
        # No symlinks anywhere below the output folder: the real path is the literal one.
        if os.path.realpath(self.folder / relative) != os.path.join(root, *relative.split("/")):
            return None
        return relative

    async def get(self, request_path: str) -> tuple[str, FeedFile] | None:
        relative = self.resolve(request_path)
        if relative is None:
            return None
        path = self.folder / relative
        try:
            info = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        key = (info.st_ino, info.st_mtime_ns, info.st_size)
        cached = self._cache.get(relative)
        if cached is not None and cached[0] == key:
            return relative, cached[1]
        loaded = await asyncio.to_thread(_read, path)
        if loaded is None:
            return None
        if len(self._cache) > 4096:  # bounded: a big site's pages
            self._cache.clear()
        self._cache[relative] = (key, loaded)
        return relative, loaded


def _read(path: Path) -> FeedFile | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        return FeedFile.load(handle.read(), info.st_mtime)
