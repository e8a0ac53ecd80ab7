"""Attacks on the sending pipeline's hand-over gate and its ledger writer.

Real aiosmtpd server, real SQLite and PostgreSQL ledgers. What must hold: every
``deliver`` closes the connection of its loop writer, also when it fails before
sending; a ledger write that never completes (cancelled) fails its hand-overs
instead of leaving their workers waiting for ever; no data before 'sending'.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest
from test_send import (  # noqa: F401 (fixtures)
    START,
    FakeClock,
    plan,
    run,
    server,
    smtp,
)

from smtp_server import RecordingServer
from statement_feeds.digests.record import GroupCommit
from statement_feeds.errors import StateError
from statement_feeds.state.api import Delivery, LedgerCounts, PlannedDelivery
from statement_feeds.state.postgres import PostgresStore

# The loop writer's connection: the last statement it ran is the prepared write.
_WRITERS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND pid <> pg_backend_pid() AND query LIKE '%%unnest(%%'"
)


def _writers(pg_url: str) -> int:
    with psycopg.connect(pg_url, autocommit=True) as admin:
        row = admin.execute(_WRITERS).fetchone()
    return int(row[0]) if row else 0


def test_a_run_failing_before_it_sends_closes_its_ledger_writer(
    pg_url: str,
    server: RecordingServer,  # noqa: F811
) -> None:
    with PostgresStore(pg_url) as broken:
        plan(broken, ["a@example.org"])
        with psycopg.connect(pg_url, autocommit=True) as admin:  # the store's own connection
            admin.execute("SELECT pg_terminate_backend(%s)", (broken._db.raw.info.backend_pid,))
        with pytest.raises(StateError) as caught:  # counts() fails: the writer was made
            run(broken, smtp(server), FakeClock())
        # The error holds the run (its traceback): its writer must be closed all the same.
        assert _writers(pg_url) == 0, "deliver() left its loop writer's connection open"
        del caught
    assert server.messages == []


def test_repeated_runs_leave_no_writer_behind(
    pg_url: str,
    server: RecordingServer,  # noqa: F811
) -> None:
    with PostgresStore(pg_url) as ledger:
        for batch in range(3):
            plan_more = [f"u{batch}-{i}@example.org" for i in range(5)]
            ledger.sync_subscribers(plan_more, START)
            ledger.plan_edition(
                "daily",
                START - timedelta(days=batch),
                START - timedelta(days=batch),
                [PlannedDelivery(e, "", "en", ("s1",), ("k1",)) for e in plan_more],
                lambda edition, email: f"<{edition}.{email}>",
            )
            assert run(ledger, smtp(server), FakeClock()).sent == 5
            assert _writers(pg_url) == 0
        assert ledger.counts() == LedgerCounts(sent=15)


def test_a_cancelled_write_fails_its_hand_overs(pg_url: str) -> None:
    """Cancel the group write itself (as the loop's shutdown does): its hand-overs must
    fail with a StateError (their workers send nothing and stop), not wait for ever, and
    no further hand-over is allowed."""
    with PostgresStore(pg_url) as ledger:
        plan(ledger, ["a@example.org", "b@example.org"])
        first, second = ledger.claim(2, START)
        asyncio.run(_cancel_the_write(ledger, first, second))
    assert _writers(pg_url) == 0


async def _cancel_the_write(ledger: PostgresStore, first: Delivery, second: Delivery) -> None:
    records = GroupCommit(ledger, FakeClock(), workers=1, linger=0)
    try:
        before = asyncio.all_tasks()
        handover = records.hand_over(first)
        await asyncio.sleep(0)  # the flush runs; a shared ledger's write is a task
        writes = asyncio.all_tasks() - before
        assert writes  # a shared ledger's write is a task of the loop
        for write in writes:
            write.cancel()
        with pytest.raises(StateError):
            await asyncio.wait_for(handover, 5)
        with pytest.raises(StateError):
            records.hand_over(second)
        await asyncio.wait_for(records.drain(), 5)
    finally:
        records.close()


def test_the_writer_connection_lost_mid_edition_loses_nothing(
    pg_url: str,
    server: RecordingServer,  # noqa: F811
) -> None:
    """The loop writer's backend killed at the fifth message: the run stops with a
    StateError; nothing reached the server that the ledger does not show as 'sent' or
    'sending' (at most one per connection); a second run sends the rest, and only the
    unknown fates twice."""
    emails = [f"u{i:03}@example.org" for i in range(120)]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        with PostgresStore(pg_url) as ledger:
            plan(ledger, emails)

            def kill_the_writer(received: int) -> None:
                if received == 5:
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        " AND query LIKE '%%unnest(%%'"
                    )

            server.handler.after_data = kill_the_writer
            with pytest.raises(StateError):
                run(ledger, smtp(server), FakeClock(), batch=10)
            states = dict(admin.execute("SELECT email, state FROM deliveries").fetchall())
        received = [r for m in server.messages if not m.dropped for r in m.recipients]
        assert 5 <= len(received) < len(emails)
        assert all(states[r] in ("sent", "sending") for r in received)
        assert sum(s == "sending" for s in states.values()) <= 3
        assert all(s in ("sent", "sending", "pending") for s in states.values())
        unknown = {e for e, s in states.items() if s == "sending"}

        server.handler.after_data = None
        clock = FakeClock()
        clock.now = START + timedelta(hours=1)  # the dead run's leases lapsed
        with PostgresStore(pg_url) as ledger:
            run(ledger, smtp(server), clock)
            assert ledger.counts() == LedgerCounts(sent=len(emails))
    again = [r for m in server.messages if not m.dropped for r in m.recipients]
    assert set(again) == set(emails)
    twice = {r for r in again if again.count(r) > 1}
    assert twice <= unknown
    assert _writers(pg_url) == 0


# The first write after this is made fails, every later one succeeds (a sequence is not
# rolled back with the failed transaction): a transient failure of the ledger.
FAIL_ONCE = """
CREATE SEQUENCE fail_once;
CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('fail_once') = 1 THEN
        RAISE EXCEPTION 'one write refused on purpose';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fail_once BEFORE UPDATE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION fail_once();
"""


def test_hand_overs_queued_behind_a_failed_write_are_not_written_after_it(pg_url: str) -> None:
    """A write fails while another worker's hand-over waits behind it: that one must
    fail too (no hand-over after a failed write), even if the next write would work."""
    with PostgresStore(pg_url) as ledger:
        plan(ledger, ["a@example.org", "b@example.org"])
        first, second = ledger.claim(2, START)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(FAIL_ONCE)

        async def go() -> None:
            records = GroupCommit(ledger, FakeClock(), workers=2, linger=0)
            try:
                failing = records.hand_over(first)
                await asyncio.sleep(0)  # the write is on its way
                queued = records.hand_over(second)  # arrives while it is in flight
                with pytest.raises(StateError, match="refused on purpose"):
                    await asyncio.wait_for(failing, 5)
                with pytest.raises(StateError):
                    await asyncio.wait_for(queued, 5)
                await asyncio.wait_for(records.drain(), 5)
            finally:
                records.close()

        asyncio.run(go())
        assert ledger.counts() == LedgerCounts(pending=2)  # nothing handed over
