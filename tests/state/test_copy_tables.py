"""`copy_tables` knows every table and column of the SQLite schema, with the right kinds,
so a migration that adds one cannot be silently left behind by `state copy`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from statement_feeds.errors import StateError
from statement_feeds.state.copy_tables import REPLACED, SKIPPED, TABLES, Kind, convert_rows
from statement_feeds.state.postgres_copy import copy_state
from statement_feeds.state.sqlite import SqliteStore
from statement_feeds.state.sqlite_migrations import migrate
from statement_feeds.state.timestamps import to_ts

KNOWN = {t.name: t for t in (*TABLES, *REPLACED)}
DECLARED = {"INTEGER": Kind.INTEGER, "TEXT": Kind.TEXT}


@pytest.fixture
def schema() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:", isolation_level=None)
    migrate(db)
    yield db
    db.close()


def _tables(db: sqlite3.Connection) -> set[str]:
    rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {name for (name,) in rows if not name.startswith("sqlite_")}


def test_every_table_is_copied_replaced_or_skipped_once(schema: sqlite3.Connection) -> None:
    names = [t.name for t in (*TABLES, *REPLACED)]
    assert len(names) == len(set(names)) and not set(names) & SKIPPED
    assert _tables(schema) == set(names) | SKIPPED


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_every_column_is_listed_in_order_with_its_kind(
    schema: sqlite3.Connection, name: str
) -> None:
    table = KNOWN[name]
    info = schema.execute(f'PRAGMA table_info("{name}")').fetchall()
    assert table.names == tuple(row[1] for row in info)
    for (column, kind), row in zip(table.columns, info, strict=True):
        declared = DECLARED[row[2]]
        assert kind is declared or (kind is Kind.TIMESTAMP and declared is Kind.TEXT), column
        looks_like_time = column.endswith(("_at", "_until")) or column in {"at", "first_seen"}
        assert (kind is Kind.TIMESTAMP) == looks_like_time, f"{name}.{column}"
    assert table.key == tuple(row[1] for row in sorted(info, key=lambda r: r[5]) if row[5])


def test_editions_come_before_what_references_them() -> None:
    order = [t.name for t in TABLES]
    assert order.index("editions") < order.index("deliveries")
    assert order.index("editions") < order.index("assigned")


def test_timestamps_become_aware_datetimes_of_the_same_instant() -> None:
    table = KNOWN["rate_events"]
    moment = datetime(2024, 5, 1, 7, 0, 0, 123456, tzinfo=UTC)
    east = moment.astimezone(timezone(timedelta(hours=3))).isoformat()

    rows = convert_rows(table, [(1, "b", to_ts(moment)), (2, "b", east), (3, "b", None)])

    assert rows == [[1, "b", moment], [2, "b", moment], [3, "b", None]]
    assert rows[0][2].tzinfo is not None


def test_timestamps_for_text_columns_become_the_canonical_fixed_width_text() -> None:
    moment = datetime(2024, 5, 1, 7, 0, 0, 5, tzinfo=UTC)
    east = moment.astimezone(timezone(timedelta(hours=3))).isoformat()

    rows = convert_rows(KNOWN["rate_events"], [(1, "b", east), (2, "b", None)], frozenset({"at"}))

    assert rows == [[1, "b", "2024-05-01T07:00:00.000005Z"], [2, "b", None]]


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01 07:00:00.000005Z",  # the same length, a space for the T
        "2024-05-01T07:00:00,000005Z",  # a decimal comma
        "2024-05-01T07:00:00.000005",  # naive: UTC
        "2024-05-01T07:00:00.000005+00:00",
    ],
)
def test_every_spelling_of_a_time_becomes_the_one_canonical_text(text: str) -> None:
    [row] = convert_rows(KNOWN["rate_events"], [(1, "b", text)], frozenset({"at"}))
    assert row[2] == "2024-05-01T07:00:00.000005Z"


@pytest.mark.parametrize("value", ["yesterday", 1714546800, "2024-13-01T00:00:00Z"])
def test_a_timestamp_that_does_not_parse_names_table_row_and_column(value: object) -> None:
    with pytest.raises(StateError) as error:
        convert_rows(KNOWN["rate_events"], [(1, "b", to_ts(datetime.now(UTC))), (2, "b", value)])
    assert "cannot copy table rate_events, row id=2: column at holds" in str(error.value)
    assert f"{value!r}, which is not a valid timestamp" in str(error.value)


def test_rows_without_timestamps_pass_as_they_are() -> None:
    rows = [("a", "b"), ("c", "d")]
    assert convert_rows(KNOWN["subscriber_ids"], rows) == rows


def test_a_source_table_the_copy_does_not_know_is_refused(tmp_path: Path) -> None:
    SqliteStore.open(tmp_path).close()
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        db.execute("CREATE TABLE from_the_future (x TEXT)")

    with pytest.raises(StateError, match="tables this statement-feeds cannot copy: from_the"):
        copy_state(tmp_path, "postgresql://nobody@127.0.0.1:1/never-reached")


def test_a_missing_state_is_refused_without_creating_one(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="there is no SQLite state at"):
        copy_state(tmp_path / "state", "postgresql://nobody@127.0.0.1:1/never-reached")
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://feeds:hunter2@db/statements", "holds a password"),
        ("postgresql://feeds@db/statements?sslmode=require&password=hunter2", "holds a password"),
        ("postgresql://feeds@db:5x32/statements", "port that is not a number"),
        ("db.example.org/statements", "must be a PostgreSQL URL"),
    ],
)
def test_bad_target_urls_are_refused_before_anything_is_opened(
    tmp_path: Path, url: str, says: str
) -> None:
    with pytest.raises(StateError, match=says) as error:
        copy_state(tmp_path / "state", url)
    assert "hunter2" not in str(error.value)
    assert not (tmp_path / "state").exists()
