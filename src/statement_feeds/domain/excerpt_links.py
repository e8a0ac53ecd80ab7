"""Links inside an excerpt: how a summary carries them, and how each output shows them.

An excerpt (``excerpts``) is plain text; a link in the part of the body it keeps is
written into it as ``OPEN url MID text CLOSE``, three private-use characters that
text taken from a statement never contains (``markup`` removes them from it). The
URL comes first and has no white space, so the excerpt's word count and cuts are
the same as without it; a cut inside the link's text leaves it unclosed, which is
read as closed at the end of the paragraph.

Outputs: :func:`summary_text` (digest text part: ``text <url>``), :func:`summary_plain`
(no URLs), :func:`summary_html_paragraphs` (``<a href>``, sanitised by nh3 as the
content is). Only ``http``, ``https`` and ``mailto`` URLs are ever links: anything
else (``javascript:``, a relative path) stays plain text.

Pure: no I/O.
"""

from __future__ import annotations

import html
import re

from markupsafe import Markup

from .sanitizing import sanitize

__all__ = [
    "CLOSE",
    "MID",
    "OPEN",
    "has_links",
    "link_url",
    "strip_markers",
    "summary_html",
    "summary_html_paragraphs",
    "summary_plain",
    "summary_text",
]

OPEN, MID, CLOSE = "\ue000", "\ue001", "\ue002"
_MARKERS = re.compile("[\ue000-\ue002]")
# A link, closed or (cut by the excerpt) not: url, then text up to CLOSE or the end.
_LINK = re.compile("\ue000([^\ue000-\ue002]*)\ue001([^\ue000\ue002]*)\ue002?")
# An OPEN and URL whose MID was cut off (the start page's index cuts long summaries).
_DANGLING = re.compile("\ue000[^\ue000-\ue002]*")
_SAFE_URL = re.compile(r"(?:https?://|mailto:)[^\s<>\"'`\x00-\x1f\x7f\ue000-\ue002]+", re.I)
_PARAGRAPHS = re.compile(r"\n\s*\n")


def link_url(href: str) -> str | None:
    """``href`` if it may be a link in an excerpt (http, https, mailto; no spaces)."""
    url = href.strip()
    return url if _SAFE_URL.fullmatch(url) else None


def strip_markers(text: str) -> str:
    return _MARKERS.sub("", text)


def has_links(summary: str) -> bool:
    return OPEN in summary and any(link_url(m[1]) for m in _LINK.finditer(summary))


def _parts(paragraph: str) -> list[tuple[str, str | None]]:
    """(text, url or None) runs of one paragraph; unsafe or empty links become text."""
    out: list[tuple[str, str | None]] = []
    position = 0
    for match in _LINK.finditer(paragraph):
        if match.start() > position:
            out.append((_text(paragraph[position : match.start()]), None))
        text = match[2]
        out.append((text, link_url(match[1]) if text.strip() else None))
        position = match.end()
    out.append((_text(paragraph[position:]), None))
    return [(text, url) for text, url in out if text]


def _text(run: str) -> str:
    return strip_markers(_DANGLING.sub("", run))


def summary_plain(summary: str) -> str:
    """The summary's text, links as their text only."""
    return "\n\n".join(
        "".join(text for text, _ in _parts(p)) for p in _PARAGRAPHS.split(summary)
    ).strip()


def summary_text(summary: str) -> str:
    """For plain text: each link's text followed by its URL, ``our site <https://…>``."""
    paragraphs = []
    for paragraph in _PARAGRAPHS.split(summary):
        runs = [f"{text} <{url}>" if url else text for text, url in _parts(paragraph)]
        paragraphs.append("".join(runs))
    return "\n\n".join(p for p in paragraphs if p.strip()).strip()


def summary_html_paragraphs(summary: str) -> list[Markup]:
    """One sanitised HTML fragment per paragraph, links kept (for autoescaping templates)."""
    out: list[Markup] = []
    for paragraph in _PARAGRAPHS.split(summary):
        runs = []
        for text, url in _parts(paragraph.strip()):
            escaped = html.escape(text, quote=False)
            runs.append(f'<a href="{html.escape(url)}">{escaped}</a>' if url else escaped)
        fragment = "".join(runs).strip()
        if fragment:
            out.append(Markup(sanitize(fragment)))  # nh3, as the content: belt and braces
    return out


def summary_html(summary: str) -> str:
    """The summary as HTML paragraphs (a feed's ``summary type="html"``)."""
    return "\n".join(f"<p>{p}</p>" for p in summary_html_paragraphs(summary))
