"""Markdown to sanitised HTML, and Markdown to plain-text paragraphs.

CommonMark is rendered by cmark-gfm (C, via ``cmarkgfm``) because it is about 30x
faster than a pure-Python renderer, and rendering dominates a cold build
(see ``bench/``). Raw HTML is allowed through the renderer and then sanitised
(``sanitizing``): no script, no event handlers, no ``javascript:`` URLs.
"""

from __future__ import annotations

import ctypes
import html as html_module
import re
from collections.abc import Callable

from cmarkgfm import _cmark
from cmarkgfm.cmark import Options

from .excerpt_links import CLOSE, MID, OPEN, link_url, strip_markers
from .sanitizing import sanitize_rendered

__all__ = [
    "html_paragraphs",
    "html_words",
    "plain_paragraphs",
    "render_html",
    "render_raw",
]

_CMARK = _cmark.lib
_FFI = _cmark.ffi
_free = ctypes.CDLL(None).free
_free.argtypes = [ctypes.c_void_p]
_free.restype = None

# No "smart punctuation": the texts are published exactly as written.
_RENDER_OPTIONS = Options.CMARK_OPT_UNSAFE


def render_html(markdown: str) -> str:
    """Render CommonMark ``markdown`` to sanitised HTML."""
    return sanitize_rendered(markdown, render_raw(markdown))


_BLOCKS = frozenset(
    {"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "tr", "dd", "dt", "div"}
)
_SKIP = frozenset({"script", "style"})
# One pass over rendered HTML: comments, tags (group 1 "/" for an end tag, 2 the name,
# 3 the attributes) and runs of text. A regex tokenizer rather than html.parser, which
# made excerpt extraction the slowest step of a cold build; the input is cmark's
# regular output plus whatever raw HTML an author wrote, and a tag this misreads only
# costs a few stray characters in an excerpt, never the rendered content.
_TOKENS = re.compile(r"<!--.*?(?:-->|\Z)|<(/?)([a-zA-Z][a-zA-Z0-9]*)([^>]*)>|([^<]+|<)", re.DOTALL)
_START = re.compile(r"""\bstart\s*=\s*["']?(\d+)""")
_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)


def _split_count(text: str) -> int:
    return len(text.split())


