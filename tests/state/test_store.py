"""The state store on both backends (SQLite, PostgreSQL): editions, the delivery state
machine, subscribers; and what is SQLite's own (migrations, PRAGMAs, query plans)."""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pg_helpers import AnyStore, Backend
from statement_feeds.errors import StoreError
from statement_feeds.state.api import (
    Delivery,
    Ledger,
    LedgerCounts,
    Outcome,
    PlannedDelivery,
)
from statement_feeds.state.sql_deliveries import CLAIM_LEASE
from statement_feeds.state.sqlite import SqliteStore, from_ts, to_ts
from statement_feeds.state.sqlite_migrations import MIGRATIONS, applied_versions

T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)


def mid(edition: int, email: str) -> str:
    return f"<{edition}.{email.lower()}@example.org>"


def planned(email: str, *keys: str, lang: str = "en") -> PlannedDelivery:
    return PlannedDelivery(
        email, email.split("@", maxsplit=1)[0], lang, tuple(f"{k}-{lang}" for k in keys), keys
    )


@pytest.fixture
def store(backend: AnyStore) -> AnyStore:
    return backend


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore.open(tmp_path / "state") as opened:
        yield opened


def plan(store: AnyStore, *deliveries: PlannedDelivery, due: datetime = T0) -> int:
    return store.plan_edition("daily", due, due, deliveries, mid).id


def test_is_a_ledger(store: AnyStore) -> None:
    ledger: Ledger = store  # mypy checks the types; this checks names and parameters at run time
    assert ledger.counts() == LedgerCounts()
    for name, member in vars(Ledger).items():
        if name.startswith("_") or not callable(member):
            continue
        wanted = list(inspect.signature(member).parameters)
        implemented = list(inspect.signature(getattr(type(store), name)).parameters)
        assert implemented[: len(wanted)] == wanted, f"{type(store)}.{name} differs from Ledger"


def test_history_starts_at_the_first_join_or_edition(store: AnyStore) -> None:
    assert store.history_start() is None
    store.sync_subscribers(["b@example.org"], T0 + timedelta(days=2))
    assert store.history_start() == T0 + timedelta(days=2)
    plan(store, due=T0)  # planned at T0, before anyone joined (``send`` by hand)
    assert store.history_start() == T0


def test_history_starts_at_an_edition_without_subscribers(store: AnyStore) -> None:
    plan(store, due=T0 + timedelta(hours=1))
    assert store.history_start() == T0 + timedelta(hours=1)


def test_migrations_from_empty_and_reopen_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.sqlite"
    SqliteStore(path).close()
    SqliteStore(path).close()
    db = sqlite3.connect(path)
    assert applied_versions(db) == [v for v, _ in MIGRATIONS]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"subscribers", "editions", "deliveries", "assigned", "schema_migrations"} <= tables
    db.close()


def test_timestamps_are_fixed_width_utc_text() -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert to_ts(moment) == "2024-01-02T03:04:05.000000Z"
    assert from_ts(to_ts(moment)) == moment
    with pytest.raises(ValueError):
        to_ts(datetime(2024, 1, 2))


def test_one_edition_per_due_time_also_after_reopening(make_backend: Backend) -> None:
    with make_backend.open() as store:
        first = store.plan_edition("daily", T0, T0, [planned("a@x.org", "k1")], mid)
    with make_backend.open() as store:
        again = store.plan_edition("daily", T0, T0, [planned("b@x.org", "k2")], mid)
        assert again == first
        assert store.edition_for("daily", T0) == first
        assert store.edition_for("weekly", T0) is None
        assert store.counts(first.id) == LedgerCounts(pending=1)


def test_failing_message_id_leaves_nothing_recorded(store: AnyStore) -> None:
    def broken(edition: int, email: str) -> str:
        if email.startswith("b"):
            raise RuntimeError("boom")
        return mid(edition, email)

    with pytest.raises(RuntimeError):
        store.plan_edition(
            "daily", T0, T0, [planned("a@x.org", "k"), planned("b@x.org", "k")], broken
        )
    assert store.edition_for("daily", T0) is None
    assert store.counts() == LedgerCounts()
    assert store.assigned_keys("a@x.org") == set()


def test_a_key_is_assigned_once_per_subscriber_ever(store: AnyStore) -> None:
    plan(store, planned("a@x.org", "k1"))
    assert store.assigned_keys("A@X.org") == {"k1"}
    with pytest.raises(StoreError, match=r"(?i)unique"):
        plan(store, planned("a@x.org", "k1", lang="ru"), due=T0 + timedelta(days=1))
    assert store.edition_for("daily", T0 + timedelta(days=1)) is None


