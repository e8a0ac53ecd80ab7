"""`statement-feeds run` with the REAL digest side, end to end.

The daemon is a subprocess (``python -m statement_feeds --config X run``) with
:class:`statement_feeds.digests.service.Digests` as its EditionRunner, the real SQLite ledger
and a real SMTP server: aiosmtpd in this process where nothing is killed, else the
crash-test server in its own process (``crash_helpers``), which fsyncs one line per
accepted message before it replies, so its log is the truth about what left the daemon.

Time: ``$STATEMENT_FEEDS_FAKE_START`` pins the daemon's clock at a start that then
advances in real time (site.timezone UTC, daily edition at 07:00). Subscribers join
at 06:00 and statements are dated 06:30, so an edition due at 07:00 carries them.
Nothing waits with a fixed sleep for synchronisation: every wait polls with a timeout.
"""

from __future__ import annotations

import contextlib
import http.client
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon_digest_helpers import DigestSite, SmtpProcess, until
from smtp_server import Received, RecordingServer, free_port

pytestmark = pytest.mark.slow

JOINED = datetime(2025, 1, 15, 6, 0, tzinfo=UTC)  # a Wednesday: weekly (Monday) is far off
PUBLISHED = datetime(2025, 1, 15, 6, 30, tzinfo=UTC)
DUE = datetime(2025, 1, 15, 7, 0, tzinfo=UTC)
DUE_TEXT = "2025-01-15T07:00:00+00:00"
SUBSCRIBERS = 300


def readers(count: int) -> list[str]:
    return [f"reader{i:04d}@example.com" for i in range(count)]


