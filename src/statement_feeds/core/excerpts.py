"""Excerpts: the first N words of a statement, whole words, paragraphs kept.

Rules (DESIGN.md, "summary"): cut only between words, never inside a word, a
URL or a grapheme cluster; Markdown syntax removed; paragraphs separated by a
blank line; " …" appended only when something was cut.
"""

from __future__ import annotations

import re
import unicodedata

from .markup import plain_paragraphs

__all__ = ["ELLIPSIS", "excerpt", "excerpt_text"]

ELLIPSIS = "…"
_SPACE_RUN = re.compile(r"\s+")
# Characters that extend the grapheme cluster before them: a break before one
# of these would split a cluster (e.g. a space followed by a combining accent).
_JOINERS = frozenset({"\u200d", "\u200c", "\u034f"})


def excerpt(markdown: str, max_words: int) -> str:
    """Plain-text excerpt of a Markdown body."""
    return excerpt_text(plain_paragraphs(markdown, enough_words=max_words), max_words)


def excerpt_text(paragraphs: list[str], max_words: int) -> str:
    """Cut plain-text ``paragraphs`` after ``max_words`` words."""
    kept: list[str] = []
    remaining = max_words
    for index, paragraph in enumerate(paragraphs):
        words = _split_words(paragraph)
        if not words:
            continue
        if len(words) > remaining:
            if remaining:
                kept.append(" ".join(words[:remaining]) + " " + ELLIPSIS)
            elif kept:
                kept[-1] += " " + ELLIPSIS
            return "\n\n".join(kept)
        kept.append(" ".join(words))
        remaining -= len(words)
        if remaining == 0 and _has_words(paragraphs[index + 1 :]):
            kept[-1] += " " + ELLIPSIS
            return "\n\n".join(kept)
    return "\n\n".join(kept)


def _has_words(paragraphs: list[str]) -> bool:
    return any(_split_words(p) for p in paragraphs)


def _split_words(text: str) -> list[str]:
    """Split at runs of white space that are real grapheme-cluster boundaries."""
    words: list[str] = []
    start = 0
    for match in _SPACE_RUN.finditer(text):
        after = text[match.end() : match.end() + 1]
        if after and _extends_cluster(after):
            continue  # the white space belongs to the next cluster: not a break
        if match.start() > start:
            words.append(text[start : match.start()])
        start = match.end()
    if start < len(text):
        words.append(text[start:])
    return [w for w in (word.strip() for word in words) if w] if words else []


def _extends_cluster(char: str) -> bool:
    """Grapheme_Cluster_Break Extend, ZWJ or SpacingMark (UAX 29, GB9, GB9a): marks,
    joiners, emoji skin-tone modifiers and emoji tag characters (subdivision flags)."""
    return (
        char in _JOINERS
        or unicodedata.category(char) in ("Mn", "Mc", "Me")
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or "\U000e0020" <= char <= "\U000e007f"
    )
