"""The Atom format (RFC 4287), with RFC 5005 archive markers: :data:`ATOM`.

``render_document`` turns one planned document (``plan``) into bytes. Output depends
only on the inputs: no "now", fixed entry order, so identical input gives identical
bytes.

Entry links are written by an entry extension because feedgen 1.0.0 drops
``rel``/``type``/``hreflang``/``title`` from entry links (python-feedgen #135).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from feedgen.feed import FeedGenerator
from lxml import etree

from ..domain.catalog import Catalog, Translation
from ..domain.excerpt_links import has_links, strip_markers, summary_html
from ..domain.statements import Statement
from . import plan
from .formats import Document, FeedSettings

__all__ = [
    "ATOM",
    "ATOM_NS",
    "HISTORY_NS",
    "AtomFormat",
    "Document",
    "FeedSettings",
    "plan_feeds",
    "render_document",
]

ATOM_NS = "http://www.w3.org/2005/Atom"
HISTORY_NS = "http://purl.org/syndication/history/1.0"
# What XML 1.0 cannot carry, listed (the complement of its Char production): a
# negated class of the allowed ranges took 5 ms to compile, at every process start.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True, slots=True)
class AtomFormat:
    """Atom as a :class:`~.formats.FeedFormat`."""

    name: str = "atom"
    suffix: str = ".atom"
    media_type: str = "application/atom+xml"
    version: str = "2"  # bump when the output changes, so fingerprints change too

    def render(
        self, document: Document, settings: FeedSettings, html: Callable[[Statement], str]
    ) -> bytes:
        return render_document(document, settings, html)


ATOM = AtomFormat()


def plan_feeds(catalog: Catalog, settings: FeedSettings) -> list[Document]:
    """The Atom documents of ``catalog`` (see ``plan.plan_feeds``)."""
    return plan.plan_feeds(catalog, settings, ATOM)


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
    feed.link(href=document.self_url, rel="self", type=ATOM.media_type)
    for hub in settings.hubs:  # WebSub discovery (W3C WebSub 4): beside the self link
        feed.link(href=hub, rel="hub")
    feed.link(href=settings.site_url, rel="alternate", type="text/html")
    for rel, href in document.links:
        feed.link(href=href, rel=rel, type=ATOM.media_type)
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
    if has_links(statement.summary):  # links in the excerpt stay links (issue 14)
        entry.summary(clean(summary_html(statement.summary)), type="html")
    else:
        entry.summary(clean(strip_markers(statement.summary)))
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
