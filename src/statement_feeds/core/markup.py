"""Markdown to sanitised HTML, and Markdown to plain-text paragraphs.

CommonMark is rendered by cmark-gfm (C, via ``cmarkgfm``) because it is about 30x
faster than a pure-Python renderer, and rendering dominates a cold build
(see ``bench/``). Raw HTML is allowed through the renderer and then sanitised by
nh3 (ammonia): no script, no event handlers, no ``javascript:`` URLs.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import cmarkgfm
import nh3
from cmarkgfm.cmark import Options

__all__ = ["plain_paragraphs", "render_html"]

# No "smart punctuation": the texts are published exactly as written.
_RENDER_OPTIONS = Options.CMARK_OPT_UNSAFE
# Allowed on top of nh3's defaults: nothing. Its defaults already drop scripts,
# styles, event handler attributes and non-http(s)/mailto URL schemes.


def render_html(markdown: str) -> str:
    """Render CommonMark ``markdown`` to sanitised HTML."""
    html = cmarkgfm.markdown_to_html(markdown, options=_RENDER_OPTIONS)
    return nh3.clean(html).strip()


_BLOCKS = frozenset(
    {"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "tr", "dd", "dt", "div"}
)
_SKIP = frozenset({"script", "style"})


class _TextCollector(HTMLParser):
    """Collect the visible text of rendered HTML, one string per block element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._skipping = 0
        self._numbers: list[int | None] = []  # per open list: next item number, None if bulleted
        # "1. " of the open numbered item: goes before the item's first text, which in a
        # loose list ("1. a\n\n2. b") is inside a <p> that starts a block of its own.
        self._prefix = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skipping += 1
        elif tag in ("ol", "ul"):
            self._flush()
            start = dict(attrs).get("start") or "1"
            self._numbers.append(int(start) if tag == "ol" and start.isdigit() else None)
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

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in ("ol", "ul"):
            self._flush()
            if self._numbers:
                self._numbers.pop()
        elif tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._current.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._current).split())
        if text:
            self.blocks.append(self._prefix + text)
            self._prefix = ""
        self._current = []

    def close(self) -> None:
        super().close()
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
    for block in blocks:
        taken.append(block)
        words += len(block.split())
        if words > margin:
            break
    if len(taken) == len(blocks):
        return markdown
    references = _REFERENCE_DEFINITION.findall(markdown)
    return "\n\n".join([*taken, *references])
