"""Atom feeds (RFC 4287) per language, with RFC 5005 archives.

``plan_feeds`` decides which documents exist and what each contains;
``render_document`` turns one plan into bytes. Splitting the two lets the
service skip rendering a document whose inputs (its ``fingerprint``) are
unchanged. Output depends only on the inputs: no "now", fixed entry order, so
identical input gives identical bytes.

Entry links are written by an entry extension because feedgen 1.0.0 drops
``rel``/``type``/``hreflang``/``title`` from entry links (python-feedgen #135).
"""

from __future__ import annotations

import hashlib
import html as htmllib
import itertools
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from feedgen.feed import FeedGenerator
from lxml import etree

from ..domain.catalog import Catalog, Translation
from ..domain.statements import Statement

__all__ = [
    "ATOM_NS",
    "HISTORY_NS",
    "Document",
    "FeedSettings",
    "plan_feeds",
    "render_document",
    "resolve_urls",
]

ATOM_NS = "http://www.w3.org/2005/Atom"
HISTORY_NS = "http://purl.org/syndication/history/1.0"
FORMAT_VERSION = "2"  # bump when the output format changes, so fingerprints change too
# What XML 1.0 cannot carry, listed (the complement of its Char production): a
# negated class of the allowed ranges took 5 ms to compile, at every process start.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# A start tag as the sanitiser serialises it: attribute values always double-quoted.
_START_TAG = re.compile(r'<[a-zA-Z][^\s/>]*(?:\s+[^\s"\'=<>/]+(?:="[^"]*")?)*\s*/?>')
_URL_ATTRIBUTE = re.compile(r'(\s(?:href|src|cite)=")([^"]*)(")')
_HAS_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
# A URL attribute whose value has no scheme (relative), anywhere: a quick "anything to do?"
_RELATIVE_URL = re.compile(r'\s(?:href|src|cite)="(?![a-zA-Z][a-zA-Z0-9+.-]*:)')


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


def feed_path(lang: str) -> str:
    return f"feeds/{lang}.atom"


def archive_path(lang: str, page: int) -> str:
    return f"feeds/archive/{lang}/{page}.atom"


def plan_feeds(catalog: Catalog, settings: FeedSettings) -> list[Document]:
    """Every document to publish: per language, the subscription feed and its archives.

    Archives hold complete pages of ``max_entries`` entries counted from the oldest,
    so publishing new statements never changes a full archive page: not its
    entries and not its links either. That is why every archive page links
    ``next-archive`` to the following page number even before that page exists
    (it appears, at exactly that URL, once it is full); linking it only later
    would rewrite the page. Every archive page thus has an archive link, which the
    W3C validator wants (its ``ArchiveIncomplete`` warning). The subscription feed
    holds the newest ``max_entries`` (it may overlap the newest archive page,
    which RFC 5005 clients handle by entry id).
    """
    translations = catalog.translations()
    groups = {key: _group_hash(group) for key, group in translations.items()}
    documents: list[Document] = []
    for lang, statements in catalog.by_language().items():
        documents.extend(_language_documents(lang, statements, translations, groups, settings))
    return documents


def _language_documents(
    lang: str,
    newest: list[Statement],
    translations: Mapping[str, Sequence[Translation]],
    groups: Mapping[str, str],
    settings: FeedSettings,
) -> list[Document]:
    size = settings.max_entries
    oldest = newest[::-1]
    pages = len(oldest) // size if len(oldest) > size else 0
    subscription_url = settings.feeds_url + feed_path(lang).removeprefix("feeds/")

    def url(page: int) -> str:
        return settings.feeds_url + archive_path(lang, page).removeprefix("feeds/")

    def make(
        path: str,
        self_url: str,
        links: list[tuple[str, str]],
        archive: bool,
        items: list[Statement],
    ) -> Document:
        document = Document(
            path=path,
            lang=lang,
            title=settings.language_titles.get(lang, settings.site_title),
            feed_id=uuid.uuid5(
                uuid.NAMESPACE_URL, f"{settings.id_base or settings.site_url}#feed/{lang}"
            ).urn,
            self_url=self_url,
            links=tuple(links),
            archive=archive,
            entries=tuple(items),
            translations={
                s.translation_key: translations.get(s.translation_key, ()) for s in items
            },
            fingerprint="",
        )
        return replace(document, fingerprint=_fingerprint(document, settings, groups))

    links = [("prev-archive", url(pages))] if pages else []
    documents = [make(feed_path(lang), subscription_url, links, False, newest[:size])]
    for page in range(1, pages + 1):
        page_links = [("current", subscription_url)]
        if page > 1:
            page_links.append(("prev-archive", url(page - 1)))
        page_links.append(("next-archive", url(page + 1)))
        items = oldest[(page - 1) * size : page * size][::-1]
        documents.append(make(archive_path(lang, page), url(page), page_links, True, items))
    return documents