def test_claim_send_and_counts(store: AnyStore) -> None:
    edition = plan(store, planned("a@x.org", "k1", "k2"), planned("b@x.org", "k1"))
    claimed = store.claim(10, T0)
    assert sorted(d.email for d in claimed) == ["a@x.org", "b@x.org"]
    a = next(d for d in claimed if d.email == "a@x.org")
    assert a == Delivery(
        edition, "a@x.org", "a", "en", ("k1-en", "k2-en"), mid(edition, "a@x.org"), 1, T0
    )
    assert store.claim(10, T0) == []  # already claimed
    assert store.counts(edition) == LedgerCounts(pending=2)  # claimed, not handed over
    assert store.record([], claimed, T0) == [True, True]  # handed over
    assert store.counts(edition) == LedgerCounts(sending=2)
    store.mark_sent(claimed, T0)
    assert store.counts() == LedgerCounts(sent=2)
    assert store.next_attempt_at() is None
    [status] = store.editions()
    assert status.counts == LedgerCounts(sent=2)
    assert status.edition.deliveries == 2


def test_claim_honours_limit_and_next_attempt_at(store: AnyStore) -> None:
    plan(store, planned("a@x.org", "k"), planned("b@x.org", "k"))
    first = store.claim(1, T0)
    assert len(first) == 1
    store.record([], first, T0)
    later = T0 + timedelta(seconds=30)  # before the claim's lease (60 s) ends
    store.mark_deferred(first[0], T0, later, 451, "try later")
    assert store.counts() == LedgerCounts(pending=1, deferred=1)
    [second] = store.claim(5, T0)
    assert second.email != first[0].email
    assert store.next_attempt_at() == later  # the claimed one is not due: it is being sent
    store.record([], [second], T0)
    store.mark_sent([second], T0)
    assert store.claim(5, later - timedelta(seconds=1)) == []
    [retry] = store.claim(5, later)
    assert retry.attempts == 2
    assert retry.first_attempt_at == T0  # the lifetime counts from the first attempt


def test_recover_unknown_resends_with_the_same_message_id(make_backend: Backend) -> None:
    with make_backend.open() as store:
        plan(store, planned("a@x.org", "k"))
        [before] = store.claim(5, T0)
        store.record([], [before], T0)
    # "kill -9": the reply was never recorded.
    with make_backend.open() as store:
        assert store.claim(5, T0) == []  # the dead sender's claim still holds its lease
        assert store.recover_unknown() == 1
        [after] = store.claim(5, T0)
        assert after.message_id == before.message_id
        assert after.attempts == 2


def test_permanent_failure_and_retry_failed_but_not_for_bounced(store: AnyStore) -> None:
    edition = plan(store, planned("a@x.org", "k"), planned("b@x.org", "k"))
    claimed = {d.email: d for d in store.claim(5, T0)}
    store.record([], list(claimed.values()), T0)
    store.mark_failed(claimed["a@x.org"], T0, 552, "mailbox full", bounced=False)
    store.mark_failed(claimed["b@x.org"], T0, 550, "no such user", bounced=True)
    assert store.is_blocked("B@x.org") and not store.is_blocked("a@x.org")
    assert store.counts(edition) == LedgerCounts(failed=2)
    assert store.retry_failed(edition) == 1
    [again] = store.claim(5, T0 + timedelta(hours=1))
    assert again.email == "a@x.org"
    assert again.first_attempt_at == T0 + timedelta(hours=1)  # lifetime restarts


def test_unsubscribe_cancels_pending_and_overrides_later_plans(store: AnyStore) -> None:
    plan(store, planned("a@x.org", "k"), planned("b@x.org", "k"))
    assert store.unsubscribe("A@X.ORG", T0)
    assert not store.unsubscribe("a@x.org", T0 + timedelta(days=1))  # already
    assert [d.email for d in store.claim(5, T0)] == ["b@x.org"]
    assert store.counts() == LedgerCounts(pending=1, cancelled=1)


def test_claim_skips_addresses_blocked_behind_its_back(
    store: AnyStore, make_backend: Backend
) -> None:
    plan(store, planned("a@x.org", "k"), planned("b@x.org", "k"), planned("c@x.org", "k"))
    # Another process (say an HTTP worker on another host) blocked without cancelling.
    for email in ("a@x.org", "b@x.org"):
        make_backend.sql(
            "INSERT INTO subscribers (email, joined_at, unsubscribed_at) VALUES (?, ?, ?)",
            email,
            to_ts(T0),
            to_ts(T0),
        )
    assert [d.email for d in store.claim(1, T0)] == ["c@x.org"]  # limit filled past blocked
    assert store.counts() == LedgerCounts(pending=1, cancelled=2)


