"""The sender's loop writer on a real PostgreSQL (state/postgres_writer.py).

Its arrays are text literals of our own making: the property test compares them with
psycopg's adaptation through the server. Its writes are the store's ``record``: the
same states, the same refusals, the same errors, without a thread.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statement_feeds.errors import StoreError
from statement_feeds.state.api import Delivery, LedgerCounts, Outcome, PlannedDelivery
from statement_feeds.state.postgres import PostgresStore
from statement_feeds.state.postgres_writer import LoopWriter, text_array

T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)
# Addresses come from UTF-8 files: no lone surrogates; PostgreSQL text holds no NUL.
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)


@pytest.fixture
def conn(pg_url: str) -> psycopg.Connection[object]:
    with psycopg.connect(pg_url, autocommit=True) as connection:
        yield connection  # type: ignore[misc]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=st.lists(TEXT, max_size=6), numbers=st.lists(st.integers(-(2**63), 2**63 - 1)))
def test_text_arrays_read_as_psycopg_sends_them(
    conn: psycopg.Connection[object], items: list[str], numbers: list[int]
) -> None:
    ours, theirs = conn.execute(
        "SELECT %s::text::text[], %s::text[]", (text_array(items).decode(), items)
    ).fetchone() or (None, None)
    assert ours == theirs == items
    [(parsed,)] = conn.execute("SELECT %s::text::bigint[]", (text_array(numbers).decode(),))
    assert parsed == numbers


def _claimed(store: PostgresStore, emails: list[str]) -> list[Delivery]:
    """Claimed, in the order of ``emails``."""
    store.sync_subscribers(emails, T0)
    planned = [PlannedDelivery(e, "", "en", ("s-en",), ("s",)) for e in emails]
    store.plan_edition("daily", T0, T0, planned, lambda e, m: f"<{e}.{m}@example.org>")
    claimed = {d.email: d for d in store.claim(len(emails), T0)}
    return [claimed[e] for e in emails]


def _write(writer: LoopWriter, outcomes: list[Outcome], start: list[Delivery]) -> list[bool]:
    return asyncio.run(writer.record(outcomes, start, T0))


def test_a_turn_confirms_and_hands_over_as_record_does(pg_url: str) -> None:
    emails = ['"odd\\quote"@x.org', "user@x.org", "ünï@x.org", "left@x.org"]
    with PostgresStore(pg_url) as store:
        first, second, third, leaving = _claimed(store, emails)
        writer = store.loop_writer()
        try:
            assert _write(writer, [], [first, second]) == [True, True]
            assert store.counts() == LedgerCounts(pending=2, sending=2)
            assert store.unsubscribe("left@x.org", T0)
            # The replies in, the next hand-overs out; the one who left is cancelled.
            sent = [Outcome(first, "sent"), Outcome(second, "sent")]
            assert _write(writer, sent, [third, leaving]) == [True, False]
            assert store.counts() == LedgerCounts(sent=2, sending=1, cancelled=1)
            # A deferral is not the fast path's: the store's own record writes it.
            later = Outcome(third, "deferred", 451, "busy", T0)
            assert _write(writer, [later], []) == []
            assert store.counts() == LedgerCounts(sent=2, deferred=1, cancelled=1)
        finally:
            writer.close()


def test_a_lost_connection_is_a_store_error_not_a_hang(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        [delivery] = _claimed(store, ["a@x.org"])
        writer = store.loop_writer()
        try:
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND pid <> %s",
                    (store._db.raw.info.backend_pid,),
                )

            async def write() -> list[bool]:
                return await asyncio.wait_for(writer.record([], [delivery], T0), 10)

            with pytest.raises(StoreError, match="cannot write"):
                asyncio.run(write())
            with pytest.raises(StoreError, match="cannot write"):  # and so on, not a hang
                asyncio.run(write())
        finally:
            writer.close()  # quietly, on a broken connection
        assert store.counts() == LedgerCounts(pending=1)  # nothing was handed over


def test_a_write_refused_by_the_server_is_a_store_error(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        [delivery] = _claimed(store, ["a@x.org"])
        writer = store.loop_writer()
        store._db.raw.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'refused on purpose'; END $$;"
            " CREATE TRIGGER refuse BEFORE UPDATE ON deliveries"
            " FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
        try:
            with pytest.raises(StoreError, match="refused on purpose"):
                _write(writer, [], [delivery])
            store._db.raw.execute("DROP TRIGGER refuse ON deliveries")
            assert _write(writer, [], [delivery]) == [True]  # the connection is still usable
        finally:
            writer.close()
