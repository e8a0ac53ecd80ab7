"""What an output format is: the documents a build plans, and the protocol a format meets.

A format (``atom``) is one module with one object meeting :class:`FeedFormat`; the
build plans the same documents for each format it writes (``plan``), under that
format's suffix, and hands each to the format to render. A second format (RSS 2.0,
JSON Feed) is one new module and one line in ``build.FORMATS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..domain.catalog import Translation
from ..domain.statements import Statement

__all__ = ["Document", "FeedFormat", "FeedSettings", "archive_path", "feed_path"]


@dataclass(frozen=True, slots=True)
class FeedSettings:
    site_title: str
    site_url: str
    feeds_url: str
    author: str
    language_titles: Mapping[str, str]
    max_entries: int
    generator_version: str
    id_base: str = ""  # scope of feed and entry ids (site.id_base); "" means site_url
    # Names the parser and its settings (the build cache's key for them), when every
    # statement's fields follow from its file's bytes, path and these: fingerprints
    # then need only the bytes' digest and the identity, not every field.
    parsed_with: str = ""
    hubs: tuple[str, ...] = ()  # WebSub hubs (feeds.websub_hubs): a rel="hub" link each


@dataclass(frozen=True, slots=True)
class Document:
    """One feed document: the subscription feed of a language or one of its archives."""

    path: str  # relative to the output folder, "/"-separated
    lang: str
    title: str
    feed_id: str
    self_url: str
    links: tuple[tuple[str, str], ...]  # (rel, href) besides self and the site link
    archive: bool
    entries: tuple[Statement, ...]  # newest first
    translations: Mapping[str, Sequence[Translation]]
    fingerprint: str


class FeedFormat(Protocol):
    """One output format. Output must depend only on its inputs (no "now"): identical
    input gives identical bytes, and a document whose fingerprint is unchanged is not
    rendered again."""

    @property
    def name(self) -> str:
        """A short name: ``atom``."""
        ...

    @property
    def suffix(self) -> str:
        """Its files' suffix, ``.atom``: paths end with it and the stale sweep keeps to it."""
        ...

    @property
    def media_type(self) -> str:
        """What its documents are served as: ``application/atom+xml``."""
        ...

    @property
    def version(self) -> str:
        """Part of every fingerprint: bump it when the format's output changes."""
        ...

    def render(
        self, document: Document, settings: FeedSettings, html: Callable[[Statement], str]
    ) -> bytes:
        """The bytes of one document. ``html`` gives an entry's sanitised HTML content."""
        ...


def feed_path(fmt: FeedFormat, lang: str) -> str:
    """A language's subscription document, relative to the output folder."""
    return f"feeds/{lang}{fmt.suffix}"


def archive_path(fmt: FeedFormat, lang: str, page: int) -> str:
    """One archive page (RFC 5005) of a language, relative to the output folder."""
    return f"feeds/archive/{lang}/{page}{fmt.suffix}"
