"""BCP 47 tags: which are accepted, their canonical case, and file-name suffixes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statement_feeds.domain.langtags import canonical_tag, is_language_suffix


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("en", "en"),
        ("RU", "ru"),
        ("pt-br", "pt-BR"),
        ("pt_BR", "pt-BR"),
        (" en ", "en"),
        ("zh-hant", "zh-Hant"),
        ("ZH-HANT-TW", "zh-Hant-TW"),
        ("sr-latn-rs", "sr-Latn-RS"),
        ("zh-yue-hant", "zh-yue-Hant"),
        ("es-419", "es-419"),
        ("de-ch-1996", "de-CH-1996"),
        ("ast", "ast"),
        # after a singleton everything stays lower case, even region-like subtags
        ("en-a-bb-cc", "en-a-bb-cc"),
        ("en-x-ab-cd", "en-x-ab-cd"),
        ("X-AB", "x-ab"),
        ("en-latn-us-valencia-u-ca-gregory", "en-Latn-US-valencia-u-ca-gregory"),
    ],
)
def test_canonical_case(written: str, canonical: str) -> None:
    assert canonical_tag(written) == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "e",
        "english",  # well-formed 5-8 letters, but no such language is registered
        "russian",
        "engl",  # 4-letter primary subtags are reserved
        "en-",
        "-en",
        "en--us",
        "en us",
        "en-us-",
        "i-klingon",
        "12",
        "en-a",  # a singleton needs a subtag after it
        "en-x",
        "en-toolongvariant",
        "[en]",
    ],
)
def test_malformed_or_never_valid_tags_are_refused(bad: str) -> None:
    assert canonical_tag(bad) is None


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        ("ru", True),
        ("pt-BR", True),
        ("pt-br", True),
        ("zh-hant", True),
        ("final", False),  # "report.final.md" is not in language "final"
        ("v2", False),
        ("2020", False),
        ("draft", False),
        ("", False),
    ],
)
def test_file_name_suffixes(suffix: str, expected: bool) -> None:
    assert is_language_suffix(suffix) is expected


@given(st.text(max_size=40))
def test_canonical_tag_is_idempotent_and_never_crashes(text: str) -> None:
    tag = canonical_tag(text)
    if tag is not None:
        assert canonical_tag(tag) == tag
        assert tag.lower() == text.strip().lower().replace("_", "-")
