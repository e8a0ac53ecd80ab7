"""``sitemap.xml`` (with ``xhtml:link`` hreflang alternates) and ``robots.txt``: pure.

One ``<url>`` per page, its alternates as Google documents them (every version lists
every version, itself included, and ``x-default``). A sitemap holds at most 50,000
URLs: a bigger site gets ``sitemap.xml`` as a sitemap index of ``sitemaps/<n>.xml``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from html import escape

from .pages import STATEMENT, Page

__all__ = ["MAX_URLS", "robots_txt", "sitemap_files", "sitemap_key"]

MAX_URLS = 50_000
_NS = (
    'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:xhtml="http://www.w3.org/1999/xhtml"'
)


def sitemap_files(pages: Sequence[Page], site_url: str, size: int = MAX_URLS) -> dict[str, bytes]:
    """Path (relative to the output folder) → bytes: ``sitemap.xml`` and, for a site of
    more than ``size`` pages, ``sitemaps/<n>.xml``."""
    chunks = [pages[i : i + size] for i in range(0, len(pages), size)] or [[]]
    if len(chunks) == 1:
        return {"sitemap.xml": _urlset(chunks[0])}
    files = {f"sitemaps/{n}.xml": _urlset(chunk) for n, chunk in enumerate(chunks, start=1)}
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    lines.append('<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">')
    for name in files:
        lines.append(f"<sitemap><loc>{escape(site_url + name)}</loc></sitemap>")
    lines.append("</sitemapindex>")
    files["sitemap.xml"] = ("\n".join(lines) + "\n").encode()
    return files


def sitemap_key(
    pages: Sequence[Page], site_url: str, size: int = MAX_URLS, version: str = ""
) -> str:
    """A hash of everything :func:`sitemap_files` (and :func:`robots_txt`) make of these
    arguments, much cheaper than making them: per page its URL, ``lastmod``, alternates
    and ``x-default``, not its fingerprint (a statement's body or title is not in the
    sitemap). ``version`` names the code that writes them (the package's)."""
    links: dict[int, str] = {}  # id of a tuple of alternates shared by pages → its text
    parts = [_KEY_FORMAT, version, site_url, str(size)]
    for page in pages:
        statement = page.statement
        lastmod = (
            statement.updated.isoformat()
            if page.kind == STATEMENT and statement is not None
            else ""
        )
        alternates = links.get(id(page.alternates))
        if alternates is None:
            alternates = links[id(page.alternates)] = "\x1e".join(
                f"{link.lang}\x1d{link.url}" for link in page.alternates
            )
        default = page.x_default if page.alternates else ""
        parts += (page.url, lastmod, alternates, default)
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


_KEY_FORMAT = "sitemap-key-1"  # a change to what sitemap_key covers: a new name here


def _urlset(pages: Sequence[Page]) -> bytes:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f"<urlset {_NS}>"]
    # Every version of a statement lists the same alternates: each line made once.
    made: dict[tuple[str, str], str] = {}

    def alternate(lang: str, url: str) -> str:
        line = made.get((lang, url))
        if line is None:
            line = made[lang, url] = _alternate(lang, url)
        return line

    for page in pages:
        lines.append(f"<url><loc>{escape(page.url)}</loc>")
        if page.kind == STATEMENT and page.statement is not None:
            lines.append(f"<lastmod>{page.statement.updated.isoformat()}</lastmod>")
        lines += (alternate(link.lang, link.url) for link in page.alternates)
        if page.alternates and page.x_default:
            lines.append(alternate("x-default", page.x_default))
        lines.append("</url>")
    lines.append("</urlset>")
    return ("\n".join(lines) + "\n").encode()


def _alternate(lang: str, url: str) -> str:
    return f'<xhtml:link rel="alternate" hreflang="{escape(lang)}" href="{escape(url)}"/>'


def robots_txt(site_url: str) -> bytes:
    """Everything may be crawled; the sitemap is named (crawlers read robots.txt only
    at a host's root: a site under a path should copy these lines into that one)."""
    return f"User-agent: *\nAllow: /\nSitemap: {site_url}sitemap.xml\n".encode()