def _fingerprint(document: Document, settings: FeedSettings, groups: Mapping[str, str]) -> str:
    """Hash of everything the rendered bytes depend on.

    ``groups`` holds one hash per translation group, computed once per build: the
    per-entry part is a plain string join, because ``repr`` of every entry made
    fingerprinting the slowest step of a no-change rebuild.
    """
    head = (FORMAT_VERSION, settings, document.path, document.title, document.links)
    parts = [repr((head, document.archive))]
    short = bool(settings.parsed_with)  # it is part of ``head``
    for s in document.entries:
        # id, url and translation key are not always the file's: a renamed file keeps
        # its old identity.
        parts += (s.digest, s.source, s.id, s.url, s.translation_key)
        if not short:
            parts += (s.summary, s.title, s.author)
            parts += (s.published.isoformat(), s.updated.isoformat())  # site.timezone
        parts.append(groups.get(s.translation_key, ""))
    return _hash("\x1f".join(parts))


def _group_hash(group: Sequence[Translation]) -> str:
    return _hash("\x1e".join(f"{t.lang}\x1f{t.url}\x1f{t.title}" for t in group))


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def render_document(
    document: Document, settings: FeedSettings, html: Callable[[Statement], str]
) -> bytes:
    """The Atom XML of one document. ``html`` gives an entry's sanitised HTML content.

    Characters XML 1.0 cannot carry (control characters, U+FFFE, U+FFFF, lone
    surrogates) are removed from every text. Looking for them in every text cost more
    than a third of rendering, and they are rare; lxml refuses exactly these (a
    ValueError, or UnicodeEncodeError for a surrogate) wherever a text or attribute
    is set, so the document is rendered as it is, and again, cleaned, if refused.
    """
    try:
        return _render(document, settings, html, _as_is)
    except (ValueError, UnicodeEncodeError):  # "All strings must be XML compatible"
        return _render(document, settings, html, _clean)


def _as_is(text: str) -> str:
    return text


def _render(
    document: Document,
    settings: FeedSettings,
    html: Callable[[Statement], str],
    clean: Callable[[str], str],
) -> bytes:
    feed = FeedGenerator()
    feed.register_extension("sfeeds", _FeedExtension, _EntryExtension, atom=True, rss=False)
    feed.id(document.feed_id)
    feed.title(clean(document.title))
    feed.language(document.lang)
    feed.author({"name": clean(settings.author)})
    feed.link(href=document.self_url, rel="self", type="application/atom+xml")
    feed.link(href=settings.site_url, rel="alternate", type="text/html")
    for rel, href in document.links:
        feed.link(href=href, rel=rel, type="application/atom+xml")
    feed.generator("statement-feeds", version=settings.generator_version)
    feed.sfeeds.archive = document.archive
    # Feed "updated" is the newest entry's: never the clock, so output is reproducible.
    feed.updated(_rfc3339(max(s.updated for s in document.entries)))
    for statement in document.entries:
        _add_entry(feed, statement, document.translations, html, clean)
    return bytes(feed.atom_str(pretty=True))