def test_an_unsubscribe_after_the_claim_stops_the_hand_over(
    store: AnyStore, make_backend: Backend
) -> None:
    plan(store, planned("a@x.org", "k"), planned("b@x.org", "k"), planned("c@x.org", "k"))
    claimed = sorted(store.claim(5, T0), key=lambda d: d.email)
    assert [d.email for d in claimed] == ["a@x.org", "b@x.org", "c@x.org"]
    assert store.unsubscribe("a@x.org", T0)  # one-click, while the sender holds the claim
    # Blocked behind the store's back (another process), without cancelling anything.
    make_backend.sql(
        "INSERT INTO subscribers (email, joined_at, bounced_at) VALUES ('b@x.org', ?, ?)"
        " ON CONFLICT (email) DO UPDATE SET bounced_at = excluded.bounced_at",
        to_ts(T0),
        to_ts(T0),
    )
    assert store.record([], claimed, T0) == [False, False, True]
    assert store.counts() == LedgerCounts(sending=1, cancelled=2)


def test_a_live_claim_is_never_taken_over_but_a_lapsed_one_is(make_backend: Backend) -> None:
    with make_backend.open() as first, make_backend.open() as second:
        plan(first, planned("a@x.org", "k"), planned("b@x.org", "k"))
        [mine] = first.claim(1, T0)
        [theirs] = second.claim(5, T0)  # only the unclaimed one
        assert mine.email != theirs.email
        # Not its claim: the second sender can neither hand it over nor record it.
        assert second.record([], [mine], T0) == [False]
        second.mark_sent([mine], T0)
        assert first.counts() == LedgerCounts(pending=2)
        assert second.record([], [theirs], T0) == [True]
        second.mark_sent([theirs], T0)
        # The first sender died; once its lease lapsed the claim can be taken.
        assert second.claim(5, T0 + CLAIM_LEASE - timedelta(seconds=1)) == []
        [taken] = second.claim(5, T0 + CLAIM_LEASE)
        assert taken.email == mine.email
        assert second.record([], [taken], T0 + CLAIM_LEASE) == [True]


def test_release_undoes_a_hand_over_that_never_reached_the_server(store: AnyStore) -> None:
    plan(store, planned("a@x.org", "k"))
    [d] = store.claim(1, T0)
    store.record([], [d], T0)
    store.record([Outcome(d, "released")], [], T0)
    assert store.counts() == LedgerCounts(pending=1)
    [again] = store.claim(1, T0)
    assert again.attempts == 1 and again.first_attempt_at == T0


def test_stale_marks_do_not_resurrect_a_delivery(store: AnyStore) -> None:
    plan(store, planned("a@x.org", "k"))
    [d] = store.claim(1, T0)
    store.mark_sent([d], T0)
    store.mark_deferred(d, T0, T0, 421, "late reply")
    store.mark_failed(d, T0, 554, "late reply", bounced=False)
    assert store.counts() == LedgerCounts(sent=1)


def test_subscriber_join_times_are_first_sightings(store: AnyStore) -> None:
    store.sync_subscribers(["A@x.org"], T0)
    store.sync_subscribers(["a@x.org", "b@x.org"], T0 + timedelta(days=1))
    assert store.joined_at("a@x.org") == T0
    states = store.subscriber_states(["a@x.org", "b@x.org", "c@x.org"], {"k"})
    assert set(states) == {"a@x.org", "b@x.org"}
    assert states["b@x.org"].joined_at == T0 + timedelta(days=1)
    assert states["a@x.org"].assigned == frozenset()


def test_claim_uses_the_due_index(sqlite_store: SqliteStore) -> None:
    plan_rows = sqlite_store._db.execute(
        "EXPLAIN QUERY PLAN SELECT d.email_key FROM deliveries d"
        " LEFT JOIN subscribers s ON s.email = d.email_key"
        " WHERE d.state IN ('pending', 'deferred') AND d.next_attempt_at <= ?"
        " ORDER BY d.next_attempt_at LIMIT 10",
        (to_ts(T0),),
    ).fetchall()
    text = " ".join(str(r[-1]) for r in plan_rows)
    assert "deliveries_due" in text
    assert "TEMP B-TREE" not in text  # no sort of every due row per claim


def test_release_undoes_a_claim_that_never_reached_the_server(store: AnyStore) -> None:
    plan(store, planned("a@x.org", "k"), planned("b@x.org", "k"))
    [a] = store.claim(1, T0)
    store.record([], [a], T0)
    later = T0 + timedelta(minutes=5)
    store.mark_deferred(a, T0, later, 451, "try later")
    claimed = store.claim(5, later)  # b for the first time, a for the second
    # Claimed but never handed over: the attempt counts only from the hand-over on.
    assert [(d.email, d.first_attempt_at) for d in sorted(claimed, key=lambda d: d.email)] == [
        ("a@x.org", T0),
        ("b@x.org", later),
    ]
    assert sorted(d.attempts for d in claimed) == [1, 2]
    store.release(claimed, later)
    assert store.counts() == LedgerCounts(pending=1, deferred=1)
    again = {d.email: d for d in store.claim(5, later)}
    assert again["b@x.org"].attempts == 1 and again["b@x.org"].first_attempt_at == later
    assert again["a@x.org"].attempts == 2 and again["a@x.org"].first_attempt_at == T0
    store.mark_sent(list(again.values()), later)
    store.release(list(again.values()), later)  # too late: only "sending" rows move
    assert store.counts() == LedgerCounts(sent=2)


