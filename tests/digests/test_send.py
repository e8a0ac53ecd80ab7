"""deliver(): the real SQLite ledger, the real SMTP messenger, a real aiosmtpd server."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from disk_helpers import fill_disk
from pg_helpers import AnyStore, Backend
from smtp_server import ImplicitTlsServer, RecordingServer
from statement_feeds.config import SmtpConfig
from statement_feeds.digests.mailer import MaildirMessenger, Messenger, SmtpMessenger
from statement_feeds.digests.send import DeliverySummary, Progress, backoff, deliver
from statement_feeds.errors import ConfigError, DeliveryHalted, StateError
from statement_feeds.state.api import Delivery, LedgerCounts, PlannedDelivery
from statement_feeds.state.sqlite import SqliteStore

START = datetime(2024, 5, 1, 7, 0, tzinfo=UTC)
SENDER = "bounces@example.org"


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def compose(delivery: Delivery) -> bytes:
    """A small real message; composition itself is tested in tests/domain/test_digest.py."""
    return (
        f"From: {SENDER}\r\nTo: {delivery.email}\r\nMessage-ID: {delivery.message_id}\r\n"
        f"Subject: edition {delivery.edition_id}\r\n\r\n{' '.join(delivery.statement_ids)}\r\n"
    ).encode()


@pytest.fixture
def store(backend: AnyStore) -> AnyStore:
    """Each test runs on SQLite and on PostgreSQL (a shared ledger: no recovery at start,
    leases renewed); a stop releases the claimed rest on both."""
    return backend


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as smtp:
        yield smtp


def plan(store: AnyStore, emails: list[str]) -> None:
    store.sync_subscribers(emails, START - timedelta(days=1))
    store.plan_edition(
        "daily",
        START,
        START,
        [PlannedDelivery(e, "", "en", ("s1", "s2"), ("k1", "k2")) for e in emails],
        lambda edition, email: f"<{edition}.{email.replace('@', '.')}@example.org>",
    )


def smtp(server: RecordingServer, security: str = "none") -> SmtpMessenger:
    config = SmtpConfig(
        host=server.host, port=server.port, security=security, concurrency=3, timeout=5.0
    )
    return SmtpMessenger(config, local_hostname="client.test")


def run(
    store: AnyStore, messenger: Messenger, clock: FakeClock, **options: object
) -> DeliverySummary:
    async def go() -> DeliverySummary:
        try:
            return await deliver(
                store,
                messenger,
                compose,
                clock,
                sender=SENDER,
                **{"concurrency": 3, **options},  # type: ignore[arg-type]
            )
        finally:
            await messenger.close()

    return asyncio.run(go())


def recipients(server: RecordingServer) -> list[str]:
    return sorted(r for m in server.messages if not m.dropped for r in m.recipients)


def test_everyone_gets_the_edition_once(store: AnyStore, server: RecordingServer) -> None:
    emails = [f"user{i}@example.org" for i in range(40)]
    plan(store, emails)
    seen: list[Progress] = []
    summary = run(store, smtp(server), FakeClock(), batch=7, progress=seen.append)
    assert (summary.sent, summary.total, summary.failed, summary.deferred) == (40, 40, 0, 0)
    assert recipients(server) == sorted(emails)
    assert all(len(m.recipients) == 1 for m in server.messages)
    assert store.counts().sent == 40
    assert seen[-1] == Progress(sent=40, total=40, deferred=0, failed=0)
    # Nothing is due any more: a second run sends nothing.
    assert run(store, smtp(server), FakeClock()).sent == 0
    assert len(server.messages) == 40


def test_temporary_and_permanent_refusals(store: AnyStore, server: RecordingServer) -> None:
    plan(store, ["later@example.org", "gone@example.org", "fine@example.org"])
    server.rcpt_replies["later@example.org"] = "451 4.3.0 greylisted"
    server.rcpt_replies["gone@example.org"] = "550 5.1.1 no such user"
    clock = FakeClock()
    summary = run(store, smtp(server), clock)
    assert (summary.sent, summary.deferred, summary.failed, summary.bounced) == (1, 1, 1, 1)
    assert store.is_blocked("gone@example.org")
    retry_at = store.next_attempt_at()
    assert retry_at == START + backoff(1, "later@example.org")
    assert timedelta(seconds=48) <= retry_at - START <= timedelta(seconds=72)

    # Not due yet: the deferred one waits (the next attempt time is in the ledger).
    assert run(store, smtp(server), clock).sent == 0
    del server.rcpt_replies["later@example.org"]
    clock.now = retry_at
    assert run(store, smtp(server), clock).sent == 1
    assert recipients(server) == ["fine@example.org", "later@example.org"]
    assert store.counts() == type(store.counts())(sent=2, failed=1)


def test_backoff_doubles_up_to_an_hour() -> None:
    delays = [backoff(n, "a@example.org") for n in range(1, 10)]
    factor = delays[0] / timedelta(minutes=1)
    assert 0.8 <= factor <= 1.2
    close = timedelta(milliseconds=1)  # timedelta arithmetic rounds to microseconds
    assert abs(delays[1] - delays[0] * 2) < close and abs(delays[3] - delays[0] * 8) < close
    assert abs(delays[-1] - timedelta(hours=1) * factor) < close


def test_gives_up_after_the_retry_lifetime(store: AnyStore, server: RecordingServer) -> None:
    plan(store, ["later@example.org"])
    server.rcpt_replies["later@example.org"] = "451 4.3.0 try later"
    clock = FakeClock()
    lifetime = timedelta(minutes=10)
    attempts = 0
    while store.counts().failed == 0:
        attempts += 1
        assert attempts < 20
        run(store, smtp(server), clock, retry_lifetime=lifetime)
        due = store.next_attempt_at()
        if due is not None:
            assert due <= START + lifetime  # the last try happens at the deadline
            clock.now = max(clock.now, due)
    assert clock.now == START + lifetime
    assert attempts >= 4
    assert server.messages == []


def test_disconnect_after_data_resends_with_the_same_message_id(
    store: AnyStore, server: RecordingServer
) -> None:
    plan(store, ["a@example.org"])
    server.drop_after_data = 1
    clock = FakeClock()
    assert run(store, smtp(server), clock).deferred == 1
    clock.now = store.next_attempt_at() or clock.now
    assert run(store, smtp(server), clock).sent == 1
    first, second = server.messages
    assert first.dropped and not second.dropped
    assert first.parsed()["Message-ID"] == second.parsed()["Message-ID"]


def test_server_down_then_back(store: AnyStore, server: RecordingServer) -> None:
    plan(store, [f"u{i}@example.org" for i in range(5)])
    server.stop()
    clock = FakeClock()
    assert run(store, smtp(server), clock).deferred == 5
    server.start()
    clock.now = store.next_attempt_at() or clock.now
    clock.now += timedelta(minutes=1)  # past every address's jittered retry time
    assert run(store, smtp(server), clock).sent == 5
    assert len(recipients(server)) == 5


def test_unknown_fates_after_a_crash_are_sent_again(
    store: AnyStore, server: RecordingServer, make_backend: Backend
) -> None:
    plan(store, [f"u{i}@example.org" for i in range(6)])
    # A sender claimed four, handed two of them over, then was killed before any reply.
    claimed = store.claim(4, START)
    assert store.record([], claimed[:2], START) == [True, True]
    counts = store.counts()
    assert (counts.sending, counts.pending) == (2, 4)  # claimed only: still pending
    if not store.shared:  # the only sender restarts and recovers them at once
        summary = run(store, smtp(server), FakeClock())
        assert (summary.recovered, summary.sent) == (2, 6)
    else:  # another sender: nothing of the dead one's until its lease lapsed, then all
        with make_backend.open() as other:
            assert run(other, smtp(server), FakeClock()).sent == 2
            clock = FakeClock()
            clock.now = START + other.lease
            summary = run(other, smtp(server), clock)
            assert (summary.recovered, summary.sent) == (0, 4)
    assert len(recipients(server)) == 6
    assert {m.parsed()["Message-ID"] for m in server.messages} == {
        d.message_id for d in claimed
    } | {f"<1.u{i}.example.org@example.org>" for i in range(4, 6)}


def test_stop_finishes_in_flight_messages_and_the_rest_follow_later(
    store: AnyStore, server: RecordingServer
) -> None:
    emails = [f"u{i}@example.org" for i in range(30)]
    plan(store, emails)
    stop = asyncio.Event()

    def on_progress(progress: Progress) -> None:
        if progress.sent >= 5:
            stop.set()

    async def first_run() -> DeliverySummary:
        messenger = smtp(server)
        try:
            return await deliver(
                store, messenger, compose, FakeClock(), sender=SENDER, concurrency=3,
                batch=10, stop=stop, progress=on_progress,
            )  # fmt: skip
        finally:
            await messenger.close()

    summary = asyncio.run(first_run())
    assert summary.stopped and 5 <= summary.sent < 30
    assert store.counts().sent == summary.sent  # every accepted message is recorded
    assert len(server.messages) == summary.sent
    assert run(store, smtp(server), FakeClock()).sent == 30 - summary.sent
    assert recipients(server) == sorted(emails)  # nobody twice


def test_starttls_missing_stops_the_run_without_failing_anyone(
    store: AnyStore, server: RecordingServer
) -> None:
    plan(store, [f"u{i}@example.org" for i in range(5)])
    with pytest.raises(ConfigError, match="STARTTLS"):
        run(store, smtp(server, security="starttls"), FakeClock())
    counts = store.counts()
    assert (counts.sent, counts.failed, counts.deferred) == (0, 0, 0)
    assert server.messages == []
    # Fixed configuration: everything goes out on the next run.
    assert run(store, smtp(server), FakeClock()).sent == 5


def test_a_policy_refusal_for_everyone_stops_the_run_without_bouncing_anyone(
    store: AnyStore, server: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    emails = [f"u{i:02}@example.org" for i in range(40)]
    plan(store, emails)
    for email in emails:  # e.g. sending without the login the server insists on
        server.rcpt_replies[email] = "554 5.7.1 Relay access denied"
    with pytest.raises(
        DeliveryHalted, match=r"^smtp: the server refuses every recipient: .*554 5\.7\.1 Relay"
    ) as halted:
        run(store, smtp(server), FakeClock(), batch=10)
    assert (halted.value.code, halted.value.enhanced) == (554, "5.7.1")
    assert halted.value.refusals == 20
    counts = store.counts()
    # The breaker trips at 20; the other two workers may each finish one more.
    assert 20 <= counts.failed <= 22
    assert counts.pending == 40 - counts.failed and counts.sending == 0  # released
    assert not any(store.is_blocked(email) for email in emails)  # failed, not bounced
    assert "digest send --resend-failed" in caplog.text
    assert server.messages == []

    # Settings fixed: the failed ones are queued again and everyone gets the edition.
    server.rcpt_replies.clear()
    store.retry_failed(now=START)
    assert run(store, smtp(server), FakeClock()).sent == 40
    assert recipients(server) == sorted(emails)


def test_the_breaker_also_stops_a_run_of_bounces(store: AnyStore, server: RecordingServer) -> None:
    # Without an enhanced code a 550 is a bounce: a relay answering "550 relaying
    # denied" to everyone must not get the whole list blocked.
    emails = [f"u{i:02}@example.org" for i in range(12)]
    plan(store, emails)
    for email in emails:
        server.rcpt_replies[email] = "550 relaying denied"
    with pytest.raises(DeliveryHalted, match="refuses every recipient") as halted:
        run(store, smtp(server), FakeClock(), same_refusal_limit=4)
    assert (halted.value.code, halted.value.enhanced, halted.value.refusals) == (550, None, 4)
    counts = store.counts()
    assert 4 <= counts.failed <= 6 and counts.pending == 12 - counts.failed
    assert sum(store.is_blocked(email) for email in emails) == counts.failed


class Scripted:
    """A real SmtpMessenger whose server answers RCPT by the order of sending."""

    def __init__(self, server: RecordingServer, replies: list[str | None]) -> None:
        self.server, self.replies, self.inner = server, list(replies), smtp(server)

    async def send(
        self, sender: str, recipient: str, message: bytes, ready: Awaitable[bool] | None = None
    ) -> bool:
        reply = self.replies.pop(0)
        if reply is not None:
            self.server.rcpt_replies[recipient] = reply
        return await self.inner.send(sender, recipient, message, ready)

    async def close(self) -> None:
        await self.inner.close()


RELAY = "554 5.7.1 relay access denied"


@pytest.mark.parametrize("limit", [2, 3])
def test_the_streak_needs_the_same_reply_with_nothing_between(
    store: AnyStore, server: RecordingServer, limit: int
) -> None:
    plan(store, [f"u{i}@example.org" for i in range(8)])
    # Never three identical refusals in a row: a success or another reply resets it.
    script = [RELAY, RELAY, None, RELAY, RELAY, "554 5.7.2 other", RELAY, RELAY]
    messenger = Scripted(server, script)
    if limit == 3:
        summary = run(store, messenger, FakeClock(), concurrency=1, same_refusal_limit=limit)
        assert (summary.sent, summary.failed, summary.bounced) == (1, 7, 0)
    else:
        with pytest.raises(DeliveryHalted, match=r"2 in a row with 554 5\.7\.1"):
            run(store, messenger, FakeClock(), concurrency=1, same_refusal_limit=limit)
        assert store.counts().failed == 2 and store.counts().pending == 6


def test_an_untrusted_certificate_on_implicit_tls_stops_the_run(
    store: AnyStore, certificate: tuple[Path, Path]
) -> None:
    plan(store, [f"u{i}@example.org" for i in range(5)])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    with ImplicitTlsServer(tls_context=context) as tls_server:
        with pytest.raises(ConfigError, match="certificate is not trusted"):
            run(store, smtp(tls_server, security="tls"), FakeClock())
        assert tls_server.messages == []
    counts = store.counts()
    assert (counts.pending, counts.sent, counts.failed, counts.deferred) == (5, 0, 0, 0)


def test_maildir_when_there_is_no_smtp_host(store: AnyStore, tmp_path: Path) -> None:
    plan(store, ["a@example.org", "b@example.org"])
    summary = run(store, MaildirMessenger(tmp_path / "outbox"), FakeClock())
    assert summary.sent == 2
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 2


def test_a_full_disk_mid_edition_stops_hand_overs_and_nothing_is_lost(
    small_disk: Path, server: RecordingServer
) -> None:
    emails = [f"u{i:03}@example.org" for i in range(200)]
    with SqliteStore.open(small_disk / "state") as store:
        plan(store, emails)
        fillers: list[Path] = []

        def disk_full_at_the_fifth(received: int) -> None:  # "database or disk is full"
            if received == 5:
                fillers.append(fill_disk(small_disk, leave=0))

        server.handler.after_data = disk_full_at_the_fifth
        with pytest.raises(StateError, match="disk is full"):
            run(store, smtp(server), FakeClock(), batch=10)
    received = recipients(server)
    counts = SqliteStore.open(small_disk / "state").counts()
    assert 0 < len(received) < len(emails), "the disk must fill up mid-edition"
    # Nothing left that could not be recorded, bar the messages in flight (3 connections).
    assert len(received) - counts.sent <= 3
    assert counts.sending <= 3

    fillers[0].unlink()  # space is back: the next run sends the rest
    with SqliteStore.open(small_disk / "state") as store:
        summary = run(store, smtp(server), FakeClock())
        assert store.counts() == LedgerCounts(sent=len(emails))
    assert summary.recovered == counts.sending
    assert set(recipients(server)) == set(emails)
    assert len(recipients(server)) - len(emails) <= 3  # at most the in-flight window again


def test_an_unsubscribe_reaches_deliveries_already_claimed(
    store: AnyStore, server: RecordingServer, make_backend: Backend
) -> None:
    emails = [f"u{i:02}@example.org" for i in range(20)]
    plan(store, emails)
    web = make_backend.open()  # the web side's own connection
    leaving = emails[-1]

    def click_unsubscribe(progress: Progress) -> None:
        if progress.sent == 1:  # everything is claimed by now (one batch of 500)
            assert web.unsubscribe(leaving, START)

    summary = run(store, smtp(server), FakeClock(), concurrency=1, progress=click_unsubscribe)
    web.close()
    assert leaving not in recipients(server)
    assert (summary.sent, summary.cancelled) == (19, 1)  # refused at its hand-over
    assert store.counts() == LedgerCounts(sent=19, cancelled=1)


def test_every_deferral_failure_and_bounce_is_logged_with_its_reply(
    store: AnyStore, server: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    plan(store, ["ok@example.org", "gone@example.org", "busy@example.org", "full@example.org"])
    server.rcpt_replies["gone@example.org"] = "550 5.1.1 no such user"
    server.rcpt_replies["busy@example.org"] = "451 4.3.0 greylisted, try later"
    server.rcpt_replies["full@example.org"] = "552 5.3.4 message too big"
    caplog.set_level("INFO", logger="statement_feeds.digests.send")
    run(store, smtp(server), FakeClock())

    logged = {r.getMessage(): r.__dict__["fields"] for r in caplog.records}
    bounced = logged["delivery bounced"]
    assert (bounced["to"], bounced["code"]) == ("gone@example.org", 550)
    assert "no such user" in bounced["reply"] and bounced["next_attempt"] == "never"
    deferred = logged["delivery deferred"]
    assert (deferred["to"], deferred["code"]) == ("busy@example.org", 451)
    assert "greylisted" in deferred["reply"]
    # A datetime: the log formatter writes it like every time (ISO 8601, the site's zone).
    assert isinstance(deferred["next_attempt"], datetime) and deferred["next_attempt"] > START
    failed = logged["delivery failed"]
    assert (failed["to"], failed["code"]) == ("full@example.org", 552)
    assert "ok@example.org" not in caplog.text  # a success is counted, not logged


REFUSE_WRITES = """
CREATE TABLE refuse_writes (on_purpose boolean);
CREATE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM refuse_writes) THEN
        RAISE EXCEPTION 'writes refused on purpose';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_writes BEFORE UPDATE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION refuse_writes();
