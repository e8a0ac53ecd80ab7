"""Subscriber CSV parsing: good rows, every kind of bad row with file and line, duplicates."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from statement_feeds.domain.duplicates import Deduplicator, MemorySeenAddresses
from statement_feeds.domain.problems import Problem
from statement_feeds.domain.subscribers import Subscriber, email_problem, parse_subscribers


def parse(text: str, source: str = "list.csv") -> tuple[list[Subscriber], list[Problem]]:
    items = list(parse_subscribers(source, text, "en"))
    return (
        [i for i in items if isinstance(i, Subscriber)],
        [i for i in items if isinstance(i, Problem)],
    )


def test_good_rows_with_defaults_and_language_lists() -> None:
    subscribers, problems = parse(
        "email,name,languages,frequency\n"
        "a@example.org,Ann,ru en,weekly\n"
        "b@example.org,,,\n"
        'c@example.org,"Smith, Carl"," pt_br , en ,ru",DAILY\n'
    )
    assert problems == []
    assert subscribers == [
        Subscriber("a@example.org", "Ann", ("ru", "en"), "weekly"),
        Subscriber("b@example.org", "", ("en",), "daily"),
        Subscriber("c@example.org", "Smith, Carl", ("pt-BR", "en", "ru"), "daily"),
    ]
    assert [s.line for s in subscribers] == [2, 3, 4]


def test_bom_column_order_extra_columns_and_blank_lines() -> None:
    subscribers, problems = parse(
        "\ufeffName,note,EMAIL\r\nAnn,x,a@example.org\r\n\r\n,,b@example.org\r\n"
    )
    assert problems == []
    assert [(s.email, s.name, s.line) for s in subscribers] == [
        ("a@example.org", "Ann", 2),
        ("b@example.org", "", 4),
    ]


def test_bad_rows_are_reported_with_line_and_skipped() -> None:
    subscribers, problems = parse(
        "email,languages,frequency\n"
        "ok@example.org,en,daily\n"
        "not-an-address,en,daily\n"
        "x@example.org,klingon-language-x,daily\n"
        "y@example.org,en,hourly\n"
        "two@@example.org,,\n"
        "z@example.org,ru,\n"
    )
    assert [s.email for s in subscribers] == ["ok@example.org", "z@example.org"]
    assert [(p.source, p.line) for p in problems] == [
        ("list.csv", 3),
        ("list.csv", 4),
        ("list.csv", 5),
        ("list.csv", 6),
    ]
    assert "invalid address" in problems[0].message
    assert "language" in problems[1].message
    assert "frequency" in problems[2].message
    assert all(p.hint for p in problems)


def test_line_numbers_count_physical_lines_of_quoted_fields() -> None:
    subscribers, problems = parse('email,name\na@example.org,"two\nlines"\nbad,x\n')
    assert [s.email for s in subscribers] == []  # a line break in the name is refused
    assert [p.line for p in problems] == [2, 4]


def test_missing_email_column_skips_the_whole_file() -> None:
    subscribers, problems = parse("mail,name\na@example.org,Ann\n")
    assert subscribers == []
    assert len(problems) == 1
    assert problems[0].line == 1
    assert "email" in problems[0].message


def test_empty_file_is_a_problem() -> None:
    assert parse("")[1][0].line == 1


@pytest.mark.parametrize(
    "address",
    [
        "",
        "plain",
        "a@b@example.org",
        "a@example.org\r\nBcc: victim@example.org",
        "a@example.org\nx",
        "a@example.org,b@example.org",
        "Ann <a@example.org>",
        "a b@example.org",
        "a@localhost",
        "a@-bad.org",
        "a..b@example.org",
        ".a@example.org",
        "a@example.org.",
        "a@1.2.3.4",
        '"quoted"@example.org',
        "x" * 65 + "@example.org",
    ],
)
def test_rejected_addresses(address: str) -> None:
    assert email_problem(address) is not None


@pytest.mark.parametrize(
    "address", ["a@example.org", "first.last+tag@sub.example.co.uk", "ann@bücher.de", "O'Neil@x.io"]
)
def test_accepted_addresses(address: str) -> None:
    assert email_problem(address) is None


def test_duplicates_across_files_name_both_places_and_first_wins() -> None:
    dedup = Deduplicator()
    first = list(dedup.filter(parse_subscribers("a.csv", "email\nx@example.org\n", "en")))
    second = list(
        dedup.filter(
            parse_subscribers("b.csv", "email,name\ny@example.org,\nX@Example.ORG,\n", "en")
        )
    )
    assert [type(i) for i in first] == [Subscriber]
    assert isinstance(second[0], Subscriber)
    problem = second[1]
    assert isinstance(problem, Problem)
    assert (problem.source, problem.line) == ("b.csv", 3)
    assert "a.csv:2" in problem.message
    assert len(dedup) == 2


def test_identical_language_lists_share_one_tuple() -> None:
    subscribers, _ = parse("email,languages\na@example.org,ru en\nb@example.org,ru en\n")
    assert subscribers[0].languages is subscribers[1].languages


class CountingSeen:
    """A SeenAddresses that records how it is called (batches, not one call per row)."""

    def __init__(self) -> None:
        self.places: dict[str, int] = {}
        self.calls: list[int] = []

    def first_places(self, entries: Sequence[tuple[str, int]]) -> list[int]:
        self.calls.append(len(entries))
        return [self.places.setdefault(key, place) for key, place in entries]


def test_deduplicator_with_an_injected_store_in_batches_keeps_order_and_first_wins() -> None:
    seen = CountingSeen()
    dedup = Deduplicator(seen, batch=2)
    first = "email,name\na@example.org,A1\nbad\nb@example.org,B1\nA@example.org,A2\n"
    second = "email,name\nc@example.org,C\nB@EXAMPLE.org,B2\nc@example.org,C2\n"
    items = [
        *dedup.filter(parse_subscribers("1.csv", first, "en")),
        *dedup.filter(parse_subscribers("2.csv", second, "en")),
    ]
    described = [
        (i.name, i.line) if isinstance(i, Subscriber) else (i.source, i.line, i.message)
        for i in items
    ]
    assert described == [
        ("A1", 2),
        ("1.csv", 3, described[1][2]),  # the invalid row, in its place
        ("B1", 4),
        ("1.csv", 5, "duplicate address 'A@example.org': already listed at 1.csv:2"),
        ("C", 2),
        ("2.csv", 3, "duplicate address 'B@EXAMPLE.org': already listed at 1.csv:4"),
        ("2.csv", 4, "duplicate address 'c@example.org': already listed at 2.csv:2"),
    ]
    assert seen.calls == [2, 1, 2, 1]  # one call per batch of subscribers
    assert len(dedup) == 3
    assert sorted(seen.places) == ["a@example.org", "b@example.org", "c@example.org"]


def test_memory_store_reports_a_repeat_within_one_batch() -> None:
    seen = MemorySeenAddresses()
    assert seen.first_places([("a", 1), ("b", 2), ("a", 3)]) == [1, 2, 1]
    assert seen.first_places([("b", 4), ("c", 5)]) == [2, 5]


def test_lines_parse_like_the_whole_text() -> None:
    text = '\ufeffemail,name\r\na@example.org,"Smith, Ann"\r\nbad\n\r\nb@example.org,Bob\n'
    from_text = list(parse_subscribers("l.csv", text, "en"))
    from_lines = list(parse_subscribers("l.csv", iter(text.splitlines(keepends=True)), "en"))
    assert from_lines == from_text
    assert [(i.line, i.name) for i in from_lines if isinstance(i, Subscriber)] == [
        (2, "Smith, Ann"),
        (5, "Bob"),
    ]
    assert next(parse_subscribers("empty.csv", iter([]), "en")).line == 1


# Characters str.splitlines treats as line ends but the csv module does not: inside a
# field they are text, never the start of a new row.
SPLITLINES_ONLY = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]


@pytest.mark.parametrize("char", SPLITLINES_ONLY)
def test_a_unicode_line_separator_in_a_field_never_starts_a_row(char: str) -> None:
    text = (
        "email,name,frequency\n"
        f"ann@example.org,Ann{char}injected@evil.org,weekly\n"
        f"bob@example.org,Bob{char}x,daily{char}weekly\n"
        "carl@example.org,Carl,weekly\n"
    )
    subscribers, problems = parse(text)
    assert [(s.email, s.frequency, s.line) for s in subscribers] == [
        ("carl@example.org", "weekly", 4)
    ]
    # The rows holding the character are refused where they are, as one row each.
    assert [p.line for p in problems] == [2, 3]
    assert "line break" in problems[0].message or "control" in problems[0].message


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\r", "\n"])
def test_a_line_break_of_any_kind_in_a_quoted_name_is_refused(char: str) -> None:
    subscribers, problems = parse(f'email,name\nann@example.org,"Ann{char}Bcc"\nb@example.org,B\n')
    assert [s.email for s in subscribers] == ["b@example.org"]
    assert len(problems) == 1 and problems[0].line == 2


def test_a_row_with_more_cells_than_the_header_is_reported_and_skipped() -> None:
    subscribers, problems = parse(
        "email,name,frequency\n"
        "a@example.org,Smith, Ann,weekly\n"  # an unquoted comma shifted the frequency out
        'b@example.org,"Smith, Bob",weekly\n'
        "c@example.org,Carl,daily,\n"  # a trailing empty cell is a column too
        "d@example.org\n"  # fewer cells: the missing ones are empty
    )
    assert [(s.email, s.name, s.frequency) for s in subscribers] == [
        ("b@example.org", "Smith, Bob", "weekly"),
        ("d@example.org", "", "daily"),
    ]
    assert [(p.line, p.message) for p in problems] == [
        (2, "4 columns, but the header names 3: the row was skipped"),
        (4, "4 columns, but the header names 3: the row was skipped"),
    ]
    assert "quote" in problems[0].hint
