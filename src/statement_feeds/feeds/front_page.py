"""The start page's index of the feeds (``core.front_page``) on disk.

``<state>/front-page.json``: written by every build after the feeds it describes,
atomically and only when its bytes change (``adapters.output``); read by the web
side, which re-reads it only when the file changed (one ``stat`` per request
otherwise). In the state folder, not in ``feeds/``: it is the build's note to the
web side, not something to publish, and nothing planted among the feeds is read.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from ..logs import event
from .front_page_index import FrontPage, dumps, loads
from .output import write_if_changed

__all__ = ["INDEX_NAME", "MAX_BYTES", "FrontPageFile", "write_front_page"]

log = logging.getLogger(__name__)

INDEX_NAME = "front-page.json"
# core.front_page bounds every field, so a real index is far smaller; a bigger file is
# not ours and is not read into memory.
MAX_BYTES = 16 << 20

_Key = tuple[int, int, int]


def write_front_page(state: Path, page: FrontPage) -> bool:
    """Write the index if it changed; whether it was written."""
    return write_if_changed(state / INDEX_NAME, dumps(page))


class FrontPageFile:
    """The index as the web side reads it.

    :meth:`current` is None before the first build, and also when the file is not
    what a build writes (not a regular file, too big, not the format): the pages
    then show no statements rather than fail, and the reason is logged once per
    version of the file.
    """

    def __init__(self, state: Path) -> None:
        self.path = state / INDEX_NAME
        self._key: _Key | None = None
        self._page: FrontPage | None = None
        self.problem = ""  # why the present file could not be used ("" if it could)

    def current(self) -> FrontPage | None:
        try:
            info = os.stat(self.path, follow_symlinks=False)
        except OSError:
            self._key, self._page, self.problem = None, None, ""
            return None
        key = (info.st_ino, info.st_mtime_ns, info.st_size)
        if key != self._key:
            self._page, self.problem = self._load(info)
            self._key = key
            if self.problem:
                event(log, logging.ERROR, "web.front_page_unusable", problem=self.problem)
        return self._page

    def _load(self, info: os.stat_result) -> tuple[FrontPage | None, str]:
        if not stat.S_ISREG(info.st_mode):
            return None, f"{self.path} is not a regular file"
        if info.st_size > MAX_BYTES:
            return None, f"{self.path} is bigger than {MAX_BYTES} bytes"
        try:
            data = _read(self.path)
            return loads(data), ""
        except (OSError, ValueError) as exc:
            return None, f"{self.path}: {exc}"


def _read(path: Path) -> bytes:
    # O_NOFOLLOW and O_NONBLOCK: what was swapped in since the stat (a symlink, a
    # FIFO) is refused or cannot block; fstat checks what was actually opened.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            raise ValueError("not a regular file of a sensible size")
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError(f"bigger than {MAX_BYTES} bytes")
    return data
