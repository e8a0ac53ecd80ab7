"""When ``record.GroupCommit`` writes: the linger, and after a failed write.

A real PostgreSQL ledger (its writer runs from the loop); each group write waits at a
gate the test opens, so what is in flight and what queues behind it is known exactly.
The linger is set far longer than the test may take: a write that waits for it fails
the test's time limit instead of passing by chance.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_send import START, FakeClock, plan

from statement_feeds.digests.record import GroupCommit
from statement_feeds.errors import StateError
from statement_feeds.state.api import Delivery, LoopWriter, Outcome
from statement_feeds.state.postgres import PostgresStore

LONG = 3600.0  # the linger: never reached within a test
SOON = 5.0  # seconds a test waits for what must happen at once


class GatedWriter:
    """The store's real loop writer; each write waits until the test lets it through
    (``opened``), or fails there (``broken``). ``calls``: what each write carried."""

    def __init__(self, inner: LoopWriter) -> None:
        self._inner = inner
        self.calls: list[tuple[list[str], list[str]]] = []
        self.started = asyncio.Event()
        self.opened = asyncio.Event()
        self.broken = False

    async def record(self, outcomes: Any, start: Any, now: Any) -> list[bool]:
        self.calls.append(([o.delivery.email for o in outcomes], [d.email for d in start]))
        self.started.set()
        await self.opened.wait()
        if self.broken:
            raise StateError("the database went away")
        return await self._inner.record(outcomes, start, now)

    def close(self) -> None:
        self._inner.close()


class GatedLedger:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self.writer: GatedWriter | None = None

    def loop_writer(self) -> GatedWriter:
        self.writer = GatedWriter(self._store.loop_writer())
        return self.writer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _claimed(store: PostgresStore, count: int) -> list[Delivery]:
    plan(store, [f"r{n}@example.org" for n in range(count)])
    return sorted(store.claim(count, START), key=lambda d: d.email)


def test_a_lone_hand_over_still_lingers_for_company(pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        (only,) = _claimed(store, 1)
        asyncio.run(_lingers(GatedLedger(store), only))


async def _lingers(ledger: GatedLedger, only: Delivery) -> None:
    records = GroupCommit(ledger, FakeClock(), workers=2, linger=LONG)  # type: ignore[arg-type]
    writer = ledger.writer
    assert writer is not None
    writer.opened.set()
    try:
        handed = records.hand_over(only)
        with pytest.raises(TimeoutError):  # nothing in flight: it waits for the others
            await asyncio.wait_for(asyncio.shield(handed), 0.2)
        assert writer.calls == []
        records.flush()
        assert await asyncio.wait_for(handed, SOON) is True
    finally:
        await records.drain()
        records.close()


def test_after_a_failed_write_the_queued_ones_fail_and_the_retry_lingers(
    pg_url: str,
) -> None:
    with PostgresStore(pg_url) as store:
        first, second, third = _claimed(store, 3)
        asyncio.run(_failed_write(GatedLedger(store), first, second, third))


async def _failed_write(ledger: GatedLedger, *deliveries: Delivery) -> None:
    first, second, third = deliveries
    records = GroupCommit(ledger, FakeClock(), workers=3, linger=LONG)  # type: ignore[arg-type]
    writer = ledger.writer
    assert writer is not None
    try:
        handed = records.hand_over(first)
        records.flush()
        await asyncio.wait_for(writer.started.wait(), SOON)
        queued = records.hand_over(second)
        records.add(Outcome(third, "sent"))  # an outcome to retry after the failure
        writer.broken = True
        writer.opened.set()
        with pytest.raises(StateError):
            await asyncio.wait_for(handed, SOON)
        with pytest.raises(StateError):  # queued behind the failed write: never written
            await asyncio.wait_for(queued, SOON)
        await asyncio.sleep(0.2)
        # The outcome is kept for a retry, which waits for the linger (or the drain at
        # the end of the run), not written in a tight loop against a failing database.
        assert len(writer.calls) == 1
        assert records.unrecorded == 1
    finally:
        writer.broken = False
        await records.drain()
        records.close()
    assert len(writer.calls) == 2  # the drain's retry wrote the outcome
    assert records.unrecorded == 0
