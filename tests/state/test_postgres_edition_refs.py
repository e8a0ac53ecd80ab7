"""PostgreSQL migration 6: the rows that name an edition are checked once per statement.

The foreign keys of deliveries, assigned and corrections on ``editions`` became triggers
that check a statement's new rows at once (planning inserts them by the million). The
rule must hold as the keys held it: no row may name a missing edition, by INSERT, COPY
or UPDATE, and an edition still named cannot be deleted or renumbered.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pg_helpers import migrated_to
from statement_feeds.state import postgres_migrations
from statement_feeds.state.postgres import PostgresStore

STAMP = "2024-06-01T07:00:00.000000Z"
DELIVERY = (
    "INSERT INTO deliveries (edition_id, email_key, email, name, lang, statement_ids,"
    " message_id, state, next_attempt_at, updated_at)"
    " VALUES (%s, %s, %s, '', 'en', '[]', '<m>', 'pending', %s, %s)"
)


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    PostgresStore(pg_url).close()  # migrated to the newest version
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO editions (id, frequency, due_at, planned_at) VALUES (1, 'daily', %s, %s)",
            (STAMP, STAMP),
        )
        yield connection


def test_rows_naming_a_missing_edition_are_refused(conn: psycopg.Connection[Any]) -> None:
    conn.execute(DELIVERY, (1, "a@x.org", "a@x.org", STAMP, STAMP))  # edition 1 exists
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="deliveries: edition_id"):
        conn.execute(DELIVERY, (2, "b@x.org", "b@x.org", STAMP, STAMP))
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="assigned: edition_id"):
        conn.execute(
            "INSERT INTO assigned (email_key, translation_key, edition_id)"
            " VALUES ('a@x.org', 'k1', 1), ('a@x.org', 'k2', 7)"  # one good row, one bad
        )
    copying = conn.cursor().copy(
        "COPY corrections (email_key, translation_key, statement_updated_at,"
        " statement_id, edition_id) FROM STDIN"
    )
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="corrections: edition_id"):  # noqa: SIM117
        with copying as copy:
            copy.write_row(("a@x.org", "k1", STAMP, "s1", 9))
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="update of deliveries"):
        conn.execute("UPDATE deliveries SET edition_id = 3")
    [(count,)] = conn.execute("SELECT count(*) FROM deliveries").fetchall()
    [(assigned,)] = conn.execute("SELECT count(*) FROM assigned").fetchall()
    assert (count, assigned) == (1, 0)  # only the good row of the first statement


def test_an_edition_still_named_is_kept(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "INSERT INTO editions (id, frequency, due_at, planned_at) VALUES (2, 'weekly', %s, %s)",
        (STAMP, STAMP),
    )
    conn.execute(DELIVERY, (1, "a@x.org", "a@x.org", STAMP, STAMP))
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="edition 1 is still named"):
        conn.execute("DELETE FROM editions WHERE id = 1")
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="edition 1 is still named"):
        conn.execute("UPDATE editions SET id = 5 WHERE id = 1")
    conn.execute("UPDATE editions SET deliveries = 1 WHERE id = 1")  # other columns: fine
    conn.execute("DELETE FROM editions WHERE id = 2")  # named by nothing
    [(left,)] = conn.execute("SELECT count(*) FROM editions").fetchall()
    assert left == 1


def test_the_migration_keeps_the_rows_of_an_older_database(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrated_to(conn, 5)
        conn.execute(
            "INSERT INTO editions (id, frequency, due_at, planned_at) VALUES (1, 'daily', %s, %s)",
            (STAMP, STAMP),
        )
        conn.execute(DELIVERY, (1, "a@x.org", "a@x.org", STAMP, STAMP))
        assert postgres_migrations.migrate(conn, pg_url) == [6]
        foreign_keys = conn.execute(
            "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'f'"
        ).fetchall()
        assert foreign_keys == []  # replaced by the triggers
        [(count,)] = conn.execute("SELECT count(*) FROM deliveries").fetchall()
        assert count == 1
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("DELETE FROM editions")
