"""``assigned_keys``: every translation key ever assigned to anyone (issue 12), on both
backends. Written with the assigned rows, in the plan's transaction; filled by the
migration from the rows of a database that predates it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from pg_helpers import AnyStore, migrated_to
from statement_feeds.errors import StoreError
from statement_feeds.state import postgres_migrations, sqlite_migrations
from statement_feeds.state.api import PlannedDelivery
from statement_feeds.state.batches import CHUNK
from statement_feeds.state.postgres import PostgresStore
from statement_feeds.state.sqlite import SqliteStore

T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)
STAMP = "2024-06-01T07:00:00.000000Z"


def mid(edition: int, email: str) -> str:
    return f"<{edition}.{email}@example.org>"


def planned(email: str, *keys: str) -> PlannedDelivery:
    return PlannedDelivery(email, "", "en", tuple(f"{k}-en" for k in keys), keys)


def test_a_key_is_ever_assigned_once_an_edition_gave_it(backend: AnyStore) -> None:
    assert backend.ever_assigned({"k1", "k2", "k3"}) == frozenset()
    backend.plan_edition("daily", T0, T0, [planned("a@x.org", "k1")], mid)
    backend.plan_edition("daily", T0 + timedelta(days=1), T0, [planned("b@x.org", "k1", "k2")], mid)

    assert backend.ever_assigned({"k1", "k2", "k3"}) == {"k1", "k2"}
    assert backend.ever_assigned(()) == frozenset()
    assert backend.ever_assigned([f"k{n}" for n in range(12_000)]) == {"k1", "k2"}  # chunked


def test_a_plan_that_fails_leaves_no_key_behind(backend: AnyStore) -> None:
    # The failure path: a key assigned twice aborts the plan, and leaves no key row for
    # the keys it gave before (k2): they belong to its transaction.
    backend.plan_edition("daily", T0, T0, [planned("a@x.org", "k1")], mid)
    again = [planned("b@x.org", "k2"), planned("a@x.org", "k1")]
    with pytest.raises(StoreError, match=r"(?i)unique"):
        backend.plan_edition("daily", T0 + timedelta(days=1), T0, again, mid)

    assert backend.ever_assigned({"k1", "k2"}) == {"k1"}


def _old_sqlite(path: Path) -> sqlite3.Connection:
    """A SQLite state of schema version 7 with two addresses given keys."""
    db = sqlite3.connect(path, isolation_level=None)
    sqlite_migrations.applied_versions(db)
    for version, function in sqlite_migrations.MIGRATIONS[:7]:
        function(db)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, STAMP))
    db.execute(
        "INSERT INTO editions (frequency, due_at, planned_at) VALUES ('daily', ?, ?)",
        (STAMP, STAMP),
    )
    db.executemany(
        "INSERT INTO assigned (email_key, translation_key, edition_id) VALUES (?, ?, 1)",
        [("a@x.org", "k1"), ("a@x.org", "k2"), ("b@x.org", "k1")],
    )
    return db


def test_the_sqlite_migration_fills_it_from_the_assigned_rows(tmp_path: Path) -> None:
    db = _old_sqlite(tmp_path / "state.sqlite")
    assert sqlite_migrations.migrate(db) == [8]
    assert db.execute("SELECT translation_key FROM assigned_keys").fetchall() == [
        ("k1",),
        ("k2",),
    ]
    db.close()
    with SqliteStore.open(tmp_path) as store:
        assert store.ever_assigned({"k1", "k2", "k3"}) == {"k1", "k2"}


def test_the_postgresql_migration_fills_it_from_the_assigned_rows(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrated_to(conn, 4)
        conn.execute(
            "INSERT INTO editions (frequency, due_at, planned_at) VALUES ('daily', %s, %s)",
            (STAMP, STAMP),
        )
        conn.execute(
            "INSERT INTO assigned (email_key, translation_key, edition_id)"
            " VALUES ('a@x.org', 'k1', 1), ('a@x.org', 'k2', 1), ('b@x.org', 'k1', 1)"
        )
        later = [v for v, _ in postgres_migrations.MIGRATIONS[4:]]  # 5 and later
        assert postgres_migrations.migrate(conn, pg_url) == later
        rows = conn.execute("SELECT translation_key FROM assigned_keys ORDER BY 1").fetchall()
        assert rows == [("k1",), ("k2",)]
    with PostgresStore(pg_url) as store:
        assert store.ever_assigned({"k1", "k2", "k3"}) == {"k1", "k2"}


@pytest.mark.parametrize("wanted", [{"k3"}, {"k3", "k9"}, {f"k{n}" for n in range(4, 12)}])
def test_histories_read_whole_or_by_pair_give_the_same_states(
    backend: AnyStore, wanted: set[str]
) -> None:
    # Twelve keys ever assigned: one or two wanted are probed by (address, key) pair, eight
    # (at least a quarter) by reading each address's whole history. The same answer.
    every = [f"k{n}" for n in range(12)]
    backend.plan_edition("daily", T0, T0, [planned("a@x.org", *every[:6])], mid)
    backend.plan_edition("daily", T0 + timedelta(days=1), T0, [planned("b@x.org", *every)], mid)
    backend.sync_subscribers(["a@x.org", "b@x.org", "c@x.org"], T0)
    whole = len(wanted) * 4 >= len(every)
    # PostgreSQL reads one bit mask per address either way (postgres_histories).
    assert backend._whole_histories(len(wanted)) is (whole and isinstance(backend, SqliteStore))

    states = backend.subscriber_states(["a@x.org", "B@x.org", "c@x.org"], wanted)

    assert {email: state.assigned for email, state in states.items()} == {
        "a@x.org": frozenset(wanted & set(every[:6])),
        "b@x.org": frozenset(wanted),
        "c@x.org": frozenset(),
    }


@pytest.mark.parametrize("count", [1, 63, 64, 65, 130])
def test_any_number_of_wanted_keys_reads_back_each_history(backend: AnyStore, count: int) -> None:
    # PostgreSQL folds 64 keys per query into a bigint mask: the 64th is its sign bit,
    # the 65th starts a second query. Addresses share masks (one frozenset each) or not.
    wanted = [f"k{n:03}" for n in range(count)]
    histories = {
        "all@x.org": wanted,
        "even@x.org": wanted[::2],
        "odd@x.org": wanted[1::2],
        "last@x.org": wanted[-1:],
        "twin@x.org": wanted[::2],
        "none@x.org": [],
    }
    for n, (email, keys) in enumerate(histories.items()):
        if keys:
            backend.plan_edition("daily", T0 + timedelta(days=n), T0, [planned(email, *keys)], mid)
    backend.sync_subscribers(list(histories), T0)
    backend.plan_edition("daily", T0 - timedelta(days=1), T0, [planned("all@x.org", "other")], mid)

    states = backend.subscriber_states(list(histories), set(wanted))

    assert {email: state.assigned for email, state in states.items()} == {
        email: frozenset(keys) for email, keys in histories.items()
    }


def test_two_plans_giving_the_same_new_keys_in_opposite_orders_both_finish(
    pg_url: str,
) -> None:
    # Two hosts planning two editions at once (daily and weekly: other addresses), each
    # giving both new keys, in opposite orders. Keys written per chunk would lock k2 in
    # one plan and k1 in the other, then each wait for the other's: a deadlock, and one
    # plan aborted. Written once at the end, in key order, the second plan only waits.
    halfway = {name: threading.Event() for name in ("daily", "weekly")}

    def deliveries(name: str, other: str, first: str, then: str) -> Iterator[PlannedDelivery]:
        yield from (planned(f"{name}{n}@x.org", first) for n in range(CHUNK))
        halfway[name].set()  # asked for more: its first chunk is written
        halfway[other].wait(timeout=10)
        yield from (planned(f"{name}{n}@x.org", then) for n in range(CHUNK, CHUNK + 10))

    errors: list[BaseException] = []

    def plan(name: str, other: str, first: str, then: str) -> None:
        try:
            with PostgresStore(pg_url) as store:
                store.plan_edition(name, T0, T0, deliveries(name, other, first, then), mid)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=plan, args=("daily", "weekly", "k2", "k1")),
        threading.Thread(target=plan, args=("weekly", "daily", "k1", "k2")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    with PostgresStore(pg_url) as store:
        assert store.ever_assigned({"k1", "k2"}) == {"k1", "k2"}
        assert store.counts().pending == 2 * (CHUNK + 10)
