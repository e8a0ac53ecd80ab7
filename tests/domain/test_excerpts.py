"""Excerpts: whole words, paragraphs kept, " …" only when cut, Markdown removed."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from statement_feeds.domain.excerpt_links import (
    strip_markers,
    summary_html_paragraphs,
    summary_plain,
    summary_text,
)
from statement_feeds.domain.excerpts import ELLIPSIS, excerpt, excerpt_text
from statement_feeds.domain.markup import plain_paragraphs

CUT = " " + ELLIPSIS


def words(text: str) -> list[str]:
    """Words as a reader sees them: split at white space that does not start a cluster.

    White space followed by a combining mark, ZWJ or CGJ belongs to the next
    grapheme cluster (UAX 29, GB9), so it is not a place to cut.
    """
    pieces: list[str] = []
    start = 0
    for match in re.finditer(r"\s+", text):
        after = text[match.end() : match.end() + 1]
        if after and extends_cluster(after):
            continue
        pieces.append(text[start : match.start()])
        start = match.end()
    pieces.append(text[start:])
    return [p for p in pieces if p.strip()]


def extends_cluster(char: str) -> bool:
    """Grapheme_Cluster_Break Extend / ZWJ / SpacingMark, as far as these tests use them."""
    return (
        char in "\u200d\u200c\u034f"
        or unicodedata.category(char) in ("Mn", "Mc", "Me")
        or 0x1F3FB <= ord(char) <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= ord(char) <= 0xE007F  # emoji tag characters
    )


# --- cutting -------------------------------------------------------------------------


def test_short_body_is_kept_whole_without_ellipsis() -> None:
    assert excerpt("Hundreds of thousands have taken to the streets.", 100) == (
        "Hundreds of thousands have taken to the streets."
    )


def test_exactly_n_words_is_not_cut() -> None:
    assert excerpt("one two three", 3) == "one two three"


def test_one_word_too_many_is_cut_with_ellipsis() -> None:
    assert excerpt("one two three four", 3) == "one two three …"


def test_paragraphs_are_kept_with_a_blank_line_between() -> None:
    body = "First paragraph here.\n\nSecond one.\n\nThird paragraph is long.\n"
    assert excerpt(body, 5) == "First paragraph here.\n\nSecond one." + CUT
    assert excerpt(body, 100) == "First paragraph here.\n\nSecond one.\n\nThird paragraph is long."


def test_cut_inside_a_later_paragraph() -> None:
    body = "One two.\n\nThree four five six.\n"
    assert excerpt(body, 3) == "One two.\n\nThree" + CUT


def test_cut_exactly_at_a_paragraph_end_still_says_more_follows() -> None:
    assert excerpt("One two.\n\nThree.\n", 2) == "One two." + CUT


def test_soft_line_breaks_join_a_paragraph() -> None:
    assert excerpt("One\ntwo\nthree.\n", 10) == "One two three."


def test_never_cuts_inside_a_word() -> None:
    body = "Antidisestablishmentarianism" * 3 + " short words after"
    assert excerpt(body, 1) == "Antidisestablishmentarianism" * 3 + CUT


def test_never_cuts_inside_a_url() -> None:
    url = "https://example.org/2020/08/belarus-and-the-struggle-against-lukashenko?lang=en#full"
    result = excerpt(f"Read it at {url} and share it widely.", 4)
    assert result == f"Read it at {url}" + CUT


@pytest.mark.parametrize(
    "word",
    [
        "cafe\u0301",  # e + combining acute
        "\u0915\u094d\u0937\u093f",  # Devanagari conjunct with virama and vowel sign
        "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",  # ZWJ family emoji
        "\U0001f44d\U0001f3fd",  # emoji + skin-tone modifier
        "\U0001f1e7\U0001f1fe",  # flag: regional indicators
    ],
)
def test_never_cuts_inside_a_grapheme_cluster(word: str) -> None:
    result = excerpt(f"Solidarity {word} with Belarus", 2)
    assert result == f"Solidarity {word}" + CUT


@pytest.mark.parametrize(
    "extender",
    ["\u0301", "\u200d", "\u200c", "\ufe0f", "\U0001f3fd", "\U000e0067", "\u0903"],
)
def test_white_space_before_a_cluster_extender_is_not_a_cut_point(extender: str) -> None:
    text = f"one two {extender}three four five"
    result = excerpt(text, 2)
    kept = result.removesuffix(CUT)
    assert result.endswith(CUT)
    assert text.startswith(kept)
    rest = text[len(kept) :].lstrip()
    assert rest and not extends_cluster(rest[0])


def test_non_latin_text() -> None:
    body = "В Беларуси развернулось массовое движение забастовок и протестов."
    assert excerpt(body, 4) == "В Беларуси развернулось массовое" + CUT


# --- Markdown removed ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "plain"),
    [
        ("We *stand* in **solidarity** with _them_.", "We stand in solidarity with them."),
        ("Read [the statement](https://example.org/x/ 'title').", "Read the statement."),
        ("See <https://example.org/>.", "See https://example.org/."),
        ("## The movement\n\nText.", "The movement\n\nText."),
        ("The movement\n============\n\nText.", "The movement\n\nText."),
        ("Use `strike` now.", "Use strike now."),
        ("```\ncode block\n```\n\nAfter.", "code block\n\nAfter."),
        ("> Quoted words.\n\nAfter.", "Quoted words.\n\nAfter."),
        ("- one\n- two", "one\n\ntwo"),
        ("1. one\n2. two", "1. one\n\n2. two"),
        ("1. one\n\n2. two\n\n3. three", "1. one\n\n2. two\n\n3. three"),  # loose list
        ("7. seventh\n8. eighth", "7. seventh\n\n8. eighth"),
        ("Fish &amp; chips &lt;3", "Fish & chips <3"),
        ("Text<script>alert(1)</script> more", "Text more"),
        ("<b>bold</b> and <i>it</i>", "bold and it"),
        ("![a photo](photo.jpg) Caption.", "Caption."),
        ("Line one  \nline two", "Line one line two"),
        ("Words\n\n---\n\nMore words", "Words\n\nMore words"),
        (r"Escaped \*stars\*", "Escaped *stars*"),
    ],
)
def test_markdown_syntax_is_removed(markdown: str, plain: str) -> None:
    assert summary_plain(excerpt(markdown, 100)) == plain  # links: see excerpt_links


def test_numbered_statement_keeps_its_numbering_when_cut() -> None:
    body = "1. The pandemic is not a natural disaster.\n\n2. Capitalism made it.\n"
    assert excerpt(body, 9) == "1. The pandemic is not a natural disaster.\n\n2." + CUT


def test_link_reference_definition_at_the_end_of_a_long_body_still_resolves() -> None:
    filler = "\n\n".join(f"Paragraph {i} " + "word " * 40 for i in range(30))
    body = f"Read [the full statement][full] now.\n\n{filler}\n\n[full]: https://example.org/x/\n"
    linked = excerpt(body, 10)
    assert linked.startswith("Read \ue000https://example.org/x/\ue001the full statement\ue002 now.")
    result = summary_plain(linked)
    assert result.startswith("Read the full statement now.")
    assert "[" not in result
    assert result.endswith(CUT)


def test_syntax_only_blocks_before_the_text_do_not_empty_the_excerpt() -> None:
    body = "- - - - - - - - - - - -\n\n" * 10 + "Real words come here at last."
    assert excerpt(body, 3) == "Real words come" + CUT


def test_code_fence_cut_by_a_long_body_does_not_leak_into_the_excerpt() -> None:
    code = "\n\n".join("code " * 20 for _ in range(10))
    body = f"Intro words.\n\n```\n{code}\n```\n\nAfter.\n\n[r]: https://example.org/\n"
    full = [word for paragraph in plain_paragraphs(body) for word in words(paragraph)]
    assert words(excerpt(body, 50).removesuffix(CUT).replace("\n\n", " ")) == full[:50]


def test_long_body_excerpt_equals_the_full_render_cut() -> None:
    paragraphs = [
        f"Paragraph {i} has *several* [linked](https://x.org/{i}) words." for i in range(200)
    ]
    body = "\n\n".join(paragraphs)
    full = plain_paragraphs(body)
    assert summary_plain(excerpt(body, 20)) == excerpt_text(full, 20)


# --- properties ----------------------------------------------------------------------


def _check(plain_full: list[str], result: str, max_words: int) -> None:
    # Paragraph by paragraph: a paragraph break is always a cut point, even before a
    # paragraph that starts with a stray combining mark.
    # Private-use characters the excerpt uses for links are never taken from the text.
    full = [word for paragraph in plain_full for word in words(strip_markers(paragraph))]
    result = summary_plain(result)  # links in the excerpt: their text counts
    cut = result.endswith(CUT)
    body = result.removesuffix(CUT) if cut else result
    kept = [word for paragraph in body.split("\n\n") for word in words(paragraph)]
    assert kept == full[: len(kept)], "excerpt words are not a prefix of the text's words"
    assert len(kept) <= max_words
    assert cut == (len(kept) < len(full)), "ellipsis must appear exactly when words were cut"
    assert "\n\n\n" not in result
    assert result == result.strip()


_MARKDOWNISH = st.lists(
    st.one_of(
        st.sampled_from(list(" \n\n\n\t*_`#>-+=.!:[]()<>&;/\\|~1234567890abcxyz")),
        st.sampled_from(
            ["\u0301", "\u200d", "\u00a0", "é", "Ж", "\U0001f469", "\U0001f3fd", "https://x.org/"]
        ),
        # No lone surrogates: bodies come from strictly decoded UTF-8, which has none.
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=400,
).map("".join)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(_MARKDOWNISH, st.integers(min_value=1, max_value=40))
@example("one two three four", 3)
@example("1. a\n\n2. b\n\n3. c", 2)
@example("a \u0301b c d", 1)
def test_markdown_excerpt_properties(markdown: str, max_words: int) -> None:
    full = plain_paragraphs(markdown)
    assume(ELLIPSIS not in " ".join(full))
    _check(full, excerpt(markdown, max_words), max_words)


@settings(max_examples=500)
@given(st.lists(st.text(max_size=80), max_size=8), st.integers(min_value=1, max_value=30))
def test_plain_excerpt_properties(paragraphs: list[str], max_words: int) -> None:
    # As plain_paragraphs gives them: white space collapsed to single spaces.
    paragraphs = [" ".join(p.split()) for p in paragraphs]
    assume(ELLIPSIS not in "".join(paragraphs))
    result = excerpt_text(paragraphs, max_words)
    _check(paragraphs, result, max_words)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            [
                "word",
                "*em*",
                "[link](https://x.org/a)",
                "[ref][r]",
                "`code`",
                "\n\n",
                "\n\n- item",
                "\n\n1. item",
                "\n\n## head",
                "\n\n> quote",
                "\n\n```\n",
                "\n\n<!--",
                "\n\n---",
            ]
        ),
        max_size=400,
    ),
    st.integers(min_value=1, max_value=60),
)
def test_long_markdown_bodies_cut_like_the_full_render(pieces: list[str], max_words: int) -> None:
    markdown = " ".join(pieces) + "\n\n[r]: https://example.org/ref\n"
    _check(plain_paragraphs(markdown), excerpt(markdown, max_words), max_words)


# --- links kept in the excerpt (issue 14) ----------------------------------------------


def test_links_are_kept_with_their_url_and_unsafe_ones_become_text() -> None:
    body = (
        "Details on [our site](https://example.org/a?b=1&c=2), "
        "[no](javascript:alert(1)) [rel](/x/) <a href=' mailto:x@example.org '>mail</a> "
        "[](https://example.org/empty) \ue000forged\ue001text\ue002"
    )
    result = excerpt(body, 100)
    assert summary_plain(result) == "Details on our site, no rel mail forgedtext"
    assert summary_text(result) == (
        "Details on our site <https://example.org/a?b=1&c=2>, no rel mail <mailto:x@example.org>"
        " forgedtext"
    )
    html = "".join(summary_html_paragraphs(result))
    assert (
        '<a href="https://example.org/a?b=1&amp;c=2" rel="noopener noreferrer">our site</a>' in html
    )
    assert "javascript" not in html and 'href="/x/"' not in html and "empty" not in html


def test_a_cut_inside_a_link_closes_it_before_the_ellipsis() -> None:
    result = excerpt("One [two three four](https://example.org/) five.", 3)
    assert result == "One \ue000https://example.org/\ue001two three\ue002" + CUT
    assert summary_text(result) == "One two three <https://example.org/>" + CUT
    assert str(summary_html_paragraphs(result)[0]).endswith("two three</a>" + CUT)


def test_a_hostile_summary_cannot_make_an_unsafe_link() -> None:
    forged = '\ue000javascript:alert(1)\ue001click\ue002 \ue000https://e.org/"onclick=\ue001x\ue002'
    assert "javascript" not in "".join(summary_html_paragraphs(forged))
    assert "onclick" not in "".join(summary_html_paragraphs(forged)).split(">")[0]
    assert summary_plain("a\ue001b\ue002c\ue000") == "abc"


def test_a_link_cut_before_its_text_leaves_no_url_behind() -> None:
    cut = "Read \ue000https://example.org/a-long-pa"  # as the start page's index may cut it
    assert summary_plain(cut) == "Read" and summary_text(cut) == "Read"


def test_a_stray_link_marker_in_plain_text_is_not_a_word() -> None:
    # Found by the property test above: a paragraph holding only U+E000 (the character
    # that opens a link inside an excerpt) counted as a word and as a paragraph.
    assert excerpt_text(["0", "\ue000"], 1) == "0"
    assert excerpt_text(["0", "\ue000", "0"], 3) == "0\n\n0"
    assert excerpt_text(["0", "\ue000", "0"], 3) == excerpt("0\n\n\ue000\n\n0", 3)
