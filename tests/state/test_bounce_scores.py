"""The bounce log of both stores (state/sql_bounces.py): real SQLite files and a real
PostgreSQL database (the ``backend`` fixture runs each test on both)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from pg_helpers import AnyStore
from statement_feeds.errors import StateError
from statement_feeds.state.api import PlannedDelivery
from statement_feeds.state.bounce_api import BounceLog, BounceScore, bounce_log
from statement_feeds.state.postgres import PostgresStore

T0 = datetime(2024, 5, 1, 7, 0, tzinfo=UTC)
WINDOW = timedelta(days=30)


@pytest.fixture
def store(backend: AnyStore) -> AnyStore:
    return backend


def bounce(store: AnyStore, edition: int, at: datetime, *, permanent: bool = True) -> BounceScore:
    return store.record_bounce(
        "Anna@Example.org",
        edition,
        permanent=permanent,
        reason="bounce: 5.1.1 no such user",
        now=at,
        threshold=3,
        reset_after=WINDOW,
    )


def score(store: AnyStore, edition: int, at: datetime, **kw: bool) -> tuple[int, int, bool]:
    result = bounce(store, edition, at, **kw)
    return result.score, result.temporary, result.marked


def test_the_store_is_a_bounce_log(store: AnyStore) -> None:
    assert isinstance(store, BounceLog) and bounce_log(store) is store
    with pytest.raises(StateError, match="keeps no bounce scores"):
        bounce_log(object())


def test_one_per_edition_until_the_threshold_marks_the_address(store: AnyStore) -> None:
    assert score(store, 1, T0) == (1, 0, False)
    assert score(store, 1, T0 + timedelta(hours=1)) == (1, 0, False)  # the same message
    assert score(store, 2, T0 + timedelta(days=1), permanent=False) == (1, 1, False)
    assert score(store, 2, T0 + timedelta(days=1)) == (2, 1, False)
    assert not store.is_blocked("anna@example.org")
    assert score(store, 3, T0 + timedelta(days=2)) == (3, 1, True)
    assert store.is_blocked("anna@example.org")
    assert store.subscriber_status(["anna@example.org"])["anna@example.org"][1] == "bounced"
    assert score(store, 4, T0 + timedelta(days=3)) == (4, 1, False)  # already marked


def test_a_stale_score_starts_again(store: AnyStore) -> None:
    score(store, 1, T0)
    score(store, 2, T0 + timedelta(days=1))
    assert score(store, 3, T0 + timedelta(days=40)) == (1, 0, False)


def test_after_an_unbounce_the_score_starts_again(store: AnyStore) -> None:
    for edition in (1, 2, 3):
        score(store, edition, T0 + timedelta(days=edition))
    assert store.clear_bounce("anna@example.org")
    assert score(store, 4, T0 + timedelta(days=4)) == (1, 0, False)
    assert not store.is_blocked("anna@example.org")


def test_a_lowered_threshold_is_no_unbounce(store: AnyStore) -> None:
    for edition in (1, 2, 3):  # threshold 3 in bounce(): reached, marked
        score(store, edition, T0 + timedelta(days=edition))
    result = store.record_bounce(
        "anna@example.org",
        4,
        permanent=True,
        reason="x",
        now=T0 + timedelta(days=4),
        threshold=2,
        reset_after=WINDOW,
    )
    assert (result.score, result.marked) == (4, False)  # still marked: counts on
    unmarked = store.record_bounce(
        "boris@example.org", 1, permanent=True, reason="x", now=T0, threshold=5,
        reset_after=WINDOW,
    )  # fmt: skip
    assert unmarked.score == 1
    lowered = store.record_bounce(
        "boris@example.org", 2, permanent=True, reason="x", now=T0, threshold=2,
        reset_after=WINDOW,
    )  # fmt: skip
    assert (lowered.score, lowered.marked) == (2, True)


def test_marking_cancels_the_address_pending_deliveries(store: AnyStore) -> None:
    planned = PlannedDelivery("anna@example.org", "Anna", "en", ("s1",), ("k1",))
    edition = store.plan_edition("daily", T0, T0, [planned], lambda e, a: f"<{e}.x@example.org>")
    for number in (1, 2, 3):
        score(store, number, T0 + timedelta(days=number))
    (row,) = store.deliveries(edition.id)
    assert row.state == "cancelled"


def test_deliveries_are_found_by_edition_and_message_id(store: AnyStore) -> None:
    people = [
        PlannedDelivery(email, "", "en", ("s1",), ("k1",))
        for email in ("anna@example.org", "boris@example.org")
    ]
    edition = store.plan_edition(
        "daily", T0, T0, people, lambda e, a: f"<{e}.{a.split('@')[0]}@example.org>"
    )
    assert sorted(store.edition_addresses(edition.id)) == ["anna@example.org", "boris@example.org"]
    assert store.edition_addresses(edition.id + 1) == []
    found = store.delivery_for_message_id(f"<{edition.id}.boris@example.org>")
    assert found == (edition.id, "boris@example.org")
    for unknown in (f"<{edition.id}.carl@example.org>", "<x.boris@example.org>", "", "<7>"):
        assert store.delivery_for_message_id(unknown) is None


def test_two_processes_counting_at_once_on_postgresql_lose_no_bounce(pg_url: str) -> None:
    # Daemons sharing a PostgreSQL state may count bounces of one address at the same
    # time: the second waits for the first's row and counts on from its score.
    results: list[BounceScore] = []

    def other_process() -> None:
        with PostgresStore(pg_url) as other:
            results.append(bounce(other, 3, T0 + timedelta(days=2)))

    with PostgresStore(pg_url) as first:
        bounce(first, 1, T0)
        with first.transaction():
            assert bounce(first, 2, T0 + timedelta(days=1)).score == 2
            thread = threading.Thread(target=other_process)
            thread.start()
            thread.join(0.5)
            assert thread.is_alive()  # waiting for the first's transaction
        thread.join(10)
    assert [(r.score, r.marked) for r in results] == [(3, True)]
