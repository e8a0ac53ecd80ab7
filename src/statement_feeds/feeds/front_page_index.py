"""What the web pages show of the feeds, as a small document the build writes.

The start page lists the languages with a feed and the latest statements of one of
them; ``/metrics`` counts statements per language. Both used to re-parse the feed
XML the build had just written, which broke on a big statement (libxml2 refuses a
text node over 10 MB) and listed anything planted in ``feeds/`` as a language. The
build now describes its feeds here, from the documents it wrote, and the web side
reads only this (``adapters.front_page``).

Pure: :func:`describe` from the build's documents, :func:`dumps` / :func:`loads`
for the bytes. :func:`loads` trusts nothing in the bytes: any shape it does not
expect is a ``ValueError``, never a half-read page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .formats import Document

__all__ = [
    "EMPTY",
    "FORMAT",
    "LATEST",
    "FrontEntry",
    "FrontLanguage",
    "FrontPage",
    "describe",
    "dumps",
    "loads",
]

FORMAT = 1  # bump when the shape changes; an unknown format reads as "no index"
LATEST = 10  # statements per language on the start page
# A start page shows a title and an excerpt: a statement with a giant explicit
# summary (or title) must not make the index, which every page reads, giant too.
MAX_TITLE = 1_000
MAX_SUMMARY = 10_000
_TAG = re.compile(r"[A-Za-z0-9-]{1,35}")  # what a feed file name may hold (adapters.feed_files)


@dataclass(frozen=True, slots=True)
class FrontEntry:
    title: str
    published: str  # ISO 8601 with offset, as the statement's date
    summary: str
    url: str


@dataclass(frozen=True, slots=True)
class FrontLanguage:
    lang: str
    statements: int  # published: in the feed or its archives, each counted once
    latest: tuple[FrontEntry, ...]  # newest first, at most LATEST


@dataclass(frozen=True, slots=True)
class FrontPage:
    languages: tuple[FrontLanguage, ...]  # sorted by tag

    def get(self, lang: str) -> FrontLanguage | None:
        return next((item for item in self.languages if item.lang == lang), None)

    @property
    def tags(self) -> list[str]:
        return [item.lang for item in self.languages]


EMPTY = FrontPage(())


def describe(documents: Iterable[Document]) -> FrontPage:
    """The languages and latest statements of a build's feed documents."""
    ids: dict[str, set[str]] = {}  # the subscription feed may overlap the newest archive
    latest: dict[str, tuple[FrontEntry, ...]] = {}
    for document in documents:
        ids.setdefault(document.lang, set()).update(s.id for s in document.entries)
        if not document.archive:  # the subscription feed holds the newest entries
            latest[document.lang] = tuple(
                FrontEntry(
                    _cut(s.title, MAX_TITLE),
                    s.published.isoformat(),
                    _cut(s.summary, MAX_SUMMARY),
                    s.url,
                )
                for s in document.entries[:LATEST]
            )
    return FrontPage(
        tuple(
            FrontLanguage(lang, len(ids.get(lang, ())), entries)
            for lang, entries in sorted(latest.items())
        )
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def dumps(page: FrontPage) -> bytes:
    """Stable bytes (sorted keys, ASCII): the same page always gives the same file."""
    data = {
        "format": FORMAT,
        "languages": [
            {
                "lang": item.lang,
                "statements": item.statements,
                "latest": [
                    {"title": e.title, "published": e.published, "summary": e.summary, "url": e.url}
                    for e in item.latest
                ],
            }
            for item in page.languages
        ],
    }
    # ensure_ascii: a lone surrogate from a statement cannot make the file undecodable.
    return json.dumps(data, ensure_ascii=True, sort_keys=True, indent=1).encode("ascii") + b"\n"


def loads(data: bytes) -> FrontPage:
    """The page in ``data``; ``ValueError`` for anything but what :func:`dumps` writes."""
    try:
        root = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    mapping = _mapping(root)
    if mapping.get("format") != FORMAT:
        raise ValueError(f"unknown format {mapping.get('format')!r}")
    return FrontPage(tuple(_language(item) for item in _list(mapping.get("languages"))))


def _language(value: object) -> FrontLanguage:
    item = _mapping(value)
    statements = item.get("statements")
    if not isinstance(statements, int) or isinstance(statements, bool) or statements < 0:
        raise ValueError("statements is not a count")
    lang = _text(item.get("lang"))
    if not _TAG.fullmatch(lang):
        raise ValueError("lang is not a language tag")
    return FrontLanguage(
        lang,
        statements,
        tuple(_entry(entry) for entry in _list(item.get("latest"))[:LATEST]),
    )


def _entry(value: object) -> FrontEntry:
    item = _mapping(value)
    published = _text(item.get("published"))
    datetime.fromisoformat(published)  # ValueError if it is not a date
    return FrontEntry(
        _text(item.get("title")), published, _text(item.get("summary")), _text(item.get("url"))
    )


def _mapping(value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("expected an object")
    return value


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("expected a list")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value
