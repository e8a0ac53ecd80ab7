"""Excerpts: the first N words of a statement, whole words, paragraphs kept.

Rules (DESIGN.md, "summary"): cut only between words, never inside a word, a
URL or a grapheme cluster; Markdown syntax removed; paragraphs separated by a
blank line; " …" appended only when something was cut.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable

from .excerpt_links import CLOSE, OPEN, strip_markers
from .markup import html_words, render_raw

__all__ = ["ELLIPSIS", "excerpt", "excerpt_text"]

ELLIPSIS = "…"
# Characters that extend the grapheme cluster before them: a break before one
# of these would split a cluster (e.g. a space followed by a combining accent).
_JOINERS = frozenset({"\u200d", "\u200c", "\u034f"})


def excerpt(markdown: str, max_words: int, render: Callable[[str], str] = render_raw) -> str:
    """Plain-text excerpt of a Markdown body; reads only the start of its rendered HTML.

    ``render`` is :func:`~.markup.render_raw` or a caller's wrapper of it that keeps
    the HTML (a build renders each body once, for the excerpt and the content).
    """
    return _cut(html_words(render(markdown), max_words, _split_words), max_words)


def excerpt_text(paragraphs: list[str], max_words: int) -> str:
    """Cut plain-text ``paragraphs`` after ``max_words`` words.

    The private-use characters that mark links inside an excerpt are never taken from
    the text (as :func:`excerpt` drops them from a body): a stray one is not a word.
    """
    return _cut([_split_words(strip_markers(paragraph)) for paragraph in paragraphs], max_words)


def _cut(paragraphs: list[list[str]], max_words: int) -> str:
    """Join the words of ``paragraphs`` (one list per paragraph) up to ``max_words``.

    Each paragraph is split once, by the caller: splitting was the largest part of
    making an excerpt when it was done to count words and again to cut.
    """
    kept: list[str] = []
    remaining = max_words
    for index, words in enumerate(paragraphs):
        if not words:
            continue
        if len(words) > remaining:
            if remaining:
                kept.append(_closed(" ".join(words[:remaining])) + " " + ELLIPSIS)
            elif kept:
                kept[-1] += " " + ELLIPSIS
            return "\n\n".join(kept)
        kept.append(" ".join(words))
        remaining -= len(words)
        if remaining == 0 and any(paragraphs[index + 1 :]):
            kept[-1] += " " + ELLIPSIS
            return "\n\n".join(kept)
    return "\n\n".join(kept)


def _closed(text: str) -> str:
    """``text`` with a link the cut left open closed before the ellipsis."""
    return text + CLOSE if text.rfind(OPEN) > text.rfind(CLOSE) else text


def _split_words(text: str) -> list[str]:
    """Split at runs of white space that are real grapheme-cluster boundaries.

    ``str.split`` does the scanning in C; a part that starts with a character that
    extends the cluster before it (a combining accent after a space) is glued back
    to the previous word. Such parts are rare, so the distinct first characters are
    checked once (a set, built in C) and the common case returns ``str.split``'s list
    as it is: this function dominated parsing, above all for non-Latin scripts.
    """
    parts = text.split()
    starts = {part[0] for part in parts[1:]}
    if not any(char >= "\u0300" and _extends_cluster(char) for char in starts):
        return parts
    words: list[str] = []
    for part in parts:
        if words and part[0] >= "\u0300" and _extends_cluster(part[0]):
            words[-1] += " " + part  # the white space belongs to the cluster: not a break
        else:
            words.append(part)
    return words


@functools.lru_cache(maxsize=4096)  # scripts above U+0300 (Cyrillic...) ask per word
def _extends_cluster(char: str) -> bool:
    """Grapheme_Cluster_Break Extend, ZWJ or SpacingMark (UAX 29, GB9, GB9a): marks,
    joiners, emoji skin-tone modifiers and emoji tag characters (subdivision flags)."""
    return (
        char in _JOINERS
        or unicodedata.category(char) in ("Mn", "Mc", "Me")
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or "\U000e0020" <= char <= "\U000e007f"
    )