def _add_entry(
    feed: Any,
    statement: Statement,
    translations: Mapping[str, Sequence[Translation]],
    html: Callable[[Statement], str],
    clean: Callable[[str], str],
) -> None:
    entry = feed.add_entry(order="append")  # the default, "prepend", would reverse our order
    entry.id(statement.id)
    entry.title(clean(statement.title))
    entry.published(_rfc3339(statement.published))
    entry.updated(_rfc3339(statement.updated))
    entry.author({"name": clean(statement.author)})
    entry.summary(clean(statement.summary))
    entry.content(clean(html(statement)), type="html")
    # Each dict's order is the attributes' order in the output.
    links = [{"rel": "alternate", "type": "text/html", "href": statement.url}]
    for version in translations.get(statement.translation_key, ()):
        if version.lang != statement.lang:
            links.append(
                {
                    "rel": "alternate",
                    "type": "text/html",
                    "hreflang": version.lang,
                    "href": version.url,
                    "title": clean(version.title),
                }
            )
    entry.sfeeds.links = links


def _rfc3339(moment: datetime) -> datetime:
    """``moment``, in UTC if its offset has seconds (historic local mean time, e.g.
    Europe/London before 1847 is -00:01:15), which RFC 3339 cannot write."""
    offset = moment.utcoffset()
    if offset is not None and (offset.seconds % 60 or offset.microseconds):
        return moment.astimezone(UTC)
    return moment


def resolve_urls(html: str, resolve: Callable[[str], str]) -> str:
    """Pass every relative ``href``/``src``/``cite`` URL in sanitised ``html`` to ``resolve``.

    The caller resolves them against the statement's URL (``urllib.parse.urljoin``;
    the core does no URL I/O-adjacent imports). Feed readers show content away from
    the site, where a relative link or image would break (the W3C validator warns:
    ``ContainsRelRef``); ``xml:base`` would be correct Atom, but many readers ignore it.
    """

    def attribute(match: re.Match[str]) -> str:
        value = htmllib.unescape(match[2])
        if _HAS_SCHEME.match(value):
            return match[0]
        return f"{match[1]}{htmllib.escape(resolve(value), quote=True)}{match[3]}"

    if _all_absolute(html) or not _RELATIVE_URL.search(html):
        return html  # the common case, nothing relative: skip the tag-by-tag pass
    return _START_TAG.sub(lambda tag: _URL_ATTRIBUTE.sub(attribute, tag[0]), html)


def _all_absolute(html: str) -> bool:
    """True if every URL attribute in sanitised ``html`` starts with an allowed scheme.

    One split in C, then a look at each attribute (the sanitiser writes them as
    `` name="value"``); the regex search it saves tested every character of every
    body. Anything it does not recognise (``="`` in text, another scheme, upper
    case) answers False, and the regex decides.
    """
    pieces = html.split('="')
    return not any(
        before.endswith(_URL_NAMES) and not after.startswith(_SCHEMES)
        for before, after in itertools.pairwise(pieces)
    )


_URL_NAMES = (" href", " src", " cite")
_SCHEMES = ("http://", "https://", "mailto:")


def _clean(text: str) -> str:
    """Remove characters XML 1.0 cannot carry (they would make lxml refuse the document)."""
    return _XML_INVALID.sub("", text)


class _FeedExtension:
    """Adds the RFC 5005 ``fh:archive`` marker to archive documents."""

    def __init__(self) -> None:
        self.archive = False

    def extend_ns(self) -> dict[str, str]:
        return {"fh": HISTORY_NS}

    def extend_atom(self, feed: Any) -> Any:
        if self.archive:
            etree.SubElement(feed, f"{{{HISTORY_NS}}}archive")
        return feed

    def extend_rss(self, feed: Any) -> Any:
        return feed


class _EntryExtension:
    """Writes entry ``link`` elements with every attribute (works around feedgen #135).

    The elements are created without a namespace, exactly like feedgen's own
    children of the root that declares ``xmlns`` as the Atom namespace, so they
    serialise as plain ``<link>`` in the Atom namespace.
    """

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []

    def extend_ns(self) -> dict[str, str]:
        return {}

    def extend_atom(self, entry: Any) -> Any:
        anchor = entry.find("summary")
        for link in self.links:
            # Attributes in the order given (rel, type, hreflang, href, title). Made in
            # the entry's own document: a separate Element is a document of its own,
            # moved over when inserted.
            element = entry.makeelement("link", link)
            if anchor is not None:
                anchor.addprevious(element)
            else:
                entry.append(element)
        return entry

    def extend_rss(self, entry: Any) -> Any:
        return entry
