"""A PostgreSQL store gathers the statistics of a table a transaction grew by many rows as
soon as it commits (``PostgresStore._analyze_grown``): the next edition reads those rows
by key, and with no statistics the planner read 28 million ``assigned`` rows for every
1,000 addresses. Below the threshold, after a rollback, and on a table locked by another
session's VACUUM, it leaves them to autovacuum."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from statement_feeds.state import postgres
from statement_feeds.state.api import PlannedDelivery
from statement_feeds.state.postgres import PostgresStore

T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)
TABLES = ("assigned", "deliveries", "subscriber_ids", "subscribers")


def _planned(count: int, *, fail_at: int | None = None) -> Iterator[PlannedDelivery]:
    for n in range(count):
        if n == fail_at:
            raise ValueError("a subscriber file went away mid-plan")
        yield PlannedDelivery(f"user{n:05}@x.org", "", "en", ("s1-en", "s2-en"), ("s1", "s2"))


def _message_id(edition: int, email: str) -> str:
    return f"<{edition}.{email}@example.org>"


def _reltuples(url: str) -> dict[str, float]:
    """-1 for a table never analysed (PostgreSQL 14 and later)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, reltuples FROM pg_class WHERE relname = ANY(%s)", [list(TABLES)]
        ).fetchall()
    return {name: float(tuples) for name, tuples in rows}


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    # A few hundred rows stand in for the 10,000 (autovacuum's own threshold for a
    # table never analysed is 50 rows and a nap of a minute: it cannot get there first
    # within a test, but the tests below stay under 50 rows where they expect nothing).
    monkeypatch.setattr(postgres, "ANALYZE_AFTER", 40)


def test_an_edition_that_adds_many_rows_is_analysed_when_it_commits(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        store.sync_subscribers([f"user{n:05}@x.org" for n in range(300)], T0)
        after_sync = _reltuples(pg_url)
        store.plan_edition("daily", T0, T0, _planned(300), _message_id)
        after_plan = _reltuples(pg_url)
    assert after_sync["subscribers"] == 300
    assert after_sync["deliveries"] == -1  # nothing planned yet
    assert after_plan["deliveries"] == 300
    assert after_plan["assigned"] == 600  # two keys each


def test_a_few_rows_leave_the_statistics_to_autovacuum(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        store.plan_edition("daily", T0, T0, _planned(15), _message_id)
        assert store.counts().pending == 15
    assert _reltuples(pg_url)["deliveries"] == -1
    assert _reltuples(pg_url)["assigned"] == -1


def test_a_plan_rolled_back_analyses_nothing_later(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        with pytest.raises(ValueError, match="went away"):
            store.plan_edition("daily", T0, T0, _planned(300, fail_at=250), _message_id)
        # The rolled-back rows are not counted into the next transaction's.
        store.plan_edition("weekly", T0, T0, _planned(10), _message_id)
        assert store.counts().pending == 10
    assert _reltuples(pg_url)["deliveries"] == -1


def test_a_table_being_vacuumed_is_skipped_and_the_plan_still_stands(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(postgres, "ANALYZE_WAIT", 0.2)
    with PostgresStore(pg_url) as store, psycopg.connect(pg_url) as other:
        # The lock VACUUM and ANALYZE take: inserts go on, a second ANALYZE waits.
        other.execute("LOCK TABLE deliveries IN SHARE UPDATE EXCLUSIVE MODE")
        with caplog.at_level(logging.WARNING, logger=postgres.__name__):
            edition = store.plan_edition("daily", T0, T0, _planned(300), _message_id)
        other.rollback()
        assert edition.deliveries == 300
        assert store.counts().pending == 300  # committed: the failure only logged
    assert "cannot gather the statistics of assigned, deliveries" in caplog.text
    assert "lock timeout" in caplog.text
    assert _reltuples(pg_url)["deliveries"] == -1


def test_a_connection_broken_after_the_commit_loses_nothing(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with PostgresStore(pg_url) as store:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            # The connection that wrote the edition (postgres_plan's writer) is killed
            # between its commit and its ANALYZE: the plan stands, and that is logged.
            original = store._analyze

            def killed_first(conn: psycopg.Connection[Any], grown: Counter[str]) -> None:
                if grown["deliveries"]:
                    admin.execute("SELECT pg_terminate_backend(%s)", [conn.info.backend_pid])
                original(conn, grown)

            store._analyze = killed_first  # type: ignore[method-assign]
            with caplog.at_level(logging.WARNING, logger=postgres.__name__):
                store.plan_edition("daily", T0, T0, _planned(300), _message_id)
        assert "cannot gather the statistics" in caplog.text
        assert store.counts().pending == 300  # the store's own connection is unharmed
    with PostgresStore(pg_url) as store:
        assert store.counts().pending == 300
