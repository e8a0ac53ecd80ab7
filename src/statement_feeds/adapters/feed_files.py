"""The published feed files as the web side serves them: bytes, gzip, validators.

Paths are checked against the feed file names the build writes, and resolved with
``realpath`` inside the feeds folder: no traversal, no symlinks out of it.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

__all__ = ["ATOM", "FeedFile", "FeedFiles"]

ATOM = "{http://www.w3.org/2005/Atom}"
_FEED_PATH = re.compile(r"(?:archive/([A-Za-z0-9-]{1,35})/[0-9]{1,9}|([A-Za-z0-9-]{1,35}))\.atom")


@dataclass(slots=True)
class FeedFile:
    """A feed as served: bytes, gzip bytes, strong validators (content hash, mtime)."""

    body: bytes
    gzipped: bytes
    etag: str  # of the identity body; the gzip body's is etag_gzip
    etag_gzip: str
    last_modified: datetime
    _entries: list[dict[str, str]] | None = field(default=None, repr=False)

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

    def entries(self) -> list[dict[str, str]]:
        """The entries' title, date, excerpt and "Full statement" link (parsed once)."""
        if self._entries is None:
            self._entries = _parse_entries(self.body)
        return self._entries

    def title(self) -> str:
        root = etree.fromstring(self.body, parser=_SAFE_XML)
        return str(root.findtext(f"{ATOM}title") or "")


_SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _parse_entries(body: bytes) -> list[dict[str, str]]:
    root = etree.fromstring(body, parser=_SAFE_XML)
    out: list[dict[str, str]] = []
    for entry in root.iter(f"{ATOM}entry"):
        link = next(
            (
                el.get("href", "")
                for el in entry.iter(f"{ATOM}link")
                if el.get("rel", "alternate") == "alternate" and el.get("hreflang") is None
            ),
            "",
        )
        out.append(
            {
                "title": entry.findtext(f"{ATOM}title") or "",
                "published": entry.findtext(f"{ATOM}published") or "",
                "summary": entry.findtext(f"{ATOM}summary") or "",
                "url": link,
            }
        )
    return out


class FeedFiles:
    """Feed files under ``<output>/feeds``, cached by (inode, mtime, size).

    Feeds are replaced by rename, so a new inode means a new file: the cache never
    serves a stale body, and a request costs one ``stat`` when nothing changed.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cache: dict[str, tuple[tuple[int, int, int], FeedFile]] = {}

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
        if path is None:
            return None
        try:
            info = os.stat(path, follow_symlinks=False)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        key = (info.st_ino, info.st_mtime_ns, info.st_size)
        cached = self._cache.get(relative)
        if cached is not None and cached[0] == key:
            return cached[1]
        loaded = await asyncio.to_thread(_read_feed, path)
        if loaded is None:
            return None
        if len(self._cache) > 4096:  # bounded: archives of a huge site
            self._cache.clear()
        self._cache[relative] = (key, loaded)
        return loaded

    def languages(self) -> list[str]:
        """Languages with a feed, sorted."""
        try:
            names = sorted(p.name for p in self.folder.iterdir())
        except OSError:
            return []
        return [n.removesuffix(".atom") for n in names if _FEED_PATH.fullmatch(n)]

    def all_paths(self) -> list[str]:
        """Every servable feed and archive path (for /metrics)."""
        paths = [f"{lang}.atom" for lang in self.languages()]
        archive = self.folder / "archive"
        for folder in sorted(archive.iterdir()) if archive.is_dir() else []:
            paths += [f"archive/{folder.name}/{p.name}" for p in sorted(folder.glob("*.atom"))]
        return [p for p in paths if _FEED_PATH.fullmatch(p)]

    def last_build(self) -> datetime | None:
        times = []
        for lang in self.languages():
            try:
                times.append((self.folder / f"{lang}.atom").stat().st_mtime)
            except OSError:
                continue
        return datetime.fromtimestamp(max(times), UTC) if times else None


def _read_feed(path: Path) -> FeedFile | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        return FeedFile.load(handle.read(), info.st_mtime)


# -- the store, on its own thread --------------------------------------------------------
