"""Which documents a build publishes and what each contains, for one format.

Planning is apart from rendering so that the build can skip rendering a document
whose inputs (its ``fingerprint``) are unchanged.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace

from ..domain.catalog import Catalog, Translation
from ..domain.statements import Statement
from .formats import Document, FeedFormat, FeedSettings, archive_path, feed_path

__all__ = ["plan_feeds"]


def plan_feeds(catalog: Catalog, settings: FeedSettings, fmt: FeedFormat) -> list[Document]:
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
        documents.extend(
            _language_documents(lang, statements, translations, groups, settings=settings, fmt=fmt)
        )
    return documents


def _language_documents(
    lang: str,
    newest: list[Statement],
    translations: Mapping[str, Sequence[Translation]],
    groups: Mapping[str, str],
    *,
    settings: FeedSettings,
    fmt: FeedFormat,
) -> list[Document]:
    size = settings.max_entries
    oldest = newest[::-1]
    pages = len(oldest) // size if len(oldest) > size else 0
    subscription_url = settings.feeds_url + feed_path(fmt, lang).removeprefix("feeds/")

    def url(page: int) -> str:
        return settings.feeds_url + archive_path(fmt, lang, page).removeprefix("feeds/")

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
        return replace(document, fingerprint=_fingerprint(document, settings, fmt, groups))

    links = [("prev-archive", url(pages))] if pages else []
    documents = [make(feed_path(fmt, lang), subscription_url, links, False, newest[:size])]
    for page in range(1, pages + 1):
        page_links = [("current", subscription_url)]
        if page > 1:
            page_links.append(("prev-archive", url(page - 1)))
        page_links.append(("next-archive", url(page + 1)))
        items = oldest[(page - 1) * size : page * size][::-1]
        documents.append(make(archive_path(fmt, lang, page), url(page), page_links, True, items))
    return documents


def _fingerprint(
    document: Document, settings: FeedSettings, fmt: FeedFormat, groups: Mapping[str, str]
) -> str:
    """Hash of everything the rendered bytes depend on.

    ``groups`` holds one hash per translation group, computed once per build: the
    per-entry part is a plain string join, because ``repr`` of every entry made
    fingerprinting the slowest step of a no-change rebuild.
    """
    head = (fmt.version, settings, document.path, document.title, document.links)
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
