"""Attacks on the sender's loop writer (state/postgres_writer.py) on a real PostgreSQL.

A write cancelled while its reply is still on the way must not poison the connection
for the next one; odd and long addresses must reach the server as psycopg would send
them; a broken connection must fail the write in flight and every later one cleanly.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from hashlib import sha256

import psycopg
import pytest

from statement_feeds.errors import StoreError
from statement_feeds.state.api import Delivery, LedgerCounts, Outcome, PlannedDelivery
from statement_feeds.state.postgres import PostgresStore

T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)


def _claimed(store: PostgresStore, emails: list[str]) -> list[Delivery]:
    store.sync_subscribers(emails, T0)
    planned = [PlannedDelivery(e, "", "en", ("s-en",), ("s",)) for e in emails]
    store.plan_edition(
        "daily", T0, T0, planned, lambda e, m: f"<{e}.{sha256(m.encode()).hexdigest()}@example.org>"
    )
    claimed = {d.email: d for d in store.claim(len(emails), T0)}
    return [claimed[e] for e in emails]


def _states(pg_url: str) -> dict[str, str]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return {str(e): str(s) for e, s in conn.execute("SELECT email, state FROM deliveries")}


def test_a_write_cancelled_mid_flight_does_not_poison_the_next(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        first, second = _claimed(store, ["first@x.org", "second@x.org"])
        writer = store.loop_writer()
        try:
            with psycopg.connect(pg_url) as locker:  # holds first's row: the write waits
                locker.execute("SELECT 1 FROM deliveries WHERE email = 'first@x.org' FOR UPDATE")

                async def go() -> list[bool]:
                    stuck = asyncio.create_task(writer.record([], [first], T0))
                    await asyncio.sleep(0.3)
                    assert not stuck.done()  # on the wire, waiting for the lock
                    stuck.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await stuck
                    locker.commit()  # the server finishes the cancelled write meanwhile
                    return await asyncio.wait_for(writer.record([], [second], T0), 5)

                assert asyncio.run(go()) == [True]
        finally:
            writer.close()
        # The cancelled write was the server's to finish: 'sending', as a hand-over the
        # sender gave up on (recovered or taken over later); the next one went through.
        assert _states(pg_url) == {"first@x.org": "sending", "second@x.org": "sending"}


ODD = [
    '"quo\\"ted"@x.org',
    "back\\slash@x.org",
    "{braces}@x.org",
    "com,ma@x.org",
    "NULL@x.org",
    " spaced @x.org",
    "ünïcødé@exämple.org",
    "日本語@例え.jp",
    "a" * 3000 + "@x.org",
]


def test_odd_and_long_addresses_are_handed_over_and_confirmed(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        deliveries = _claimed(store, ODD)
        writer = store.loop_writer()
        try:
            allowed = asyncio.run(writer.record([], deliveries, T0))
            assert allowed == [True] * len(ODD)
            assert store.counts() == LedgerCounts(sending=len(ODD))
            sent = [Outcome(d, "sent") for d in deliveries]
            assert asyncio.run(writer.record(sent, [], T0)) == []
            assert store.counts() == LedgerCounts(sent=len(ODD))
        finally:
            writer.close()
        assert set(_states(pg_url)) == set(ODD)


def test_a_connection_lost_between_writes_fails_every_later_write(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        first, second = _claimed(store, ["first@x.org", "second@x.org"])
        writer = store.loop_writer()
        try:

            async def go() -> None:
                assert await writer.record([], [first], T0) == [True]
                with psycopg.connect(pg_url, autocommit=True) as admin:
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND query LIKE '%%unnest(%%'"
                        " AND pid <> pg_backend_pid()"
                    )
                await asyncio.sleep(0.2)  # the loop sees the socket close, no write waiting
                for _ in range(2):
                    with pytest.raises(StoreError, match="cannot write"):
                        await asyncio.wait_for(writer.record([], [second], T0), 5)

            asyncio.run(go())
        finally:
            writer.close()
        assert store.counts() == LedgerCounts(pending=1, sending=1)


def test_a_connection_lost_while_a_write_waits_fails_it(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        first, second = _claimed(store, ["first@x.org", "second@x.org"])
        writer = store.loop_writer()
        try:
            with psycopg.connect(pg_url) as locker:  # the write waits for this lock
                locker.execute("SELECT 1 FROM deliveries WHERE email = 'first@x.org' FOR UPDATE")

                async def go() -> None:
                    waiting = asyncio.create_task(writer.record([], [first], T0))
                    await asyncio.sleep(0.3)
                    assert not waiting.done()
                    with psycopg.connect(pg_url, autocommit=True) as admin:
                        admin.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                            " AND query LIKE '%%unnest(%%'"
                        )
                    with pytest.raises(StoreError, match="cannot write"):
                        await asyncio.wait_for(waiting, 5)
                    with pytest.raises(StoreError, match="cannot write"):
                        await asyncio.wait_for(writer.record([], [second], T0), 5)

                asyncio.run(go())
        finally:
            writer.close()
        assert store.counts() == LedgerCounts(pending=2)  # the killed write was rolled back