def plain_text(message: Received) -> str:
    part = message.parsed().get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def get(port: int, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


# ---- HTTP ----------------------------------------------------------------------------------


def test_the_daemon_serves_feeds_and_health_over_http(tmp_path: Path) -> None:
    port = free_port()
    # No SMTP server: nothing is sent (no subscribers), and a 1 s grace keeps a real
    # 07:00 that passed this morning from starting an edition.
    site = DigestSite(tmp_path, free_port(), grace="1s", http_port=port)
    site.publish("first.md", "First statement", datetime(2024, 1, 1, tzinfo=UTC))
    # A 1 s rescan: the file written while running reaches the feed even if it lands
    # before the watches are armed (see test_statements_written_right_after_ready_...).
    daemon = site.start(rescan=1)
    try:
        daemon.wait_ready()
        status, headers, body = get(port, "/feeds/en.atom")
        assert status == 200
        assert headers["Content-Type"].startswith("application/atom+xml")
        assert b"First statement" in body
        etag = headers["ETag"]
        assert etag
        status, headers, body = get(port, "/feeds/en.atom", **{"If-None-Match": etag})
        assert (status, body) == (304, b"")
        assert get(port, "/healthz")[0] == 200

        site.publish("second.md", "Second statement", datetime(2024, 2, 1, tzinfo=UTC))
        until(lambda: b"Second statement" in get(port, "/feeds/en.atom")[2], 15, daemon)
        status, headers, _ = get(port, "/feeds/en.atom", **{"If-None-Match": etag})
        assert status == 200  # the old ETag no longer matches
        assert headers["ETag"] != etag
    finally:
        code, seconds = daemon.terminate()
    assert code == 0
    assert seconds < 10


def test_statements_written_right_after_ready_reach_the_feed_within_seconds(
    tmp_path: Path,
) -> None:
    site = DigestSite(tmp_path, free_port(), grace="1s")
    daemon = site.start(rescan=120)
    titles: list[str] = []
    ready_at: float | None = None
    try:
        # Like an admin's script: drop files in every 10 ms from the spawn until shortly
        # after the daemon says it is ready (some land in the start-up window).
        while ready_at is None or time.monotonic() - ready_at < 0.3:
            if daemon.proc.poll() is not None:
                raise AssertionError(daemon.log_text())
            titles.append(f"Early {len(titles):04d}")
            site.publish(
                f"early-{len(titles):04d}.md", titles[-1], datetime(2024, 1, 1, tzinfo=UTC)
            )
            if ready_at is None and 'event="daemon ready"' in daemon.log_text():
                ready_at = time.monotonic()
            time.sleep(0.01)  # pacing the writer, not synchronisation
        feed = ""

        def complete() -> bool:
            nonlocal feed
            feed = site.feed_text()
            return all(title in feed for title in titles)

        with contextlib.suppress(AssertionError):
            until(complete, 3, daemon)
        missing = [title for title in titles if title not in feed]
        assert missing == [], f"{len(missing)} of {len(titles)} files not in the feed after 3 s"
    finally:
        assert daemon.terminate()[0] == 0


# ---- `digest send` beside the daemon -----------------------------------------------------


def test_digest_send_beside_the_daemon_plans_and_the_daemon_delivers(tmp_path: Path) -> None:
    with RecordingServer() as server:
        site = DigestSite(tmp_path, server.port, grace="1s")  # real clock: see above
        emails = site.subscribe(readers(3))
        daemon = site.start()
        try:
            daemon.wait_ready()
            # The daemon recorded the join times at start; publish after them.
            joined = until(lambda: len(site.ledger("SELECT email FROM subscribers")) == 3)
            assert joined < 20
            latest = max(
                datetime.fromisoformat(str(t))
                for (t,) in site.ledger("SELECT joined_at FROM subscribers")
            )
            latest = latest if latest.tzinfo else latest.replace(tzinfo=UTC)
            date = latest.replace(microsecond=0) + timedelta(seconds=1)
            site.publish("news.md", "Fresh news", date)
            until(lambda: datetime.now(UTC) > date, 5)  # the statement is public now

            sent = site.cli("digest", "send")
            assert sent.returncode == 0, sent.stderr
            assert f"the running daemon (pid {daemon.proc.pid}) delivers it" in sent.stdout
            assert "planned (3 messages)" in sent.stdout

            took = until(lambda: len(server.messages) >= 3, 20, daemon)
            until(lambda: set(site.states().values()) == {"sent"}, 10, daemon)
            assert 'event="woken to deliver"' in daemon.log_text()
        finally:
            code, _ = daemon.terminate()
        assert code == 0
        assert sorted(r for m in server.messages for r in m.recipients) == sorted(emails)
        assert all(len(m.recipients) == 1 for m in server.messages)  # to each alone
        assert all("Fresh news" in plain_text(m) for m in server.messages)
        print(f"\ndigest send beside the daemon: delivered {took:.2f}s after the CLI returned")


# ---- a scheduled edition ----------------------------------------------------------------


def test_a_scheduled_edition_is_sent_at_its_due_time_and_only_once(tmp_path: Path) -> None:
    with RecordingServer() as server:
        site = DigestSite(tmp_path, server.port)
        emails = site.subscribe(readers(4))
        # An earlier start records the join times (the previous edition, due yesterday
        # 07:00, is 23 h late: skipped, and nobody had anything new anyway).
        first = site.start(fake_start=JOINED)
        first.wait_ready()
        assert first.terminate()[0] == 0
        assert len(site.ledger("SELECT email FROM subscribers WHERE joined_at IS NOT NULL")) == 4
        assert site.editions() == []

        site.publish("a.md", "Alpha", PUBLISHED)
        site.publish("b.md", "Bravo", PUBLISHED + timedelta(minutes=5))
        spawned = time.monotonic()
        second = site.start(fake_start=DUE - timedelta(seconds=5))
        try:
            until(lambda: len(server.messages) >= 4, 40, second)
            arrived = time.monotonic() - spawned
            until(lambda: set(site.states().values()) == {"sent"}, 10, second)
        finally:
            assert second.terminate()[0] == 0
        # The fake clock starts after the spawn, so 07:00 came at least 5 s after it.
        assert arrived >= 5.0, arrived
        assert f'event="edition start" frequency=daily due={DUE_TEXT}' in second.log_text()
        assert sorted(r for m in server.messages for r in m.recipients) == sorted(emails)
        body = plain_text(server.messages[0])
        assert "Alpha" in body and "Bravo" in body
        assert len(site.editions()) == 1

        # A restart after the due time (well within the grace): the ledger has it.
        third = site.start(fake_start=DUE + timedelta(seconds=30))
        try:
            third.wait_log(f"action=already_done due={DUE_TEXT}")
            third.wait_log('event="resume deliveries"')
        finally:
            assert third.terminate()[0] == 0
        assert 'event="edition start"' not in third.log_text()
        assert len(server.messages) == 4
        assert len(site.editions()) == 1
        print(f"\nscheduled edition: 4 messages {arrived:.2f}s after spawning (due at 5 s)")


# ---- SIGTERM in the middle of an edition --------------------------------------------------


def edition_site(root: Path, port: int, count: int, concurrency: int = 2) -> DigestSite:
    """``count`` daily subscribers who joined at 06:00 and one statement of 06:30."""
    site = DigestSite(root, port, concurrency=concurrency)
    emails = site.subscribe(readers(count))
    site.join(emails, JOINED)
    site.publish("news.md", "Slow news", PUBLISHED)
    return site


@dataclass
class SigtermRun:
    emails: list[str]
    exit_code: int
    exit_seconds: float
    received_at_stop: set[str]  # recipients the server had once the daemon had exited
    states_at_stop: dict[str, str]
    planned: dict[str, str]  # email → Message-ID in the ledger
    messages: list[tuple[str, str]]  # (rcpt, Message-ID) at the server, in the end
    states_at_end: dict[str, str]
    editions: list[tuple[object, ...]]
    restart_log: str


@pytest.fixture(scope="module")
def sigterm_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigtermRun]:
    """One edition of 300, SIGTERM after ~40 messages, then a restart that finishes it."""
    root = tmp_path_factory.mktemp("sigterm")
    # 30 ms per DATA reply, 2 connections: the edition takes about 5 s.
    server = SmtpProcess(free_port(), root / "server.log", delay=0.03)
    try:
        site = edition_site(root / "site", server.port, SUBSCRIBERS)
        daemon = site.start(fake_start=DUE + timedelta(seconds=2))
        try:
            server.log.wait(lambda s: len(s.messages) >= 40 or daemon.proc.poll() is not None, 60)
        finally:
            code, seconds = daemon.terminate(timeout=15)
        received = {rcpt for rcpt, _ in server.log.settled().messages}
        states = site.states()
        assert 0 < len(received) < SUBSCRIBERS, "the SIGTERM did not land mid-edition"

        again = site.start(fake_start=DUE + timedelta(seconds=40))
        try:
            until(lambda: set(site.states().values()) == {"sent"}, 60, again)
        finally:
            assert again.terminate()[0] == 0
        yield SigtermRun(
            emails=readers(SUBSCRIBERS),
            exit_code=code,
            exit_seconds=seconds,
            received_at_stop=received,
            states_at_stop=states,
            planned=site.message_ids(),
            messages=server.log.settled().messages,
            states_at_end=site.states(),
            editions=site.editions(),
            restart_log=again.log_text(),
        )
    finally:
        server.stop()


