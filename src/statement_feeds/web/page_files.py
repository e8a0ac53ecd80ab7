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

import os
import re
from pathlib import Path

from .feed_files import FeedFile, FileCache

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
        self._files = FileCache()

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
        loaded = await self._files.load(relative, self.folder / relative)
        return None if loaded is None else (relative, loaded)
