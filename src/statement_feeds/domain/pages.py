"""Which HTML pages a site has, and what each shows: pure, from the catalog.

The pages (``feeds.pages`` renders and writes them) are:

* ``index.html`` — the language chooser, at ``site.url``;
* ``<lang>/index.html`` and ``<lang>/page/<n>/index.html`` — a language's statements,
  newest first, ``per_page`` to a page (the seed's statements page);
* ``<lang>/<slug>/index.html`` — one statement, only where its ``url`` is the default one
  (``site.url`` + ``<lang>/<slug>/``): a statement with its own ``url`` lives there.

Every page knows its canonical URL and its ``hreflang`` alternates (the chooser is the
``x-default``), which the sitemap (:mod:`.sitemap`) repeats.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .catalog import Catalog, Translation
from .statements import Statement

__all__ = [
    "CHOOSER",
    "INDEX",
    "STATEMENT",
    "Page",
    "PageLink",
    "PageSettings",
    "page_fingerprints",
    "page_path",
    "plan_pages",
    "statement_page_path",
]

CHOOSER, INDEX, STATEMENT = "chooser", "index", "statement"
# One path segment as slugify writes it (word characters and "-"): never ".", "..",
# a slash or a query, whatever an explicit `url` holds.
_SLUG = re.compile(r"[\w-]+")
_RTL = frozenset({"ar", "arc", "ckb", "dv", "fa", "he", "ps", "sd", "ug", "ur", "yi"})
_RTL_SCRIPTS = frozenset({"Arab", "Hebr", "Thaa", "Syrc", "Nkoo", "Adlm", "Rohg"})


@dataclass(frozen=True, slots=True)
class PageSettings:
    site_title: str
    site_url: str  # ends with "/"
    feeds_url: str  # ends with "/"
    default_language: str
    language_titles: Mapping[str, str]
    per_page: int
    subscribe_url: str = ""  # the web side's sign-up page ("": none)
    version: str = ""  # part of every fingerprint: the templates and the package
    # As FeedSettings.parsed_with: set when every statement's fields follow from its
    # file's bytes, path and these, so a fingerprint needs only its digest and identity.
    parsed_with: str = ""


@dataclass(frozen=True, slots=True)
class PageLink:
    lang: str
    url: str
    title: str


@dataclass(frozen=True, slots=True)
class Page:
    """One HTML page to write."""

    path: str  # relative to the output folder, "/"-separated, ends with index.html
    kind: str  # CHOOSER, INDEX or STATEMENT
    lang: str  # the page's language ("" for the chooser: the default language's)
    url: str  # canonical
    title: str
    description: str
    alternates: tuple[PageLink, ...]  # hreflang versions, this one included, by tag
    x_default: str
    feed_url: str  # the language's Atom feed ("" for the chooser)
    languages: tuple[PageLink, ...]  # every language's list page, by tag
    entries: tuple[Statement, ...] = ()  # INDEX: newest first
    statement: Statement | None = None  # STATEMENT
    number: int = 1  # INDEX: which page of the list
    count: int = 1  # INDEX: how many pages the list has
    newer: str = ""  # INDEX: the URL of the page before (newer statements)
    older: str = ""  # INDEX: the URL of the page after (older statements)

    @property
    def direction(self) -> str:
        return text_direction(self.lang)


def text_direction(lang: str) -> str:
    """``rtl`` for languages written right to left (Arabic, Hebrew, Persian, ...)."""
    parts = lang.split("-")
    if any(part in _RTL_SCRIPTS for part in parts[1:]):
        return "rtl"
    latin = any(len(part) == 4 and part not in _RTL_SCRIPTS for part in parts[1:])
    return "rtl" if parts[0] in _RTL and not latin else "ltr"


def page_path(url: str, site_url: str) -> str:
    """The file a page URL under ``site_url`` is written to: ``en/x/`` → ``en/x/index.html``."""
    return url.removeprefix(site_url) + "index.html"


def statement_page_path(statement: Statement, site_url: str) -> str | None:
    """Where the statement's page goes, or None: its url is not ``<site>/<lang>/<slug>/``."""
    return _slug_path(statement.url, statement.lang, f"{site_url}{statement.lang}/")


def _slug_path(url: str, lang: str, prefix: str) -> str | None:
    """:func:`statement_page_path`, with the language's ``prefix`` (``<site>/<lang>/``)."""
    if not url.startswith(prefix) or not url.endswith("/"):
        return None
    slug = url[len(prefix) : -1]
    if not _SLUG.fullmatch(slug) or (slug == "page"):
        return None  # "page" would be the list's pagination folder
    return f"{lang}/{slug}/index.html"


def plan_pages(catalog: Catalog, settings: PageSettings) -> list[Page]:
    """Every page of the published catalog, sorted by path (the same catalog and
    settings give the same list, fingerprints included)."""
    by_language = catalog.by_language()
    translations = catalog.translations()
    languages = tuple(
        PageLink(lang, f"{settings.site_url}{lang}/", _language_title(settings, lang))
        for lang in by_language
    )
    # Every version of a statement has the same alternates: made once per group, and
    # the pages share the tuple (which fingerprints and the sitemap key rely on).
    groups: dict[str, tuple[tuple[PageLink, ...], str]] = {}
    pages = [_chooser(settings, languages)]
    for lang, newest in by_language.items():
        pages.extend(_index_pages(settings, lang, newest, languages))
        feed_url = f"{settings.feeds_url}{lang}.atom"
        prefix = f"{settings.site_url}{lang}/"
        for statement in newest:
            path = _slug_path(statement.url, lang, prefix)
            if path is None:
                continue
            key = statement.translation_key
            links = groups.get(key)
            if links is None:
                links = groups[key] = _group_links(settings, translations.get(key, ()))
            pages.append(_statement_page(statement, path, links, feed_url, languages))
    return sorted(pages, key=lambda page: page.path)