def test_a_fresh_state_warns_of_no_edition_that_was_never_due(tmp_path: Path) -> None:
    """A fresh state folder once logged "edition skipped" for yesterday's daily and last
    Monday's weekly edition; nobody was subscribed then. Once subscribers have joined, an
    edition missed for good is still a warning; the weekly one from before them is not."""
    with RecordingServer() as server:
        site = DigestSite(tmp_path, server.port)
        site.subscribe(readers(2))
        fresh = site.start(fake_start=JOINED)  # daily due 23 h ago, weekly 2 days ago
        fresh.wait_ready()
        until(lambda: fresh.log_text().count("action=never_due") >= 2, 20, fresh)
        assert fresh.terminate()[0] == 0
        assert "edition skipped" not in fresh.log_text()

        late = site.start(fake_start=DUE + timedelta(hours=7))  # grace is 6 h
        late.wait_ready()
        late.wait_log('event="edition skipped')
        until(lambda: "action=never_due" in late.log_text(), 20, late)
        assert late.terminate()[0] == 0
        skipped = [line for line in late.log_text().splitlines() if "edition skipped" in line]
        assert len(skipped) == 1 and "frequency=daily" in skipped[0], skipped
        assert site.editions() == [] and server.messages == []


def test_sigterm_mid_edition_exits_zero_and_a_restart_delivers_the_rest(
    sigterm_run: SigtermRun,
) -> None:
    run = sigterm_run
    assert run.exit_code == 0
    assert run.exit_seconds < 10, run.exit_seconds
    # The messages in flight were finished and confirmed before the exit: everything
    # the server accepted is `sent`, and nothing is `sent` that the server lacks.
    sent_at_stop = {e for e, s in run.states_at_stop.items() if s == "sent"}
    assert sent_at_stop == run.received_at_stop
    assert set(run.states_at_stop.values()) <= {"sent", "sending", "pending", "deferred"}
    # The restart did not plan again; it resumed the edition and finished it.
    assert len(run.editions) == 1
    assert f"action=already_done due={DUE_TEXT}" in run.restart_log
    assert set(run.states_at_end.values()) == {"sent"}
    copies = Counter(rcpt for rcpt, _ in run.messages)
    assert set(copies) == set(run.emails)
    # Nothing was lost, nothing whose fate was known was sent twice, and every copy
    # carries the planned Message-ID.
    assert [r for r, n in copies.items() if n > 1] == []
    assert all(message_id == run.planned[rcpt] for rcpt, message_id in run.messages)
    print(
        f"\nSIGTERM mid-edition: exit 0 in {run.exit_seconds:.2f}s after "
        f"{len(run.received_at_stop)} of {SUBSCRIBERS} messages; restart delivered the rest"
    )


