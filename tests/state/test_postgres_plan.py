"""Planning on PostgreSQL with the edition written by a second connection in a thread
(``state/postgres_plan.py``): what must hold whatever fails, and where.

Nothing of an edition is recorded unless all of it is; what reading the list writes
(join times) is committed only with it, or, if the edition's own commit fails after it,
alone, as a sync would; a failure in the writer's thread reaches the caller as a
StoreError; no connection is left behind; two hosts planning one edition get one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from statement_feeds.errors import StoreError
from statement_feeds.state import postgres_plan
from statement_feeds.state.api import Edition, PlannedDelivery
from statement_feeds.state.postgres import PostgresStore

T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)
CHUNK = 5000  # state/batches.py: the writer gets the edition in chunks this size


def _planned(
    store: PostgresStore, emails: list[str], *, fail_at: int | None = None
) -> Iterator[PlannedDelivery]:
    """Deliveries as planning yields them: each address synced (join time) on the way."""
    for n, email in enumerate(emails):
        if n == fail_at:
            raise ValueError("a subscriber file went away mid-plan")
        if n % CHUNK == 0:  # as planning does per chunk, in the store's transaction
            store.sync_subscribers(emails[n : n + CHUNK], T0)
        yield PlannedDelivery(email, "", "en", ("s1-en",), ("s1",))


def _mid(edition: int, email: str) -> str:
    return f"<{edition}.{email}@example.org>"


def _emails(count: int, prefix: str = "u") -> list[str]:
    return [f"{prefix}{n:06}@x.org" for n in range(count)]


def _counts(url: str) -> tuple[int, int, int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM editions), (SELECT count(*) FROM deliveries),"
            " (SELECT count(*) FROM assigned), (SELECT count(*) FROM subscribers)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def _connections(url: str, limit: int = 2) -> int:
    """Our other sessions on the database, once those closed have gone (a backend
    leaves pg_stat_activity shortly after its client closed the socket). The store's
    pool keeps two (the one it lends and one idle): ``limit``."""
    deadline = time.monotonic() + 5
    while True:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            ).fetchone()
        count = int(row[0]) if row else 0
        if count <= limit or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def test_a_plan_of_several_chunks_is_recorded_whole(pg_url: str) -> None:
    emails = _emails(3 * CHUNK + 7)
    with PostgresStore(pg_url) as store:
        edition = store.plan_edition("daily", T0, T0, _planned(store, emails), _mid)
        assert edition.deliveries == len(emails)
        assert store.counts(edition.id).pending == len(emails)
        assert store.ever_assigned({"s1", "s2"}) == {"s1"}
    assert _counts(pg_url) == (1, len(emails), len(emails), len(emails))


def test_a_failure_mid_list_leaves_no_trace(pg_url: str) -> None:
    # Two chunks were handed to the writer (and likely written) before the failure.
    emails = _emails(2 * CHUNK + 100)
    with PostgresStore(pg_url) as store:
        with pytest.raises(ValueError, match="went away"):
            store.plan_edition("daily", T0, T0, _planned(store, emails, fail_at=2 * CHUNK), _mid)
        assert store.edition_for("daily", T0) is None
        assert store.counts().pending == 0  # the store's own connection still works
    assert _counts(pg_url) == (0, 0, 0, 0)  # the join times were rolled back too
    assert _connections(pg_url) <= 2  # the writer's connection is closed (the pool's stay)


def test_a_failure_in_the_writers_thread_reaches_the_caller(pg_url: str) -> None:
    # The same address in two chunks: the second COPY breaks the primary key, in the
    # writer's thread. The caller gets a StoreError; nothing is recorded.
    emails = [*_emails(CHUNK), "u000000@x.org", *_emails(CHUNK, "v")]
    with PostgresStore(pg_url) as store:
        with pytest.raises(StoreError, match="duplicate key"):
            store.plan_edition("daily", T0, T0, _planned(store, emails), _mid)
        assert store.edition_for("daily", T0) is None
        # The next plan on the same store works.
        good = store.plan_edition("daily", T0, T0, _planned(store, _emails(10)), _mid)
        assert good.deliveries == 10
    assert _counts(pg_url)[:3] == (1, 10, 10)
    assert _connections(pg_url) <= 2


def test_when_the_editions_commit_fails_the_sync_alone_stands(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    emails = _emails(20)

    def commit_fails(self: postgres_plan.EditionWriter) -> None:
        raise StoreError("cannot plan in the state database: the server went away")

    monkeypatch.setattr(postgres_plan.EditionWriter, "commit", commit_fails)
    with PostgresStore(pg_url) as store, pytest.raises(StoreError):
        store.plan_edition("daily", T0, T0, _planned(store, emails), _mid)
    # As after a sync: the join times, no edition; the next plan will do it.
    assert _counts(pg_url) == (0, 0, 0, 20)
    assert _connections(pg_url) <= 2


def test_inside_a_callers_transaction_the_plan_joins_it(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        with pytest.raises(RuntimeError), store.transaction():
            store.plan_edition("daily", T0, T0, _planned(store, _emails(30)), _mid)
            assert store.counts().pending == 30  # visible in the caller's transaction
            raise RuntimeError("the caller gives up")
        assert store.edition_for("daily", T0) is None
    assert _counts(pg_url) == (0, 0, 0, 0)


def test_two_hosts_planning_one_edition_get_one(pg_url: str) -> None:
    results: list[Edition] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def host(prefix: str) -> None:
        try:
            with PostgresStore(pg_url) as store:
                start.wait()
                emails = _emails(CHUNK + 10, prefix)
                results.append(store.plan_edition("daily", T0, T0, _planned(store, emails), _mid))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=host, args=(p,)) for p in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len({edition.id for edition in results}) == 1
    assert _counts(pg_url)[:2] == (1, CHUNK + 10)


def test_a_later_edition_is_a_new_one(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        first = store.plan_edition("daily", T0, T0, _planned(store, _emails(5)), _mid)
        later = T0 + timedelta(days=1)
        again: Any = store.plan_edition("daily", T0, later, iter(()), _mid)
        assert again == first  # the same due time: returned, nothing read
        second = store.plan_edition("daily", later, later, iter(()), _mid)
        assert second.id != first.id and second.deliveries == 0
