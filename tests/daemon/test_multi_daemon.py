"""Three `statement-feeds run` daemons on one PostgreSQL database, killed at random.

Real processes throughout: three daemons (``python -m statement_feeds run``) sharing one
fresh database, and the crash-test SMTP server in its own process, which fsyncs a line
per accepted message before replying (so its log is the truth about what left). One
scheduled (daily) edition of 5,000 subscribers is due when they start; the leader plans
it and every daemon sends. Mid-edition, SIGKILL lands on the leader first, then on
random daemons, several times, each replaced by a new daemon at once.

What must hold at the server once the ledger says everything is sent:

* every subscriber got the edition, under the Message-ID planned for them;
* the only duplicates are messages whose outcome was unknown at a kill: at most
  ``smtp.concurrency`` per kill (the messages the killed daemon had handed to SMTP);
* one edition for the due time, though every daemon that led could have planned it.

The daemons' clocks are pinned with ``$STATEMENT_FEEDS_FAKE_START`` just after the due
time and advance in real time; a replacement starts at the same offset as the others
(leases are compared across daemons, so their clocks must agree, as NTP makes them).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon_digest_helpers import Daemon, DigestSite, SmtpProcess, until
from smtp_server import free_port

psycopg = pytest.importorskip("psycopg")
pytest.importorskip(
    "statement_feeds.state.postgres_coordination", reason="several daemons need PostgreSQL"
)

pytestmark = pytest.mark.slow

JOINED = datetime(2025, 1, 15, 6, 0, tzinfo=UTC)
PUBLISHED = datetime(2025, 1, 15, 6, 30, tzinfo=UTC)
DUE = datetime(2025, 1, 15, 7, 0, tzinfo=UTC)  # the daily edition (07:00, site in UTC)
SUBSCRIBERS = 5000
CONCURRENCY = 4
KILLS = 4
LEASE = 5


def readers(count: int) -> list[str]:
    return [f"reader{i:04d}@example.com" for i in range(count)]


class PgSite(DigestSite):
    """A :class:`DigestSite` whose state is a PostgreSQL database."""

    def __init__(self, root: Path, smtp_port: int, url: str) -> None:
        super().__init__(root, smtp_port, concurrency=CONCURRENCY)
        self.url = url
        with self.config.open("a", encoding="utf-8") as out:
            # A short lease: a killed daemon's claims go to the others within seconds.
            out.write(f'\n[state]\nurl = "{url}"\nlease = "{LEASE}s"\n')

    def ledger(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url) as conn:
            return list(conn.execute(sql.replace("?", "%s"), params).fetchall())

    def join(self, emails: list[str], at: object) -> None:  # type: ignore[override]
        from statement_feeds.config import load_config
        from statement_feeds.state.open import open_store

        with open_store(load_config(self.config)) as store:
            store.sync_subscribers(emails, at)  # type: ignore[arg-type]

    def leader_pid(self) -> int | None:
        rows = self.ledger("SELECT pid FROM daemons WHERE leader")
        return int(rows[0][0]) if rows else None  # type: ignore[call-overload]


class Fleet:
    """The running daemons, started with aligned fake clocks."""

    def __init__(self, site: PgSite) -> None:
        self.site = site
        self.t0 = time.monotonic()
        self.daemons: list[Daemon] = []

    def start(self) -> Daemon:
        offset = timedelta(seconds=2 + time.monotonic() - self.t0)
        daemon = self.site.start(fake_start=DUE + offset, extra=("--heartbeat", "0.5"))
        self.daemons.append(daemon)
        return daemon

    def live(self) -> list[Daemon]:
        return [d for d in self.daemons if d.proc.poll() is None]

    def stop_all(self) -> None:
        for daemon in self.live():
            daemon.terminate(30)


def test_three_daemons_sigkilled_at_random_mail_everyone_once(tmp_path: Path, pg_url: str) -> None:
    rng = random.Random(12)
    # PIPELINING offered, as Postfix does: DATA is open before each hand-over commits.
    server = SmtpProcess(free_port(), tmp_path / "server.log", delay=0.02, pipelining=True)
    fleet = None
    try:
        site = PgSite(tmp_path / "site", server.port, pg_url)
        emails = site.subscribe(readers(SUBSCRIBERS))
        site.join(emails, JOINED)
        site.publish("news.md", "Slow news", PUBLISHED)
        fleet = Fleet(site)
        for _ in range(3):
            fleet.start()
        for daemon in fleet.daemons:
            daemon.wait_ready(60)
        killed_leader = False
        for kill in range(KILLS):
            threshold = SUBSCRIBERS * (kill + 1) // (KILLS + 2)
            server.log.wait(lambda s, n=threshold: len(s.messages) >= n, 120)
            leader = site.leader_pid()
            live = fleet.live()
            victim = next((d for d in live if d.proc.pid == leader), None) if kill == 0 else None
            victim = victim or rng.choice(live)
            killed_leader |= victim.proc.pid == leader
            victim.kill()
            fleet.start().wait_ready(60)
        assert killed_leader, "the leader was never among the killed"
        until(lambda: set(site.states().values()) == {"sent"}, 240)
        messages = server.log.settled(60).messages
    finally:
        if fleet is not None:
            fleet.stop_all()
        server.stop()
    copies = Counter(rcpt for rcpt, _ in messages)
    assert set(copies) == set(emails), "someone never got the edition"
    planned = site.message_ids()
    assert all(message_id == planned[rcpt] for rcpt, message_id in messages)
    duplicates = sum(copies.values()) - len(copies)
    assert duplicates <= KILLS * CONCURRENCY, f"{duplicates} duplicates for {KILLS} kills"
    editions = site.editions()
    assert [(f, n) for f, _, n in editions] == [("daily", SUBSCRIBERS)], editions
    print(f"\n{KILLS} kills of 3 daemons: {len(messages)} messages, {duplicates} duplicates")