def test_sigterm_leaves_no_unsent_delivery_in_sending(sigterm_run: SigtermRun) -> None:
    run = sigterm_run
    # `sending` means "may have left": after a graceful stop, only for messages the
    # server may have received. Claimed-but-never-sent ones must be pending again.
    sending = {e for e, s in run.states_at_stop.items() if s == "sending"}
    assert sending <= run.received_at_stop, f"{len(sending - run.received_at_stop)} never sent"


# ---- deferred deliveries survive a restart -------------------------------------------------


def test_deferred_deliveries_are_resumed_by_a_restart_past_their_retry_time(
    tmp_path: Path,
) -> None:
    port = free_port()  # nobody listens yet: connections are refused
    site = edition_site(tmp_path / "site", port, 5)
    daemon = site.start(fake_start=DUE + timedelta(seconds=2))
    try:
        until(lambda: site.state_counts()["deferred"] == 5, 30, daemon)
    finally:
        assert daemon.terminate()[0] == 0
    status = site.cli("status")
    assert status.returncode == 0, status.stderr
    assert "deferred 5" in status.stdout and "next retry 2025-01-15T07:0" in status.stdout
    retry_at = max(
        datetime.fromisoformat(str(t))
        for (t,) in site.ledger("SELECT next_attempt_at FROM deliveries")
    )
    retry_at = retry_at if retry_at.tzinfo else retry_at.replace(tzinfo=UTC)
    assert DUE < retry_at < DUE + timedelta(minutes=5)  # the first backoff: about a minute

    server = SmtpProcess(port, tmp_path / "server.log")
    try:
        again = site.start(fake_start=retry_at + timedelta(seconds=5))
        try:
            until(lambda: set(site.states().values()) == {"sent"}, 30, again)
        finally:
            assert again.terminate()[0] == 0
        messages = server.log.settled().messages
    finally:
        server.stop()
    assert sorted(r for r, _ in messages) == sorted(site.states())
    planned = site.message_ids()
    assert all(message_id == planned[rcpt] for rcpt, message_id in messages)
    assert len(site.editions()) == 1
    assert "deferred 0" in site.cli("status").stdout


