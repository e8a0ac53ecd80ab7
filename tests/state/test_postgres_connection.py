"""The fast forms of ``postgres_connection.copy_rows`` and ``sql_dialect.array_arg``,
against a real PostgreSQL: whatever form a batch takes, what the server stores or
reads back is exactly the Python values.

``copy_rows`` formats runs of rows as COPY text itself and falls back to psycopg's
``write_row`` for a run with a field COPY must escape or a NULL; ``array_arg`` sends a
list of keys as one string the server splits, and a list it cannot join safely as
psycopg's array.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from statement_feeds.state.postgres_connection import copy_rows
from statement_feeds.state.sql_dialect import array_arg

COLUMNS = ("k", "n", "t")
AWKWARD = ["tab\there", "line\nbreak", "back\\slash", "carriage\rreturn", "\\N", "", " x "]


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_url) as connection:
        connection.execute("CREATE TABLE t (k text PRIMARY KEY, n int8, t text)")
        yield connection


def stored(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT k, n, t FROM t ORDER BY k").fetchall()


def test_plain_rows_go_as_text_and_read_back(conn: psycopg.Connection[Any]) -> None:
    rows = [(f"user{i:05}@example.org", i * 7 - 3, f"Name {i} — ünïcode") for i in range(1203)]
    copy_rows(conn, "t", COLUMNS, rows)
    assert stored(conn) == rows


@pytest.mark.parametrize("awkward", AWKWARD)
def test_a_field_copy_must_escape_is_written_as_it_is(
    conn: psycopg.Connection[Any], awkward: str
) -> None:
    # One awkward field in the middle of the second run of 500: the runs around it
    # go as text, that run through write_row.
    rows = [(f"k{i:04}", i, "plain") for i in range(1100)]
    rows[700] = ("k0700", 700, awkward)
    rows[701] = (f"key {awkward}", 701, awkward)
    copy_rows(conn, "t", COLUMNS, rows)
    assert stored(conn) == sorted(rows)


def test_nulls_are_nulls(conn: psycopg.Connection[Any]) -> None:
    rows = [("a", None, "x"), ("b", 2, None), ("c", 3, "None")]
    copy_rows(conn, "t", COLUMNS, rows)
    assert stored(conn) == rows


@pytest.mark.parametrize(
    "row", [("a", True, "x"), ("a", 1, b"bytes"), ["a", 1, "x"], ("a", 1.5, "x")]
)
def test_other_types_are_refused_before_anything_is_written(
    conn: psycopg.Connection[Any], row: Any
) -> None:
    with pytest.raises(TypeError, match="copy_rows takes tuples"):
        copy_rows(conn, "t", COLUMNS, [row])
    assert stored(conn) == []


def test_an_empty_batch_writes_nothing(conn: psycopg.Connection[Any]) -> None:
    copy_rows(conn, "t", COLUMNS, [])
    assert stored(conn) == []


def query(conn: psycopg.Connection[Any], values: list[Any], kind: str | None) -> list[Any]:
    """``values`` sent as ``array_arg`` sends them, read back in order."""
    array, value = array_arg(values, kind)
    # array_arg writes the store's ``?`` / ``?b`` placeholders; psycopg's are %s / %b.
    placeholder = array.replace("?b", "%b").replace("?", "%s")
    sql = f"SELECT x FROM unnest({placeholder}) WITH ORDINALITY AS u(x, i) ORDER BY i"
    return [row[0] for row in conn.execute(sql, [value]).fetchall()]


KEYS = [f"user{i}@example{i % 97}.org" for i in range(5000)]


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (KEYS, "text"),
        (KEYS, None),
        (["only@one.org"], "text"),
        (["a\nb@x.org", "c@x.org"], "text"),  # a line break: cannot be joined
        ([""], "text"),  # one empty string: the split would give no item at all
        (["", "c@x.org"], "text"),
        (["c@x.org", "", ""], "text"),
        (["a,b", "ü@ü.org", "x'y", "\\"], "text"),
        ([3, -1, 2**62, 0], "int8"),
        ([3, -1], "bigint"),
        ([3, -1, 7], None),  # untyped: psycopg's own
        ([True, False], "int8"),  # bools as integers, as psycopg sends them
        ([None, 4], "int8"),  # NULL cannot be joined
        (["x", None], "text"),
    ],
)
def test_arrays_read_back_whatever_form_they_take(
    conn: psycopg.Connection[Any], values: list[Any], kind: str | None
) -> None:
    expected = [int(v) if isinstance(v, bool) else v for v in values]
    assert query(conn, values, kind) == expected


def test_keys_go_as_one_joined_string(conn: psycopg.Connection[Any]) -> None:
    # The point of the fast form: planning's key lists take it.
    array, value = array_arg(KEYS, "text")
    assert array.startswith("string_to_array(") and isinstance(value, str)
    array, value = array_arg([1, 2], "int8")
    assert array.startswith("string_to_array(") and value == "1,2"
    array, value = array_arg(["a\nb", "c"], "text")
    assert array == "?b::text[]" and value == ["a\nb", "c"]
