"""Sanitising rendered HTML: nh3 (ammonia), and the same result without it for
HTML that only cmark wrote.

Every entry's content is sanitised: no script, no event handlers, no ``javascript:``
URLs. nh3 parses the HTML (html5ever), drops what is not allowed and serialises the
rest; for a statement it was the largest single cost of a cold build (a quarter of
the parse workers' instructions, more than rendering the Markdown).

A body without a ``<`` has no raw HTML, so everything in its HTML is cmark's own
output: a small, fixed set of tags, attribute values cmark escaped itself, text
escaped the same way. For that HTML :func:`sanitize_rendered` makes, without
parsing, exactly the changes nh3 makes: ``rel="noopener noreferrer"`` on links,
no ``class`` on code, void tags without ``/``, ``"`` and U+00A0 in text written
as nh3 writes them, ``&#x27;`` in URLs as ``'``. It steps aside (returns nh3's
result) at anything else: another tag or attribute, a URL it cannot vouch for
(another scheme, a host the URL parser might refuse), a link inside a link, a carriage
return. The tests compare both on generated Markdown (``tests/domain/test_sanitizing.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import nh3

__all__ = ["sanitize", "sanitize_rendered"]

# nh3's defaults drop scripts, styles and event handler attributes; links may only
# use these schemes (its default list also allows ftp, tel, ssh, magnet and more).
_URL_SCHEMES = {"http", "https", "mailto"}
# Built once: ``nh3.clean(html, url_schemes=...)`` would configure a new cleaner per call.
_CLEANER = nh3.Cleaner(url_schemes=_URL_SCHEMES)


def sanitize(html: str) -> str:
    """Sanitise any HTML (an author's raw HTML included)."""
    return _CLEANER.clean(html).strip()


def sanitize_rendered(markdown: str, html: str) -> str:
    """Sanitise ``html``, cmark's rendering of ``markdown``: the same as :func:`sanitize`."""
    if "<" not in markdown and "\r" not in html:  # no raw HTML; nh3 turns "\r" into "\n"
        clean = _cmark_only(html)
        if clean is not None:
            return clean
    return sanitize(html)


_LINK = re.compile(r'a href="([^"]*)"(?: title="[^"]*")?')
_IMAGE = re.compile(r'img src="([^"]*)" alt="[^"]*"(?: title="[^"]*")? /')
_REL = ' rel="noopener noreferrer"'
# Stands for "&quot;" inside attribute values while "&quot;" in text becomes '"'
# (cmark never writes U+0000: it replaces it with U+FFFD).
_QUOTE = "\x00"


def _cmark_only(html: str) -> str | None:
    """nh3's output for HTML only cmark wrote, or None where it cannot be sure.

    cmark (core CommonMark, no extensions, no raw HTML) writes p, blockquote, ul,
    ol, li, pre, code, h1-h6, hr, br, em, strong, a and img, and attributes only on
    a (href, title), img (src, alt, title), code (class) and ol (start). Tags are
    rewritten by kind, a few per statement (a pass per tag was slower than nh3);
    every other tag is kept as it is, which is right only for well-nested HTML: nh3's
    parser (like a browser's) restructures a link inside a link, which cmark-gfm
    writes for some bracket soup (``[[]()[]]()``), so such HTML goes to nh3. A raw '"'
    is only ever an attribute's quote (cmark writes "&quot;" in text and values), so
    counting them proves that no attribute went unseen.
    """
    quotes = html.count('"')
    seen = 0
    for opener, rewrite in _REWRITES:
        if opener in html:
            done = _rewrite(html, opener, rewrite)
            if done is None:
                return None
            html, attributes = done
            seen += attributes
    if quotes != 2 * seen:
        return None
    # nh3 writes '"' in text as it is, void tags without "/", U+00A0 as "&nbsp;".
    html = html.replace("&quot;", '"').replace(_QUOTE, "&quot;")
    html = html.replace("<br />", "<br>").replace("<hr />", "<hr>")
    return html.replace("\xa0", "&nbsp;").strip()


def _rewrite(
    html: str, opener: str, rewrite: Callable[[str], str | None]
) -> tuple[str, int] | None:
    """``html`` with every tag that starts with ``opener`` rewritten, and how many
    attributes those tags had; None if ``rewrite`` refuses one, a tag has no end, or
    a link opens inside another."""
    first, *parts = html.split(opener)
    out = [first]
    attributes = 0
    for part in parts:
        end = part.find(">")
        if end < 0 or (opener == _LINK_OPENER and "</a>" not in part):
            return None  # no end; or the next link starts inside this one (nested links)
        tag = opener[1:] + part[:end]
        new = rewrite(tag)
        if new is None:
            return None
        out += ("<", new.replace("&quot;", _QUOTE), ">", part[end + 1 :])
        attributes += tag.count('"') // 2
    return "".join(out), attributes


def _link(tag: str) -> str | None:
    link = _LINK.fullmatch(tag)
    return f"{_unquote_url(tag)}{_REL}" if link and _kept(link[1]) else None


def _image(tag: str) -> str | None:
    image = _IMAGE.fullmatch(tag)
    return _unquote_url(tag.removesuffix(" /")) if image and _kept(image[1]) else None


def _code(tag: str) -> str | None:
    return "code" if _CODE_CLASS.fullmatch(tag) else None  # nh3 allows no classes


def _list(tag: str) -> str | None:
    return tag if _LIST_START.fullmatch(tag) else None


_CODE_CLASS = re.compile(r'code class="[^"]*"')
_LIST_START = re.compile(r'ol start="[0-9]+"')
_LINK_OPENER = '<a href="'
_REWRITES: tuple[tuple[str, Callable[[str], str | None]], ...] = (
    (_LINK_OPENER, _link),
    ('<img src="', _image),
    ('<code class="', _code),
    ('<ol start="', _list),
)


def _unquote_url(tag: str) -> str:
    # cmark writes "'" in a URL as "&#x27;" (and nowhere else); nh3 as "'".
    return tag.replace("&#x27;", "'")


_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
# An http(s) URL whose host the WHATWG URL parser (nh3's) surely accepts: ASCII
# letters, digits and single hyphens (so no "xn--" label, whose Punycode it could
# refuse), the last label starting with a letter (so it is not read as an IPv4
# address), no user name and no port; the path, query and fragment can hold anything.
_LABEL = r"[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*"
_WEB_URL = re.compile(
    rf"https?://(?:{_LABEL}\.)*[a-zA-Z](?:-?[a-zA-Z0-9])*(?:[/?#].*)?",
    re.IGNORECASE | re.ASCII,  # ASCII: no "ſ" or "K" (Kelvin) as a letter
)


def _kept(escaped: str) -> bool:
    """True if nh3 surely keeps this URL, as cmark escaped it ("&amp;", "&#x27;", %XX).

    False does not mean nh3 drops it: only that this module leaves it to nh3.
    """
    scheme = _SCHEME.match(escaped)
    if scheme is None:
        return True  # relative: a URL parser without a base refuses it, and nh3 keeps it
    name = scheme[1].lower()
    if name == "mailto":
        return not escaped.startswith("/", 7)  # "mailto://" would need a valid host: nh3 decides
    if name in ("http", "https"):
        return _WEB_URL.fullmatch(escaped) is not None
    return False
