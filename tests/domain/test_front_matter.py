"""The front-matter fast path reads exactly what the YAML loader reads, or steps aside.

``simple_front_matter`` answers for headers made only of "key: text" lines and
returns None for anything else; ``load_yaml`` is the YAML loader. Wherever the fast
path answers, both must agree on every value and every line number.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from statement_feeds.domain.front_matter import (
    KNOWN_KEYS,
    load_yaml,
    simple_front_matter,
    split_front_matter,
)

EXAMPLES = Path(__file__).parents[2] / "examples"

# Characters with a meaning somewhere in YAML (alone and before a space)...
_SIGNIFICANT = [*": #-?,[]{}&*!|>'\"%@`\\.+~=<", ": ", " #", "- ", "? ", " :", "  "]
# ...and line breaks YAML 1.1 knows besides "\n", characters its reader refuses, tabs.
_ODD = ["\xa0", "\x85", "\u2028", "\u2029", "\ufeff", "\x7f", "\x01", "\x9f", "\ufffe", "\t"]
_WORDS = ["a", "Zed", "ü", "Беларусь", "😀", "2020-08-26", "2020-08-26T09:30:00+01:00"]
# Words YAML reads as something other than a string when they are the whole value.
_TYPED = ["true", "yes", "No", "off", "null", "~", "12", "-1", "1.5", ".inf", ".NaN", "0x1F"]
_TYPED += ["0o7", "1_000", "=", "<<"]
_WORD = st.one_of(st.sampled_from(_WORDS), st.sampled_from(_WORDS), st.sampled_from(_TYPED))
# Mostly words between single spaces, so that whole headers often take the fast path,
# with a tricky character or two often enough that the edges of what it takes are tried.
_WORD_RUN = st.lists(_WORD, min_size=1, max_size=3).map(" ".join)
_ONE = st.one_of(st.sampled_from(_SIGNIFICANT), st.sampled_from(_ODD))
_TEXT = st.one_of(
    _WORD_RUN,
    st.tuples(_WORD_RUN, _ONE, _WORD_RUN).map("".join),  # inside
    st.tuples(_ONE, _WORD_RUN).map("".join),  # first
    st.tuples(_WORD_RUN, _ONE).map("".join),  # last
    st.lists(st.one_of(_WORD_RUN, _ONE), max_size=5).map("".join),
)
_VALUE = st.one_of(
    _TEXT,
    _TEXT,
    _TEXT.map(lambda t: f'"{t}"'),
    _TEXT.map(lambda t: f"'{t}'"),
)
# Lists repeat what should come up most (sampled_from picks each element alike).
_KEY = st.sampled_from([*sorted(KNOWN_KEYS) * 3, "Title", "tags", "y", "true", "null"])
_SEPARATOR = st.sampled_from([*[": "] * 8, ":  ", ":", " : ", ":\t", ": \t"])
_TRAILER = st.sampled_from([*[""] * 8, " ", "  ", " # note", "#x", "\t", " \xa0"])
_KEY_LINE = st.tuples(_KEY, _SEPARATOR, _VALUE, _TRAILER).map("".join)
_LINE = st.one_of(
    *[_KEY_LINE] * 8,
    st.sampled_from(["", " ", "# comment", "  title: indented", "- item", "---", "..."]),
    st.text(max_size=20),
)


def _header(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def _yaml(header: str) -> object:
    try:
        return load_yaml("s.md", header)
    except Exception as exc:  # what YAML refuses, the fast path must not read
        return exc


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINE, min_size=1, max_size=3))
@example(['title: "Belarus: the struggle"', "date: 2020-08-26"])
@example(["title: It's fine", "date: 2020-08-26T09:30:00+01:00", "title: again"])
@example(["title: a  b  ", "author: A. N. Other"])
def test_fast_path_reads_what_yaml_reads(lines: list[str]) -> None:
    header = _header(lines)
    fast = simple_front_matter(header)
    if fast is not None:
        assert fast == _yaml(header), header


# Every string of up to three of these after "title:" and after "title: ": the
# boundaries of what the fast path takes (first character, ": ", " #", trailing
# space, quotes) are all within three characters.
_SMALL = [*" :#-?,[]{}&*!|>'\"%@`\\=~.a1\t", "\xa0", "\u2028", "\x85", "\ufeff"]


@pytest.mark.parametrize("start", ["title:", "title: "])
def test_fast_path_reads_what_yaml_reads_for_every_short_value(start: str) -> None:
    taken = 0
    for size in range(4):
        for chars in itertools.product(_SMALL, repeat=size):
            header = f"{start}{''.join(chars)}\n"
            fast = simple_front_matter(header)
            if fast is not None:
                taken += 1
                assert fast == _yaml(header), header
    assert taken > 100  # the fast path was tried, not stepped around


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ('title: "Belarus: the struggle"', "Belarus: the struggle"),
        ("title: 'a # b'", "a # b"),
        ('title: It\'s a "quote"', 'It\'s a "quote"'),
        ("title: a:b", "a:b"),
        ("date: 2020-08-26T09:30:00+01:00", "2020-08-26T09:30:00+01:00"),
        ("date: 2020-08-26", "2020-08-26"),
        ("title:   spaced   out   ", "spaced   out"),
        ('title: ""', ""),
    ],
)
def test_fast_path_reads_ordinary_lines(line: str, value: str) -> None:
    key = line.split(":", 1)[0]
    assert simple_front_matter(f"{line}\n") == ({key: value}, {key: 2})
    assert load_yaml("s.md", f"{line}\n") == ({key: value}, {key: 2})


@pytest.mark.parametrize(
    "line",
    [
        "draft: true",  # a boolean
        "title: yes",  # YAML 1.1 boolean
        "title: 12",  # an integer
        "title: ~",  # null
        "title:",  # empty: null
        "title: a #b",  # a comment
        "title: a: b",  # a nested mapping (an error)
        "title: - a",  # not a list here, but left to YAML
        "title: 'it''s'",  # an escaped quote
        'title: "a\\tb"',  # a double-quoted escape
        "title: |",  # a block scalar
        "title: [a, b]",  # a flow sequence
        "title: &a x",  # an anchor
        "tags: a",  # an unknown key: YAML reads it, the checker reports it
        "  title: a",  # indented
        "title:\ta",  # a tab
        "title: a\u2028b",  # a YAML 1.1 line break
        "title: a\x07b",  # a control character YAML refuses
    ],
)
def test_fast_path_leaves_everything_else_to_yaml(line: str) -> None:
    assert simple_front_matter(f"{line}\n") is None


def test_blank_lines_and_empty_headers_go_to_yaml() -> None:
    assert simple_front_matter("title: a\n\ndate: 2020-08-26\n") is None
    assert simple_front_matter("") is None


def test_the_example_site_takes_the_fast_path() -> None:
    """The fast path is what ordinary statements use (else it would save nothing)."""
    files = sorted((EXAMPLES / "site" / "statements").rglob("*.md"))
    assert files
    for path in files:
        if "demo" in path.parts:
            continue
        header, _ = split_front_matter(path.name, path.read_text("utf-8").replace("\r\n", "\n"))
        fast = simple_front_matter(header)
        assert fast is not None, path
        assert fast == load_yaml(path.name, header)