class _TextCollector:
    """Collect the visible text of rendered HTML, one string per block element; with a
    ``split``, also each block's words (``split`` counts them for ``enough_words``)."""

    def __init__(
        self,
        enough_words: int | None,
        count: Callable[[str], int],
        split: Callable[[str], list[str]] | None = None,
        *,
        links: bool = False,
    ) -> None:
        self.blocks: list[str] = []
        self.words: list[list[str]] = []
        self._limit = enough_words
        self._count = count
        self._split = split
        self._words = 0
        self._current: list[str] = []
        self._skipping = 0
        self._numbers: list[int | None] = []  # per open list: next item number, None if bulleted
        # "1. " of the open numbered item: goes before the item's first text, which in a
        # loose list ("1. a\n\n2. b") is inside a <p> that starts a block of its own.
        self._prefix = ""
        # Links written into the text (``excerpt_links``): where the open one starts.
        self._links = links
        self._link_at: int | None = None

    def feed(self, html: str) -> None:
        for match in _TOKENS.finditer(html):
            if self._limit is not None and self._words > self._limit:
                return  # enough: the rest of a long body is not needed
            end, tag, attrs, text = match.groups()
            if text is not None:
                if not self._skipping:
                    self._current.append(strip_markers(text) if self._links else text)
            elif tag is not None:
                if end:
                    self._end(tag.lower())
                else:
                    self._start(tag.lower(), attrs)

    def _start(self, tag: str, attrs: str) -> None:
        if tag in _SKIP:
            self._skipping += 1
        elif tag in ("ol", "ul"):
            self._flush()
            start = _START.search(attrs) if tag == "ol" else None
            self._numbers.append(int(start.group(1)) if start else (1 if tag == "ol" else None))
        elif tag == "li":
            self._flush()
            number = self._numbers[-1] if self._numbers else None
            if number is not None:
                self._prefix = f"{number}. "  # keep "1." of a numbered statement
                self._numbers[-1] = number + 1
        elif tag in _BLOCKS:
            self._flush()
        elif tag == "br":
            self._current.append(" ")
        elif tag == "a" and self._links and not self._skipping:
            self._close_link()
            href = _HREF.search(attrs)
            url = (
                link_url(html_module.unescape(next(g for g in href.groups() if g is not None)))
                if href
                else None
            )
            if url is not None:
                # Escaped: _flush unescapes the block's text once.
                self._link_at = len(self._current)
                self._current.append(OPEN + html_module.escape(url, quote=False) + MID)

    def _close_link(self) -> None:
        at, self._link_at = self._link_at, None
        if at is None:
            return
        if "".join(self._current[at + 1 :]).strip():
            self._current.append(CLOSE)
        else:  # no text to carry the link: drop it
            del self._current[at]

    def _end(self, tag: str) -> None:
        if tag == "a":
            self._close_link()
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in ("ol", "ul"):
            self._flush()
            if self._numbers:
                self._numbers.pop()
        elif tag in _BLOCKS:
            self._flush()

    def _flush(self) -> None:
        self._close_link()
        text = " ".join(html_module.unescape("".join(self._current)).split())
        if text:
            block = self._prefix + text
            self.blocks.append(block)
            if self._split is not None:  # split once: the caller needs the words too
                words = self._split(block)
                self.words.append(words)
                self._words += len(words)
            elif self._limit is not None:
                self._words += self._count(text)
            self._prefix = ""
        self._current = []

    def close(self) -> None:
        self._flush()


def render_raw(markdown: str) -> str:
    """CommonMark to HTML, not yet sanitised: for :mod:`.sanitizing` and excerpts.

    Calls cmark directly rather than ``cmarkgfm.markdown_to_html``, which never frees
    the string cmark returns: ~3 KB lost per call, so a daemon's memory grew with
    every build (bench/README.md, daemon churn). cmark allocates it with the C
    library's malloc, so the C library's free releases it.

    cmark writes the noncharacters U+FFFE and U+FFFF (``&#xFFFE;`` in a statement) as
    the single bytes 0xFE and 0xFF, which are not UTF-8: they are read as U+FFFD, the
    replacement character, instead of failing the statement (or the build).
    """
    encoded = markdown.encode("utf-8")
    raw = _CMARK.cmark_markdown_to_html(encoded, len(encoded), _RENDER_OPTIONS)
    try:
        return str(_FFI.string(raw).decode("utf-8", "replace"))
    finally:
        _free(int(_FFI.cast("uintptr_t", raw)))


WordCount = Callable[[str], int]


def plain_paragraphs(
    markdown: str, enough_words: int | None = None, count: WordCount = _split_count
) -> list[str]:
    """The visible text of ``markdown``, one string per paragraph, syntax removed."""
    return html_paragraphs(render_raw(markdown), enough_words, count)


def html_words(
    html: str, enough_words: int | None, split: Callable[[str], list[str]]
) -> list[list[str]]:
    """The words of each block of rendered HTML, as ``split`` splits the block's text
    (reading stops as in :func:`html_paragraphs`, counting words by ``split``)."""
    collector = _TextCollector(enough_words, _split_count, split, links=True)
    collector.feed(html)
    collector.close()
    return collector.words


def html_paragraphs(
    html: str, enough_words: int | None = None, count: WordCount = _split_count
) -> list[str]:
    """The visible text of rendered HTML, one string per block element.

    With ``enough_words``, reading stops at the first block boundary after more than
    that many words (as ``count`` counts them): an excerpt needs the start of a long
    body and to know whether anything follows, not all of it.
    """
    collector = _TextCollector(enough_words, count)
    collector.feed(html)
    collector.close()
    return collector.blocks
