"""Schema versions: numbered without gaps, the old numbering translated, newer refused."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from statement_feeds.errors import StateError
from statement_feeds.state.sqlite import SqliteStore
from statement_feeds.state.sqlite_migrations import (
    MIGRATIONS,
    OLD_NUMBERS,
    applied_versions,
    migrate,
    migration,
)

STAMP = "2024-01-01T00:00:00+00:00"


def recorded(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT version, applied_at FROM schema_migrations ORDER BY 1").fetchall()


def old_database(path: Path, old_versions: list[int]) -> None:
    """A database as the numbering before issue 11 left it: ``old_versions`` applied."""
    new_of = dict(OLD_NUMBERS)
    functions = dict(MIGRATIONS)
    db = sqlite3.connect(path, isolation_level=None)
    applied_versions(db)  # creates schema_migrations
    for old in old_versions:
        functions[new_of[old]](db)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (old, f"{STAMP}#{old}"))
    db.close()


def test_the_versions_are_1_to_n_without_gaps() -> None:
    assert [version for version, _ in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert sorted(OLD_NUMBERS.values()) == list(range(1, len(OLD_NUMBERS) + 1))


@pytest.mark.parametrize("version", [len(MIGRATIONS), len(MIGRATIONS) + 2])
def test_a_duplicate_or_a_gap_cannot_be_registered(version: int) -> None:
    before = len(MIGRATIONS)
    with pytest.raises(ValueError, match="registered where"):
        migration(version)(lambda conn: None)
    assert len(MIGRATIONS) == before


def test_a_fully_migrated_old_database_is_renumbered_and_nothing_reapplied(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite"
    old_database(path, [1, 5, 6, 7, 8])
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO web_subscribers VALUES ('a@x.org', 'a@x.org', '', 'en', 'daily', ?, ?)",
            (STAMP, STAMP),
        )
        key = db.execute("SELECT value FROM settings").fetchone()
    store = SqliteStore(path)
    store.close()
    renumbered = recorded(path)[: len(OLD_NUMBERS)]  # later migrations are applied now
    assert renumbered == [(new, f"{STAMP}#{old}") for old, new in OLD_NUMBERS.items()]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM settings").fetchone() == key  # not made again
        assert db.execute("SELECT email FROM web_subscribers").fetchall() == [("a@x.org",)]


def test_an_old_database_from_before_the_hardening_gets_the_missing_migrations(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite"
    old_database(path, [1, 5])
    SqliteStore(path).close()
    versions = recorded(path)
    assert versions[:2] == [(1, f"{STAMP}#1"), (2, f"{STAMP}#5")]
    assert [version for version, _ in versions] == list(range(1, len(MIGRATIONS) + 1))
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(deliveries)")}
        assert {"claimed_by", "claim_until"} <= columns  # 3 (6 once) applied now
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert {"settings", "subscriber_ids", "subscriber_sightings"} <= tables


def test_renumbering_happens_once(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    old_database(path, [1, 5])
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db) == list(range(3, len(MIGRATIONS) + 1))
    assert migrate(db) == []
    assert applied_versions(db) == list(range(1, len(MIGRATIONS) + 1))
    db.close()


def test_a_database_of_a_newer_statement_feeds_is_refused_untouched(tmp_path: Path) -> None:
    SqliteStore.open(tmp_path).close()
    path = tmp_path / "state.sqlite"
    newer = len(MIGRATIONS) + 1
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM schema_migrations WHERE version = ?", (len(MIGRATIONS),))
        db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (newer, STAMP))
    before = recorded(path)
    with pytest.raises(StateError) as caught:
        SqliteStore.open(tmp_path)
    message = str(caught.value)
    assert f"has schema version {newer}" in message
    assert f"knows versions 1-{len(MIGRATIONS)} only" in message
    assert "upgrade statement-feeds" in message and str(path) in message
    assert recorded(path) == before  # the missing version was not applied either


def test_an_old_numbering_with_an_unknown_version_is_refused_not_renumbered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite"
    old_database(path, [1, 5])
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_migrations VALUES (9, ?)", (STAMP,))
    with pytest.raises(StateError, match="has schema version 9"):
        SqliteStore(path)
    assert [version for version, _ in recorded(path)] == [1, 5, 9]


def test_corrections_migration_keeps_older_rows_usable(tmp_path: Path) -> None:
    # Issue 14: a state of version 6 with an edition mailed; after migration 7 its rows
    # have no recorded version (NULL: planning falls back to the delivery and edition).
    path = tmp_path / "state.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    applied_versions(db)
    for version, function in MIGRATIONS[:6]:
        function(db)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, STAMP))
    stamp = "2024-06-01T07:00:00.000000Z"
    db.execute(
        "INSERT INTO editions (frequency, due_at, planned_at) VALUES ('daily', ?, ?)",
        (stamp, stamp),
    )
    db.execute(
        "INSERT INTO deliveries (edition_id, email_key, email, name, lang, statement_ids,"
        " message_id, state, next_attempt_at, updated_at)"
        " VALUES (1, 'a@x.org', 'a@x.org', '', 'en', '[\"k-en\"]', '<m>', 'pending', ?, ?)",
        (stamp, stamp),
    )
    db.execute("INSERT INTO assigned VALUES ('a@x.org', 'k', 1)")
    assert migrate(db) == [7, 8]
    assert db.execute("SELECT statement_id, statement_updated_at FROM assigned").fetchall() == [
        (None, None)
    ]
    db.close()
    with SqliteStore.open(tmp_path) as store:
        [claimed] = store.claim(5, datetime(2024, 6, 2, tzinfo=UTC))
        assert (claimed.statement_ids, claimed.corrected_ids) == (("k-en",), ())
