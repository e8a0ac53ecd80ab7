"""Crash safety of ``digest send`` under SIGKILL, checked at a real SMTP server.

The server runs in its own process (``crash_helpers.py``) and fsyncs a line per
accepted message before replying, so its log is the truth about what left the
sender. ``python -m statement_feeds digest send`` runs as a subprocess and is
killed with SIGKILL at seeded random points, again and again, then run to the end.

What must hold (DESIGN.md, "Delivery guarantees"):

* every subscriber gets the edition's message, at least once;
* a message is re-sent only if a kill left its fate unknown (handed over, accepted
  by the server, its reply not yet recorded), and then with the same Message-ID;
* at most the messages in flight per kill: one per connection (``smtp.concurrency``),
  as Postfix promises, so at most kills x concurrency duplicates in all;
* the ledger ends with everything ``sent``;
* a kill while planning leaves no trace of the edition;
* a corrected statement goes once more to everyone who got it, once per ``updated``
  value, whatever the kills (issue 14).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crash_helpers import ServerLog, start_server
from smtp_server import free_port
from statement_feeds.state.sqlite import SqliteStore

pytestmark = pytest.mark.slow

MakeSite = Callable[..., Path]
MakeText = Callable[..., str]

T0 = datetime(2024, 5, 1, 7, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
SUBSCRIBERS = 300
CONCURRENCY = 4
SEED = 20240502
TIMEOUT = 60.0


@dataclass
class Server:
    port: int
    log: ServerLog


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    port, path = free_port(), tmp_path / "server.log"
    # 20 ms per message: an edition takes seconds, so kills land in the middle of it.
    # Indirect parameter: True offers PIPELINING (MAIL, RCPT and DATA before the commit).
    process = start_server(port, path, 0.02, pipelining=getattr(request, "param", False))
    try:
        yield Server(port, ServerLog(path))
    finally:
        process.terminate()
        process.wait(timeout=10)


def make_crash_site(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText, server: Server, extra: int = 0
) -> tuple[Path, list[str]]:
    """A site whose ``SUBSCRIBERS`` daily subscribers joined at T0; one new statement.

    ``extra`` weekly subscribers are added to the files afterwards (never synced).
    """
    config = make_site(
        tmp_path / "site", extra_toml='\n[http]\npublic_url = "https://example.org/n/"\n'
    )
    text = config.read_text(encoding="utf-8").replace(
        '[smtp]\nhost = ""\n',
        f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n'
        f"concurrency = {CONCURRENCY}\ntimeout = 10\n",
    )
    config.write_text(text, encoding="utf-8")
    root = config.parent
    emails = [f"reader{i:04d}@example.com" for i in range(SUBSCRIBERS)]
    rows = "".join(f"{e},Reader {i},en,daily\n" for i, e in enumerate(emails))
    (root / "subscribers" / "daily.csv").write_text("email,name,languages,frequency\n" + rows)
    with SqliteStore.open(root / "state") as store:
        store.sync_subscribers(emails, T0)
    if extra:
        bulk = "".join(f"bulk{i:06d}@example.net,,en,weekly\n" for i in range(extra))
        (root / "subscribers" / "weekly.csv").write_text("email,name,languages,frequency\n" + bulk)
    statement = statement_md(title="Crash course", date="2024-05-01T09:00:00Z")
    (root / "statements" / "crash.en.md").write_text(statement, encoding="utf-8")
    return config, emails


def start_send(config: Path, *args: str, now: datetime = T1) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEMENT_FEEDS_")}
    env["STATEMENT_FEEDS_FAKE_NOW"] = now.isoformat()
    return subprocess.Popen(
        [sys.executable, "-m", "statement_feeds", "--config", str(config), "digest", "send", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def kill(process: subprocess.Popen[bytes]) -> bool:
    """SIGKILL; True if the process was still running (the kill really interrupted it)."""
    alive = process.poll() is None
    if alive:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=TIMEOUT)
    return alive


def finish(process: subprocess.Popen[bytes]) -> str:
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, (out, err)
    return out.decode()


def ledger(config: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(config.parent / "state" / "state.sqlite") as db:
        return db.execute(sql).fetchall()


def delivery_states(config: Path) -> dict[str, str]:
    return {str(e): str(s) for e, s in ledger(config, "SELECT email, state FROM deliveries")}


@dataclass
class Kill:
    position: int  # messages in the server log once the killed run's connections closed
    sent: set[str]  # confirmed in the ledger at that moment
    unknown: set[str]  # claimed and received by the server but not confirmed


@pytest.mark.parametrize("server", [False, True], ids=["plain", "pipelining"], indirect=True)
def test_sigkill_while_sending_loses_nothing_and_resends_only_the_unknown(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText, server: Server
) -> None:
    config, emails = make_crash_site(tmp_path, make_site, statement_md, server)
    rng = random.Random(SEED)
    kills: list[Kill] = []
    started = time.monotonic()

    for round_ in range(6):
        before = len(server.log.read().messages)
        process = start_send(config)
        if round_ % 2:
            # Mid-edition for sure: after a random number of further messages arrived.
            target = before + rng.randint(5, 40)
            server.log.wait(
                lambda s, t=target, p=process: len(s.messages) >= t or p.poll() is not None
            )
        else:
            # Anywhere: start-up, planning, claiming, sending (a random delay, seeded).
            deadline = time.monotonic() + rng.uniform(0.2, 1.5)
            while time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.005)
        if not kill(process):
            break  # it finished before the kill: the edition is complete
        snapshot = server.log.settled()
        states = delivery_states(config)
        received = {rcpt for rcpt, _ in snapshot.messages}
        earlier_unknown = set().union(*(k.unknown for k in kills))
        # The ledger records the hand-over before it sends: nothing arrives that it does
        # not know may have gone (sending), has confirmed (sent), or recovered after a crash.
        unexplained = {
            e for e in received if states.get(e) not in {"sent", "sending"}
        } - earlier_unknown
        assert not unexplained, f"kill {len(kills)}: sent without a claim: {sorted(unexplained)}"
        kills.append(
            Kill(
                position=len(snapshot.messages),
                sent={e for e, s in states.items() if s == "sent"},
                unknown={e for e, s in states.items() if s == "sending"} & received,
            )
        )
        # 'sending' is only what is in flight: at most one message per connection.
        in_flight = [e for e, s in states.items() if s == "sending"]
        assert len(in_flight) <= CONCURRENCY, f"kill {len(kills)}: {len(in_flight)} sending"

    summary = finish(start_send(config))
    elapsed = time.monotonic() - started
    log = server.log.settled()

    # Every subscriber got the edition.
    copies = Counter(rcpt for rcpt, _ in log.messages)
    assert set(copies) == set(emails), f"missing: {sorted(set(emails) - set(copies))[:10]}"
    # ... with the Message-ID planned for them, the same in every copy.
    planned = {
        str(e): str(m) for e, m in ledger(config, "SELECT email, message_id FROM deliveries")
    }
    for rcpt, message_id in log.messages:
        assert message_id == planned[rcpt], rcpt
    # A re-send only after a kill that left its fate unknown, at most once per such kill.
    for rcpt, count in copies.items():
        allowed = 1 + sum(rcpt in k.unknown for k in kills)
        assert count <= allowed, f"{rcpt}: {count} copies, {allowed - 1} unknown at a kill"
    # Never again once the ledger had confirmed it.
    for number, k in enumerate(kills):
        again = {rcpt for rcpt, _ in log.messages[k.position :]} & k.sent
        assert not again, f"re-sent after kill {number} although confirmed: {sorted(again)}"
    duplicates = sum(copies.values()) - len(copies)
    assert duplicates <= len(kills) * CONCURRENCY
    # The ledger: one edition with everyone, all sent.
    assert ledger(config, "SELECT COUNT(*), COUNT(DISTINCT email) FROM deliveries") == [
        (SUBSCRIBERS, SUBSCRIBERS)
    ]
    assert set(delivery_states(config).values()) == {"sent"}
    assert "failed 0" in summary
    # The test must have crashed the sender in mid-edition, or it proves nothing.
    mid_edition = [k for k in kills if 0 < len(k.sent) + len(k.unknown) < SUBSCRIBERS]
    assert len(mid_edition) >= 3, [(len(k.sent), len(k.unknown)) for k in kills]
    print(
        f"\ncrash test: {len(kills)} kills ({len(mid_edition)} mid-edition), "
        f"{sum(copies.values())} messages for {len(copies)} subscribers, "
        f"{duplicates} duplicates (unknown at kills: {[len(k.unknown) for k in kills]}), "
        f"{elapsed:.1f}s"
    )


def test_sigkill_while_planning_leaves_no_partial_edition(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText, server: Server
) -> None:
    # 20,000 weekly addresses to read and record make planning last long enough to
    # be caught in its transaction; the daily edition itself goes to 300 readers.
    config, emails = make_crash_site(tmp_path, make_site, statement_md, server, extra=20_000)
    database = config.parent / "state" / "state.sqlite"

    for _ in range(3):
        process = start_send(config, "--frequency", "daily")
        assert wait_for_write_lock(database, process), "the run ended before it planned"
        assert kill(process)
        # Nothing of the edition, not even the join times recorded while planning.
        assert ledger(config, "SELECT COUNT(*) FROM editions") == [(0,)]
        assert ledger(config, "SELECT COUNT(*) FROM deliveries") == [(0,)]
        assert ledger(config, "SELECT COUNT(*) FROM assigned") == [(0,)]
        assert ledger(config, "SELECT COUNT(*) FROM subscribers") == [(SUBSCRIBERS,)]
        assert server.log.settled().messages == []

    finish(start_send(config, "--frequency", "daily"))

    log = server.log.settled()
    assert sorted(rcpt for rcpt, _ in log.messages) == sorted(emails)  # once each
    assert ledger(config, "SELECT frequency, deliveries FROM editions") == [("daily", SUBSCRIBERS)]
    assert ledger(config, "SELECT COUNT(*) FROM subscribers") == [(SUBSCRIBERS + 20_000,)]
    assert set(delivery_states(config).values()) == {"sent"}


def wait_for_write_lock(database: Path, process: subprocess.Popen[bytes]) -> bool:
    """Poll until another connection holds the write lock for 5 probes in a row (~10 ms).

    Only planning's transaction holds it that long before anything is sent; the
    start-up checks of the schema and the lock probes of other writers are far shorter.
    """
    deadline = time.monotonic() + TIMEOUT
    held = 0
    while time.monotonic() < deadline and process.poll() is None:
        db = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
            held = 0
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            held += 1
            if held >= 5:
                return True
        finally:
            db.close()
        time.sleep(0.002)
    return False


def test_sigkill_while_mailing_a_correction_mails_it_once_per_updated_value(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText, server: Server
) -> None:
    config, emails = make_crash_site(tmp_path, make_site, statement_md, server)
    finish(start_send(config))  # the first version, to everyone
    first = len(server.log.settled().messages)
    assert first == SUBSCRIBERS
    path = config.parent / "statements" / "crash.en.md"

    def correct(updated: str, title: str = "Crash course") -> None:
        text = statement_md(title=title, date="2024-05-01T09:00:00Z", updated=updated)
        path.write_text(text, encoding="utf-8")

    correct("2024-05-02T10:00:00Z")
    t2 = T1 + timedelta(days=1)
    rng = random.Random(SEED + 14)
    kills: list[set[str]] = []  # per kill: the unknown ones (handed over, not confirmed)
    for _ in range(5):
        process = start_send(config, now=t2)
        deadline = time.monotonic() + rng.uniform(0.2, 1.2)
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.005)
        if not kill(process):
            break
        server.log.settled()
        sending = ledger(config, "SELECT email FROM deliveries WHERE state = 'sending'")
        kills.append({str(e) for (e,) in sending})
    finish(start_send(config, now=t2))

    copies = Counter(rcpt for rcpt, _ in server.log.settled().messages[first:])
    print(f"\ncorrection crash test: {len(kills)} kills, {sum(copies.values())} messages")
    assert len(kills) >= 2  # the kills landed before the edition was done
    assert set(copies) == set(emails)  # everyone got the correction
    for rcpt, count in copies.items():
        assert count <= 1 + sum(rcpt in unknown for unknown in kills), rcpt
    assert ledger(config, "SELECT COUNT(*), COUNT(DISTINCT email_key) FROM corrections") == [
        (SUBSCRIBERS, SUBSCRIBERS)
    ]
    assert ledger(
        config,
        "SELECT COUNT(*) FROM deliveries WHERE edition_id = 2 AND state = 'sent'"
        " AND corrected_ids <> '[]' AND statement_ids = '[]'",
    ) == [(SUBSCRIBERS,)]

    # A typo fix (updated unchanged) reaches nobody; moving updated again reaches everyone.
    correct("2024-05-02T10:00:00Z", title="Crash course, typo fixed")
    finish(start_send(config, now=t2 + timedelta(days=1)))
    second = len(server.log.settled().messages)
    assert second == first + sum(copies.values())
    correct("2024-05-04T10:00:00Z")
    finish(start_send(config, now=t2 + timedelta(days=2)))
    again = Counter(rcpt for rcpt, _ in server.log.settled().messages[second:])
    assert again == Counter(emails)
    assert ledger(config, "SELECT COUNT(*) FROM corrections") == [(2 * SUBSCRIBERS,)]
