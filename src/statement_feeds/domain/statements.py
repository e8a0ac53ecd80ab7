"""Statement files: front matter + Markdown body → :class:`Statement`, or problems.

Pure: the caller supplies the file's bytes, its path relative to the statements
folder, and the site defaults. Nothing here reads the disk or the clock. Reading the
header is ``front_matter``; checking each value is ``statement_fields``; this module
joins them into a statement, with its defaults and identity.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import datetime, tzinfo
from operator import attrgetter
from typing import Any

from .excerpt_links import strip_markers
from .excerpts import excerpt
from .front_matter import (
    KNOWN_KEYS,
    Invalid,
    decode,
    load_yaml,
    simple_front_matter,
    split_front_matter,
)
from .langtags import canonical_tag, is_language_suffix
from .markup import render_raw
from .problems import Problem
from .statement_fields import IRI_CHARS, Checker

__all__ = [
    "KNOWN_KEYS",
    "PARSER_VERSION",
    "ParseResult",
    "SiteDefaults",
    "Statement",
    "content_digest",
    "inherit_identity",
    "parse_statement",
    "slugify",
    "split_name",
    "statement_body",
    "statement_id",
]

# Part of the build cache's key: bump when parsing or excerpt rules change.
PARSER_VERSION = "13"  # 13: site-relative urls


@dataclass(frozen=True, slots=True)
class SiteDefaults:
    """The configuration a statement's defaults come from."""

    url: str  # ends with "/"
    default_language: str
    timezone: tzinfo
    author: str
    excerpt_words: int
    id_base: str = ""  # scope of the default ids (site.id_base); "" means ``url``


@dataclass(frozen=True, slots=True)
class Statement:
    source: str  # path relative to the statements folder, "/"-separated
    id: str
    lang: str
    translation_key: str
    title: str
    published: datetime  # aware
    updated: datetime  # aware, >= published
    url: str
    summary: str
    body: str  # Markdown
    author: str
    draft: bool
    digest: str  # hash of the file's bytes: what the caches key on

    def __reduce__(self) -> tuple[type[Statement], tuple[Any, ...]]:
        # A call of the class with the field values (workers send statements back):
        # dataclasses' own __getstate__/__setstate__ for slotted classes loop in Python.
        # Datetimes pickle in C; a ZoneInfo once per pickle (the memo), and unpickles
        # to the one cached instance per zone.
        return (Statement, _field_values(self))


_field_values = attrgetter(*(f.name for f in fields(Statement)))


@dataclass(frozen=True, slots=True)
class ParseResult:
    statement: Statement | None
    problems: tuple[Problem, ...]


def content_digest(data: bytes) -> str:
    """What caches key a file's bytes on. SHA-256 because it runs in hardware on
    today's CPUs; hashlib's BLAKE2 is the portable C reference code, several times
    slower, and hashing was a visible part of parsing."""
    return hashlib.sha256(data).hexdigest()[:32]


def split_name(source: str, default_language: str) -> tuple[str, str | None]:
    """``a/belarus.ru.md`` → (``belarus``, ``ru``); the language is None without a suffix."""
    name = source.rsplit("/", 1)[-1]
    stem = name[:-3] if name.endswith(".md") else name
    base, dot, suffix = stem.rpartition(".")
    if dot and base and is_language_suffix(suffix):
        return base, canonical_tag(suffix)
    return stem, None


def parse_statement(
    source: str,
    data: bytes,
    site: SiteDefaults,
    render: Callable[[str], str] = render_raw,
    *,
    digest: str | None = None,
) -> ParseResult:
    """Parse one statement file. Never raises on bad input: returns problems instead.

    ``render`` renders the body's CommonMark for the excerpt (see ``excerpts.excerpt``);
    ``digest`` is ``content_digest(data)`` when the caller has it already.
    """
    problems: list[Problem] = []
    try:
        statement = _parse(source, data, site, problems, render, digest=digest)
    except Invalid as invalid:
        return ParseResult(None, (invalid.problem,))
    if problems or statement is None:
        return ParseResult(None, tuple(problems))
    return ParseResult(statement, ())


