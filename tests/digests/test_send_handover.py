"""The hand-over gate: the envelope opens while the hand-over commits, the data waits.

A sender overlaps its ledger write with MAIL and RCPT (``record.GroupCommit.hand_over``,
``Messenger.send(ready=...)``). What must still hold: no message's data reaches the
server before its ``sending`` row is committed, so the ledger never shows fewer
unknown fates than the server saw; a refused or failed hand-over sends nothing and
leaves the connection usable.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from test_send import FakeClock, plan, recipients, run, server, smtp, store  # noqa: F401 (fixtures)

from pg_helpers import AnyStore, Backend
from smtp_server import RecordingServer
from statement_feeds.config import SmtpConfig
from statement_feeds.digests.mailer import MaildirMessenger, SmtpMessenger
from statement_feeds.errors import StateError
from statement_feeds.state.api import LedgerCounts, LoopWriter


class SlowWrites:
    """The real store, with each group write 20 ms late: on a shared ledger (written from
    the loop, which goes on meanwhile) the SMTP dialogue would overtake it if anything
    but the gate held the data back."""

    def __init__(self, inner: AnyStore) -> None:
        self._store = inner

    def record(self, *args: Any) -> Any:
        time.sleep(0.02)
        return self._store.record(*args)

    def loop_writer(self) -> LoopWriter | None:
        writer = self._store.loop_writer()
        return None if writer is None else SlowLoopWriter(writer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class SlowLoopWriter:
    def __init__(self, inner: LoopWriter) -> None:
        self._inner = inner

    async def record(self, *args: Any) -> list[bool]:
        await asyncio.sleep(0.02)
        return await self._inner.record(*args)

    def close(self) -> None:
        self._inner.close()


def test_no_data_reaches_the_server_before_its_hand_over_is_committed(
    store: AnyStore,  # noqa: F811 (the fixtures imported above)
    server: RecordingServer,  # noqa: F811
    make_backend: Backend,
) -> None:
    no_data_before_commit(store, server, make_backend)


def test_with_pipelining_too(store: AnyStore, make_backend: Backend) -> None:  # noqa: F811
    # MAIL, RCPT and DATA go out at once, before the commit; the message still waits.
    with RecordingServer(pipelining=True) as pipelining:
        no_data_before_commit(store, pipelining, make_backend)
        assert pipelining.pipelined and all(pipelining.pipelined)


def no_data_before_commit(store: AnyStore, server: RecordingServer, make_backend: Backend) -> None:  # noqa: F811 (a parameter here)
    emails = [f"u{i:02}@example.org" for i in range(60)]
    plan(store, emails)
    seen: list[tuple[str, list[str]]] = []

    def at_data(received: int) -> None:  # the server's thread, before its reply
        last = server.messages[received - 1].recipients[0]
        sending = [
            row[0]
            for row in make_backend.sql("SELECT email FROM deliveries WHERE state = 'sending'")
        ]
        seen.append((last, sending))

    server.handler.after_data = at_data
    summary = run(SlowWrites(store), smtp(server), FakeClock(), concurrency=3)  # type: ignore[arg-type]
    assert summary.sent == len(emails) and len(seen) == len(emails)
    for email, sending in seen:
        # Committed before the data came; and at most one unknown fate per connection,
        # so the previous reply of each connection was recorded before this data.
        assert email in sending, f"{email}: data before its hand-over was committed"
        assert len(sending) <= 3, sending
    assert store.counts() == LedgerCounts(sent=len(emails))


def test_a_refused_hand_over_sends_nothing_and_keeps_the_connection(
    server: RecordingServer,  # noqa: F811 (the fixture imported above)
) -> None:
    before = server.connections  # the controller's own start-up probe
    assert asyncio.run(three_hand_overs(server)) == [False, False, True]
    assert recipients(server) == ["a@example.org"]  # only the cleared one
    # MAIL and RCPT went out for all three; the first two were reset, the connection kept.
    assert server.commands.count("RCPT a@example.org") == 3
    assert server.connections == before + 1


def test_with_pipelining_a_refused_hand_over_costs_the_connection() -> None:
    # DATA is open when the ledger says no: only hanging up sends nothing.
    with RecordingServer(pipelining=True) as pipelining:
        before = pipelining.connections
        assert asyncio.run(three_hand_overs(pipelining)) == [False, False, True]
        assert recipients(pipelining) == ["a@example.org"]
        assert pipelining.commands.count("RCPT a@example.org") == 3
        assert pipelining.connections == before + 3


async def three_hand_overs(at: RecordingServer) -> list[bool]:
    config = SmtpConfig(host=at.host, port=at.port, security="none", concurrency=1)
    messenger = SmtpMessenger(config, local_hostname="client.test")
    results = []
    for ready in (False, StateError("disk full"), True):
        gate: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if isinstance(ready, Exception):
            gate.set_exception(ready)
        else:
            gate.set_result(ready)
        message = b"Subject: hi\r\n\r\nhello\r\n"
        results.append(await messenger.send("news@example.org", "a@example.org", message, gate))
    await messenger.close()
    return results


def test_the_maildir_writes_nothing_for_a_refused_hand_over(tmp_path: Path) -> None:
    async def go(ready: bool) -> bool:
        gate: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        gate.set_result(ready)
        return await MaildirMessenger(tmp_path).send("n@example.org", "a@example.org", b"x", gate)

    assert asyncio.run(go(False)) is False
    assert list((tmp_path / "new").iterdir()) == []
    assert asyncio.run(go(True)) is True
    assert len(list((tmp_path / "new").iterdir())) == 1