def temp_tables(store: AnyStore) -> list[str]:
    db = store._db  # the connection's temporary schema
    if isinstance(store, SqliteStore):
        sql = "SELECT name FROM temp.sqlite_master WHERE type='table'"
    else:
        sql = "SELECT relname FROM pg_class WHERE relnamespace = pg_my_temp_schema()"
        sql += " AND relkind = 'r'"
    return [row[0] for row in db.execute(sql)]


def test_seen_addresses_first_place_wins_and_each_use_starts_empty(store: AnyStore) -> None:
    with store.seen_addresses() as seen:
        assert seen.first_places([("a", 1), ("b", 2), ("a", 3)]) == [1, 2, 1]
        assert seen.first_places([("b", 4), ("c", 5), ("c", 6)]) == [2, 5, 5]
        assert seen.first_places([]) == []
        assert len(temp_tables(store)) == 1
    assert temp_tables(store) == []
    with store.seen_addresses() as seen:
        assert seen.first_places([("a", 7)]) == [7]


def test_seen_addresses_outliving_a_rolled_back_transaction_close_cleanly(
    store: AnyStore,
) -> None:
    # As when planning fails: the transaction rolls back (taking the table with it)
    # before the abandoned reader is closed.
    reading = store.seen_addresses()
    with pytest.raises(RuntimeError), store.transaction():
        reading.__enter__().first_places([("a", 1)])
        raise RuntimeError("boom")
    assert temp_tables(store) == []
    reading.__exit__(None, None, None)
    with store.seen_addresses() as seen:
        assert seen.first_places([("a", 2)]) == [2]


def test_sightings_remember_when_each_address_was_first_seen_in_each_file(
    store: AnyStore,
) -> None:
    first = store.sightings(T0).first_seen([("a@x.org", "l.csv"), ("b@x.org", "l.csv")])
    assert first == {"a@x.org": {"l.csv": to_ts(T0)}, "b@x.org": {"l.csv": to_ts(T0)}}
    # A day later: the old pair keeps its time, the new one gets its own, every source
    # of an asked-for key is answered, and within one call a repeated pair is one pair.
    later = T0 + timedelta(days=1)
    again = store.sightings(later).first_seen([("a@x.org", "m.csv"), ("a@x.org", "m.csv")])
    assert again == {"a@x.org": {"l.csv": to_ts(T0), "m.csv": to_ts(later)}}
    # A dry run answers the same way and writes nothing.
    peek = store.sightings(later + timedelta(days=1), record=False)
    assert peek.first_seen([("c@x.org", "l.csv")]) == {
        "c@x.org": {"l.csv": to_ts(later + timedelta(days=1))}
    }
    assert store.sightings(later, record=False).first_seen([("c@x.org", "m.csv")]) == {
        "c@x.org": {"m.csv": to_ts(later)}
    }


def test_planning_keeps_the_page_cache_bounded_and_temp_data_on_disk(
    sqlite_store: SqliteStore,
) -> None:
    # A larger cache (or temporary tables in memory) made peak RSS grow with the list.
    plan(sqlite_store, planned("a@x.org", "k1"))
    db = sqlite_store._db
    assert db.execute("PRAGMA cache_size").fetchone()[0] == -32768
    assert db.execute("PRAGMA temp_store").fetchone()[0] == 1  # FILE


def test_retry_failed_starts_attempts_and_lifetime_afresh(store: AnyStore) -> None:
    plan(store, planned("a@x.org", "k"))
    [first] = store.claim(5, T0)
    store.mark_deferred(first, T0, T0, 451, "later")
    [second] = store.claim(5, T0)
    store.mark_failed(second, T0, 554, "no", False)
    later = T0 + timedelta(days=5)
    assert store.retry_failed(now=later) == 1
    [again] = store.claim(5, later)
    assert again.attempts == 1 and again.first_attempt_at == later


def test_clear_bounce_only_clears_bounces(store: AnyStore) -> None:
    store.mark_bounced("b@x.org", T0, "550 5.1.1 no such user")
    store.unsubscribe("u@x.org", T0)
    assert store.is_blocked("b@x.org") and store.is_blocked("u@x.org")
    assert store.clear_bounce("B@X.org") is True
    assert not store.is_blocked("b@x.org")
    assert store.clear_bounce("u@x.org") is False  # an unsubscribe is the person's choice
    assert store.is_blocked("u@x.org")
    assert store.clear_bounce("b@x.org") is False  # nothing left to clear