"""


def test_a_shared_ledger_that_refuses_writes_mid_edition_loses_nothing(
    pg_url: str, server: RecordingServer
) -> None:
    # On PostgreSQL the sender writes in a thread of its own while the loop sends; a
    # write failing there must stop the hand-overs just as on SQLite (the full disk
    # test above): nothing sent that is not in the ledger, bar the messages in flight.
    import psycopg

    from statement_feeds.state.postgres import PostgresStore

    emails = [f"u{i:03}@example.org" for i in range(200)]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        with PostgresStore(pg_url) as store:
            plan(store, emails)
            admin.execute(REFUSE_WRITES)

            def refuse_at_the_fifth(received: int) -> None:
                if received == 5:
                    admin.execute("INSERT INTO refuse_writes VALUES (true)")

            server.handler.after_data = refuse_at_the_fifth
            with pytest.raises(StateError, match="writes refused on purpose"):
                run(store, smtp(server), FakeClock(), batch=10)
            counts = store.counts()
        received = recipients(server)
        assert 0 < len(received) < len(emails), "the writes must fail mid-edition"
        assert len(received) - counts.sent <= 3  # the messages in flight (3 connections)
        assert counts.sending <= 3

        admin.execute("DELETE FROM refuse_writes")  # writable again: the next run (once
        clock = FakeClock()  # the dead run's leases lapsed) sends the rest
        clock.now = START + timedelta(hours=1)
        server.handler.after_data = None
        with PostgresStore(pg_url) as store:
            run(store, smtp(server), clock)
            assert store.counts() == LedgerCounts(sent=len(emails))
    assert set(recipients(server)) == set(emails)
    assert len(recipients(server)) - len(emails) <= 3  # at most the in-flight window


def test_a_delivery_this_host_cannot_compose_waits_for_one_that_can(
    store: AnyStore, server: RecordingServer
) -> None:
    # Statements reach each host by git pull: on a shared ledger a host that does not
    # have a planned statement yet defers the delivery (another host, or this one after
    # its next pull, sends it); alone on its ledger it is a failure, as before.
    plan(store, ["late@example.org", "fine@example.org"])

    def compose_here(delivery: Delivery) -> bytes:
        if delivery.email == "late@example.org":
            raise KeyError("statement s1 unknown")
        return compose(delivery)

    clock = FakeClock()

    async def go(composer: Callable[[Delivery], bytes]) -> DeliverySummary:
        messenger = smtp(server)
        try:
            return await deliver(store, messenger, composer, clock, sender=SENDER, concurrency=3)
        finally:
            await messenger.close()

    summary = asyncio.run(go(compose_here))
    assert recipients(server) == ["fine@example.org"]
    if store.shared:
        assert summary.deferred == 1 and store.counts() == LedgerCounts(sent=1, deferred=1)
        [row] = store.deliveries(state="deferred")
        assert "cannot compose here" in (row.last_error or "")
        clock.now = START + timedelta(hours=2)  # its next attempt; the statement has arrived
        asyncio.run(go(compose))
        assert store.counts() == LedgerCounts(sent=2)
        assert recipients(server) == ["fine@example.org", "late@example.org"]
    else:
        assert summary.failed == 1 and store.counts() == LedgerCounts(sent=1, failed=1)
