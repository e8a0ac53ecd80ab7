"""A shared ledger's sender claims its next batch ahead, in a thread, on a connection of
its own (``Ledger.claimer`` through ``claims.ClaimsAhead``; ``send._Run._claim_ahead``),
so its loop never stands still for a claim. What must hold: everyone is mailed once, the
claims go through the claimer, a stop releases what it claimed ahead, a claimer that
fails stops the run with nothing lost, and a short run opens no claimer at all. SQLite
has no claimer: its sender claims in the loop as before.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from test_send import SENDER, START, FakeClock, compose, plan, recipients, run, server, smtp  # noqa: F401

from pg_helpers import AnyStore, Backend
from smtp_server import RecordingServer
from statement_feeds.digests.send import DeliverySummary, Progress, deliver
from statement_feeds.errors import StateError, StoreError
from statement_feeds.state import postgres
from statement_feeds.state.api import Delivery, LedgerCounts


class CountedClaims:
    """The real store; its claimer's claims counted, ``delay`` seconds late (in the
    claimer's thread) and failing from the ``fail_at``-th."""

    def __init__(
        self, inner: AnyStore, fail_at: int | None = None, delay: float = 0, *, unmade: bool = False
    ) -> None:
        self._store = inner
        self.fail_at = fail_at
        self.unmade = unmade  # the claimer cannot be made (its connection is refused)
        self.delay = delay
        self.ahead: list[int] = []  # the size of each claim made ahead
        self.made = self.closed = 0

    def claimer(self) -> Any:
        if self.unmade:
            raise StoreError("cannot open the state database: the server went away")
        self.made += 1
        claims = self._store.claimer()
        return None if claims is None else _Counted(self, claims)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class _Counted:
    def __init__(self, owner: CountedClaims, inner: Any) -> None:
        self._owner = owner
        self._inner = inner

    def claim(self, limit: int, now: Any) -> list[Delivery]:
        owner = self._owner
        time.sleep(owner.delay)
        if owner.fail_at is not None and len(owner.ahead) + 1 >= owner.fail_at:
            raise StoreError("cannot claim in the state database: the server went away")
        taken = list(self._inner.claim(limit, now))
        owner.ahead.append(len(taken))
        return taken

    def close(self) -> None:
        self._owner.closed += 1
        self._inner.close()


def emails(count: int) -> list[str]:
    return [f"u{i:03}@example.org" for i in range(count)]


def planned_on_a_shared_ledger(backend: AnyStore, make_backend: Backend, count: int) -> list[str]:
    """``count`` addresses planned; the test skipped on SQLite, which has no claimer
    (tests/digests/test_send.py covers its stops and failures)."""
    if make_backend.name == "sqlite":
        pytest.skip("SQLite has no claimer: its sender claims in the loop")
    everyone = emails(count)
    plan(backend, everyone)
    return everyone


def held(make_backend: Backend) -> int:
    """Rows still claimed or handed over: none once a run has ended."""
    rows = make_backend.sql(
        "SELECT COUNT(*) FROM deliveries WHERE claimed_by IS NOT NULL OR state = 'sending'"
    )
    return int(rows[0][0])


def test_claims_ahead_mail_everyone_once(
    backend: AnyStore,
    make_backend: Backend,
    server: RecordingServer,  # noqa: F811
) -> None:
    everyone = emails(70)
    plan(backend, everyone)
    counted = CountedClaims(backend)
    summary = run(counted, smtp(server), FakeClock(), batch=8)  # type: ignore[arg-type]
    assert summary.sent == 70
    assert recipients(server) == sorted(everyone)  # nobody twice
    assert backend.counts() == LedgerCounts(sent=70)
    if make_backend.name == "sqlite":
        assert counted.ahead == [] and counted.closed == 0  # no claimer: claims in the loop
    else:
        # All but the first batch were claimed ahead; the last, short, ended the run.
        assert sum(counted.ahead) == 70 - 8 and counted.ahead[-1] < 8
        assert counted.closed == 1
        assert held(make_backend) == 0


def test_a_stop_releases_the_batch_claimed_ahead(
    backend: AnyStore,
    make_backend: Backend,
    server: RecordingServer,  # noqa: F811
) -> None:
    everyone = planned_on_a_shared_ledger(backend, make_backend, 40)
    # The claim ahead is still in flight when the stop comes: the run waits for it and
    # releases its rows too (they would otherwise stay claimed until the lease lapsed).
    counted = CountedClaims(backend, delay=0.3)
    stop = asyncio.Event()

    def on_progress(progress: Progress) -> None:
        if progress.sent >= 6:  # past half of the first batch: the next one is claimed
            stop.set()

    async def first_run() -> DeliverySummary:
        messenger = smtp(server)
        try:
            return await deliver(
                counted, messenger, compose, FakeClock(), sender=SENDER,  # type: ignore[arg-type]
                concurrency=3, batch=10, stop=stop, progress=on_progress,
            )  # fmt: skip
        finally:
            await messenger.close()

    summary = asyncio.run(first_run())
    assert summary.stopped and counted.ahead and counted.closed == 1
    assert held(make_backend) == 0  # another sender can take every row at once
    assert run(backend, smtp(server), FakeClock()).sent == 40 - summary.sent
    assert recipients(server) == sorted(everyone)


@pytest.mark.parametrize("unmade", [False, True], ids=["claim fails", "connection refused"])
def test_a_failing_claimer_stops_the_run_and_loses_nothing(
    backend: AnyStore,
    make_backend: Backend,
    server: RecordingServer,  # noqa: F811
    unmade: bool,
) -> None:
    everyone = planned_on_a_shared_ledger(backend, make_backend, 40)
    # Either the claimer cannot be made, or its second claim fails.
    failing = CountedClaims(backend, fail_at=2, unmade=unmade)
    with pytest.raises(StateError, match="server went away"):
        run(failing, smtp(server), FakeClock(), batch=8)  # type: ignore[arg-type]
    assert failing.closed == (0 if unmade else 1)
    sent = len(recipients(server))
    # The first batch (8) was claimed in the loop; a refused claimer fails the first
    # claim ahead, half-way through it, a failing claim the second.
    assert backend.counts().sent == sent and (1 if unmade else 8) <= sent < 40
    assert held(make_backend) == 0  # what was claimed and not sent was released
    assert run(backend, smtp(server), FakeClock()).sent == 40 - sent
    assert recipients(server) == sorted(everyone)


def test_a_run_shorter_than_half_a_batch_opens_no_claimer(
    backend: AnyStore,
    server: RecordingServer,  # noqa: F811
) -> None:
    plan(backend, emails(3))
    counted = CountedClaims(backend)
    assert run(counted, smtp(server), FakeClock(), batch=8).sent == 3  # type: ignore[arg-type]
    assert counted.made == 0 and counted.closed == 0


def test_the_claimer_claims_as_its_store_without_migrating_again(
    backend: AnyStore, make_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned_on_a_shared_ledger(backend, make_backend, 5)

    def migrate(*args: Any) -> None:
        raise AssertionError("the claimer's store checked the migrations again")

    monkeypatch.setattr(postgres, "migrate", migrate)
    claimer = backend.claimer()
    assert claimer is not None
    try:
        taken = claimer.claim(10, START)
    finally:
        claimer.close()
    assert len(taken) == 5
    owners = make_backend.sql("SELECT DISTINCT claimed_by FROM deliveries")
    assert owners == [(backend.claimant,)]  # renewed and released by the sender's store