def _language_title(settings: PageSettings, lang: str) -> str:
    return settings.language_titles.get(lang, settings.site_title)


def _chooser(settings: PageSettings, languages: tuple[PageLink, ...]) -> Page:
    return Page(
        path="index.html",
        kind=CHOOSER,
        lang=settings.default_language,
        url=settings.site_url,
        title=settings.site_title,
        description=settings.site_title,
        alternates=languages,
        x_default=settings.site_url,
        feed_url="",
        languages=languages,
    )


def _index_pages(
    settings: PageSettings, lang: str, newest: list[Statement], languages: tuple[PageLink, ...]
) -> list[Page]:
    size = settings.per_page
    count = max(1, -(-len(newest) // size))
    first = f"{settings.site_url}{lang}/"

    def url(number: int) -> str:
        return first if number == 1 else f"{first}page/{number}/"

    pages = []
    for number in range(1, count + 1):
        title = _language_title(settings, lang)
        pages.append(
            Page(
                path=page_path(url(number), settings.site_url),
                kind=INDEX,
                lang=lang,
                url=url(number),
                title=title,
                description=title,
                # Only the first pages correspond across languages; page 3 of one
                # list is not a translation of page 3 of another.
                alternates=languages if number == 1 else (),
                x_default=settings.site_url if number == 1 else "",
                feed_url=f"{settings.feeds_url}{lang}.atom",
                languages=languages,
                entries=tuple(newest[(number - 1) * size : number * size]),
                number=number,
                count=count,
                newer=url(number - 1) if number > 1 else "",
                older=url(number + 1) if number < count else "",
            )
        )
    return pages


def _group_links(
    settings: PageSettings, group: Sequence[Translation]
) -> tuple[tuple[PageLink, ...], str]:
    """A translation group's alternates and ``x-default`` (the default language's version,
    else the chooser)."""
    alternates = tuple(PageLink(t.lang, t.url, t.title) for t in group)
    default = next((t.url for t in group if t.lang == settings.default_language), None)
    return alternates, default or settings.site_url


def _statement_page(
    statement: Statement,
    path: str,
    links: tuple[tuple[PageLink, ...], str],
    feed_url: str,
    languages: tuple[PageLink, ...],
) -> Page:
    # Every field follows from the statement, its group's links and the settings:
    # page_fingerprints counts on it. Positional (in field order): 10,000 per build.
    return Page(
        path,
        STATEMENT,
        statement.lang,
        statement.url,
        statement.title,
        statement.summary,  # description
        links[0],  # alternates
        links[1],  # x_default
        feed_url,
        languages,
        (),  # entries
        statement,
    )


def page_fingerprints(pages: Sequence[Page], settings: PageSettings) -> list[str]:
    """A hash per page of everything its bytes depend on (its statements' files by their
    digests; ``settings.version`` stands for the templates and catalogs).

    Cheap, since a rebuild after one edit fingerprints every page: the settings are
    hashed once (each page's hash starts from a copy), link lists shared by many pages
    (every page's languages, a translation group's alternates) are hashed once, and a
    statement page, whose other fields all follow from its statement, its links and
    the settings (``_statement_page``), hashes only those.
    """
    base = hashlib.blake2b(repr(settings).encode(), digest_size=16)
    short = bool(settings.parsed_with)  # it is part of ``base``
    links: dict[int, str] = {}  # id of a shared tuple → its hash (the tuples outlive this)

    def joined(items: tuple[PageLink, ...]) -> str:
        found = links.get(id(items))
        if found is None:
            text = "\x1e".join(f"{t.lang}\x1f{t.url}\x1f{t.title}" for t in items)
            found = links[id(items)] = _digest(text)
        return found

    out = []
    for page in pages:
        s = page.statement
        if page.kind == STATEMENT and s is not None:
            alternates = links.get(id(page.alternates)) or joined(page.alternates)
            languages = links.get(id(page.languages)) or joined(page.languages)
            # id and url are not always the file's: a renamed file keeps its old identity.
            identity = (s.digest, s.source, s.id, s.url, s.translation_key)
            text = "\x1f".join(
                (STATEMENT, page.path, page.x_default, alternates, languages, *identity)
            )
            if not short:
                text += "\x1f" + _unparsed(s)
        else:
            parts = [page.kind, page.path, page.lang, page.url, page.title, page.description]
            parts += (page.x_default, page.feed_url, page.newer, page.older)
            parts += (str(page.number), str(page.count))
            parts += (joined(page.alternates), joined(page.languages))
            for s in page.entries:
                parts += (s.digest, s.source, s.id, s.url, s.translation_key)
                if not short:
                    parts.append(_unparsed(s))
            text = "\x1f".join(parts)
        digest = base.copy()
        digest.update(text.encode())
        out.append(digest.hexdigest())
    return out


def _unparsed(s: Statement) -> str:
    """What a fingerprint holds of a statement beyond its file's digest and identity when
    its fields may not follow from them (no ``parsed_with``)."""
    return "\x1f".join(
        (s.title, s.summary, s.author, s.lang, s.published.isoformat(), s.updated.isoformat())
    )


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