def _parse(
    source: str,
    data: bytes,
    site: SiteDefaults,
    problems: list[Problem],
    render: Callable[[str], str],
    *,
    digest: str | None,
) -> Statement | None:
    text = decode(source, data)
    header, body = split_front_matter(source, text)
    fields, lines = simple_front_matter(header) or load_yaml(source, header)
    check = Checker(source, lines, problems)

    for key in sorted(set(fields) - KNOWN_KEYS):
        check.fail(key, f"unknown key {key!r}", f"known keys: {', '.join(sorted(KNOWN_KEYS))}")
    title = check.title(fields.get("title"))
    published = check.moment("date", fields.get("date"), site.timezone, required=True)
    updated = check.moment("updated", fields.get("updated"), site.timezone, required=False)
    if published and updated and updated < published:
        check.fail(
            "updated", "'updated' is before 'date'", "a correction cannot precede publication"
        )
    key_from_name, lang_from_name = split_name(source, site.default_language)
    lang = check.language(fields.get("lang"), lang_from_name or site.default_language)
    translation_key = check.text("translation_key", fields.get("translation_key"), key_from_name)
    explicit_id = check.text("id", fields.get("id"), "")
    url = check.url(fields.get("url"), site.url)
    summary = check.text("summary", fields.get("summary"), "", multiline=True)
    author = check.text("author", fields.get("author"), site.author)
    draft = check.flag("draft", fields.get("draft"))
    if problems or title is None or published is None or lang is None:
        return None
    return Statement(
        source=source,
        id=statement_id(site.id_base or site.url, translation_key, lang, explicit_id),
        lang=lang,
        translation_key=translation_key,
        title=title,
        published=published,
        updated=updated or published,
        url=url or f"{site.url}{lang}/{slugify(translation_key)}/",
        # An explicit summary is text: the characters excerpts mark links with are dropped.
        summary=strip_markers(summary) or excerpt(body, site.excerpt_words, render),
        body=body,
        author=author,
        draft=draft,
        digest=digest or content_digest(data),
    )


def inherit_identity(statement: Statement, old: Statement, site: SiteDefaults) -> Statement:
    """``statement`` with the identity of ``old`` (a rename of the same file content).

    The url follows the translation key only where it was the default one.
    """
    default_url = f"{site.url}{statement.lang}/{slugify(statement.translation_key)}/"
    return replace(
        statement,
        translation_key=old.translation_key,
        id=old.id,
        url=old.url if statement.url == default_url else statement.url,
    )


def statement_body(source: str, data: bytes) -> str:
    """The Markdown body of a statement file; ValueError if it cannot be read as one."""
    try:
        return split_front_matter(source, decode(source, data))[1]
    except Invalid as invalid:
        raise ValueError(str(invalid.problem)) from None


_IRI = re.compile(rf"[a-zA-Z][a-zA-Z0-9+.-]*:{IRI_CHARS}+")


def statement_id(site_url: str, translation_key: str, lang: str, explicit: str = "") -> str:
    """A stable Atom id: never from the title, url or path, so renames and fixes keep it.

    An explicit id that is already a URI (``tag:``, ``urn:``, ``https:``) is used as
    is; anything else is turned into a name-based UUID URN, scoped to the site.
    """
    if explicit and _IRI.fullmatch(explicit):
        return explicit
    name = f"{site_url}#statement/{explicit or translation_key + '/' + lang}"
    return uuid.uuid5(uuid.NAMESPACE_URL, name).urn


def slugify(text: str) -> str:
    slug = re.sub(r"[^\w-]+", "-", unicodedata.normalize("NFKC", text).lower()).strip("-")
    return slug or "statement"