# ---- kill -9 in the middle of an edition ------------------------------------------------


def test_sigkill_mid_edition_then_restart_delivers_everything_with_stable_ids(
    tmp_path: Path,
) -> None:
    server = SmtpProcess(free_port(), tmp_path / "server.log", delay=0.03)
    try:
        site = edition_site(tmp_path / "site", server.port, SUBSCRIBERS)
        daemon = site.start(fake_start=DUE + timedelta(seconds=2))
        try:
            server.log.wait(lambda s: len(s.messages) >= 60 or daemon.proc.poll() is not None, 60)
        finally:
            daemon.kill()
        at_kill = server.log.settled()  # the killed daemon's connections are gone
        states = site.states()
        received = {rcpt for rcpt, _ in at_kill.messages}
        assert 0 < len(received) < SUBSCRIBERS, "the kill did not land mid-edition"
        sent_at_kill = {e for e, s in states.items() if s == "sent"}
        unknown = {e for e, s in states.items() if s == "sending"} & received
        # Claimed before sent: nothing arrived that the ledger does not know may have gone.
        assert received <= sent_at_kill | unknown

        again = site.start(fake_start=DUE + timedelta(seconds=40))
        try:
            until(lambda: set(site.states().values()) == {"sent"}, 60, again)
        finally:
            assert again.terminate()[0] == 0
        messages = server.log.settled().messages
    finally:
        server.stop()
    copies = Counter(rcpt for rcpt, _ in messages)
    assert set(copies) == set(readers(SUBSCRIBERS))
    planned = site.message_ids()
    assert all(message_id == planned[rcpt] for rcpt, message_id in messages)
    # A second copy only where the kill left the fate unknown; never after confirmation.
    assert {r for r, n in copies.items() if n > 1} <= unknown
    assert all(n <= 2 for n in copies.values())
    assert not {r for r, _ in messages[len(at_kill.messages) :]} & sent_at_kill
    assert len(site.editions()) == 1
    print(
        f"\nkill -9 mid-edition: {len(received)} received at the kill "
        f"({len(unknown)} unknown), {sum(copies.values()) - len(copies)} duplicates"
    )


# ---- a run that fails as a whole is not retried in a tight loop ---------------------------


def test_a_failing_run_backs_off_instead_of_hammering_the_server(tmp_path: Path) -> None:
    with RecordingServer() as server:  # offers no STARTTLS
        site = DigestSite(tmp_path, server.port, grace="1s")
        site.config.write_text(
            site.config.read_text().replace('security = "none"', 'security = "starttls"')
        )
        site.subscribe(readers(2))
        daemon = site.start()
        try:
            daemon.wait_ready()
            until(lambda: len(site.ledger("SELECT email FROM subscribers")) == 2)
            date = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
            site.publish("news.md", "Fresh news", date)
            until(lambda: datetime.now(UTC) > date, 5)
            assert site.cli("digest", "send").returncode == 0
            until(lambda: "resume deliveries failed" in daemon.log_text(), 20, daemon)
            time.sleep(3)  # the window in which a tight loop would retry hundreds of times
            failures = daemon.log_text().count("resume deliveries failed")
            assert failures == 1, daemon.log_text()
            assert "retry_in_s=60" in daemon.log_text()
            assert set(site.states().values()) == {"pending"}  # released, nothing lost
        finally:
            code, _ = daemon.terminate()
        assert code == 0
        assert server.messages == []  # never sent in plain text
