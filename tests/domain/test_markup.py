"""CommonMark rendering: the same HTML as cmark-gfm's own wrapper, without its leak."""

from __future__ import annotations

import os
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from statement_feeds.domain.markup import render_raw

BODY = ("Some *words*, a [link](https://x.org/) and `code` " * 40 + "\n\n- a\n- b\n\n") * 3


def _rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def test_same_html_as_cmarkgfm() -> None:
    for text in (BODY, "", "# Ж\n\n<b>raw</b> & more", "1. a\n\n2. b"):
        assert render_raw(text) == cmarkgfm.markdown_to_html(text, options=Options.CMARK_OPT_UNSAFE)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc to read RSS")
def test_rendering_does_not_leak_the_returned_string() -> None:
    # cmarkgfm.markdown_to_html loses every result (~the size of the HTML): 3,000
    # renders of this body leaked ~30 MB there. A memory check, not a timing.
    for _ in range(200):
        render_raw(BODY)
    before = _rss_mb()
    for _ in range(3000):
        render_raw(BODY)
    assert _rss_mb() - before < 5


@pytest.mark.parametrize("reference", ["&#xFFFE;", "&#xFFFF;", "&#65534;"])
def test_noncharacter_references_render_as_the_replacement_character(reference: str) -> None:
    # cmark writes U+FFFE and U+FFFF as the bytes 0xFE and 0xFF, which are not UTF-8:
    # decoding them strictly raised, and one such statement stopped the whole build.
    assert render_raw(f"a {reference} b") == "<p>a \ufffd b</p>\n"
