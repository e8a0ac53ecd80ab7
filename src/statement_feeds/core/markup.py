"""Markdown to sanitised HTML, and Markdown to plain-text paragraphs.

CommonMark is rendered by cmark-gfm (C, via ``cmarkgfm``) because it is about 30x
faster than a pure-Python renderer, and rendering dominates a cold build
(see ``bench/``). Raw HTML is allowed through the renderer and then sanitised by
nh3 (ammonia): no script, no event handlers, no ``javascript:`` URLs.
"""

from __future__ import annotations

import html as html_module
import re

import cmarkgfm
import nh3
from cmarkgfm.cmark import Options

__all__ = ["plain_paragraphs", "render_html"]

# No "smart punctuation": the texts are published exactly as written.
_RENDER_OPTIONS = Options.CMARK_OPT_UNSAFE
# nh3's defaults drop scripts, styles and event handler attributes; links may only
# use these schemes (its default list also allows ftp, tel, ssh, magnet and more).
_URL_SCHEMES = {"http", "https", "mailto"}


def render_html(markdown: str) -> str:
    """Render CommonMark ``markdown`` to sanitised HTML."""
    html = cmarkgfm.markdown_to_html(markdown, options=_RENDER_OPTIONS)
    return nh3.clean(html, url_schemes=_URL_SCHEMES).strip()


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


class _TextCollector:
    """Collect the visible text of rendered HTML, one string per block element."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._skipping = 0
        self._numbers: list[int | None] = []  # per open list: next item number, None if bulleted
        # "1. " of the open numbered item: goes before the item's first text, which in a
        # loose list ("1. a\n\n2. b") is inside a <p> that starts a block of its own.
        self._prefix = ""

    def feed(self, html: str) -> None:
        for match in _TOKENS.finditer(html):
            end, tag, attrs, text = match.groups()
            if text is not None:
                if not self._skipping:
                    self._current.append(text)
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

    def _end(self, tag: str) -> None:
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in ("ol", "ul"):
            self._flush()
            if self._numbers:
                self._numbers.pop()
        elif tag in _BLOCKS:
            self._flush()

    def _flush(self) -> None:
        text = " ".join(html_module.unescape("".join(self._current)).split())
        if text:
            self.blocks.append(self._prefix + text)
            self._prefix = ""
        self._current = []

    def close(self) -> None:
        self._flush()


_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*\S+.*$", re.MULTILINE)


def plain_paragraphs(markdown: str, enough_words: int | None = None) -> list[str]:
    """The visible text of ``markdown``, one string per paragraph, syntax removed.

    With ``enough_words``, only the leading blocks that hold at least that many
    words (plus a margin) are rendered: excerpts need the start of a long body,
    not all of it. Link reference definitions anywhere in the body are kept so
    that ``[text][ref]`` in the leading blocks still renders as a link.
    """
    if enough_words is not None:
        leading = _leading_blocks(markdown, enough_words)
        if leading != markdown:
            blocks = _plain(leading)
            # The cut may have damaged the last block (an unclosed code fence), and
            # syntax-only blocks ("- - -", link titles) may have rendered to few words:
            # trust the short render only if the undamaged blocks hold enough words.
            if sum(len(block.split()) for block in blocks[:-1]) > enough_words:
                return blocks
    return _plain(markdown)


def _plain(markdown: str) -> list[str]:
    html = cmarkgfm.markdown_to_html(markdown, options=_RENDER_OPTIONS)
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    return collector.blocks


def _leading_blocks(markdown: str, enough_words: int) -> str:
    blocks = re.split(r"\n[ \t]*\n", markdown)
    taken: list[str] = []
    words = 0
    margin = enough_words + 32  # syntax-only tokens ("-", "##") count as words here
    for index, block in enumerate(blocks):
        taken.append(block)
        words += len(block.split())
        if words > margin:
            # One block more: the caller distrusts the last block (it may be damaged by
            # the cut), so the complete ones before it must already hold enough words.
            taken.extend(blocks[index + 1 : index + 2])
            break
    if len(taken) == len(blocks):
        return markdown
    references = _REFERENCE_DEFINITION.findall(markdown)
    return "\n\n".join([*taken, *references])
