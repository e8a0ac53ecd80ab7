"""Helpers for ``test_daemon_digests.py``: a site whose daemon really sends digests.

``statement-feeds run`` runs as a real subprocess (``python -m statement_feeds``) with
the real digest side (:class:`statement_feeds.digests.service.Digests`), a real SQLite ledger
and a real SMTP server: either aiosmtpd in this process (:class:`smtp_server.RecordingServer`)
or, when the test kills processes, aiosmtpd in its own process that fsyncs a line per
accepted message before replying (:mod:`crash_helpers`).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from crash_helpers import ServerLog, Snapshot, start_server
from statement_feeds.state.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[1]
STATES = ("pending", "sending", "sent", "deferred", "failed", "cancelled")

CONFIG = """\
[site]
title = "Daemon Digests"
url = "https://example.org/"
feeds_url = "https://example.org/feeds/"
author = "Test Tendency"
default_language = "en"
timezone = "UTC"

[paths]
statements = "statements"
templates = "{templates}"
subscribers = "subscribers"
output = "public"
state = "state"
outbox = "outbox"

[feeds]
max_entries = 1000  # every test statement in the subscription feed (no archives to read)

[digest]
from = "Statements <statements@example.org>"
daily = "0 7 * * *"
weekly = "0 7 * * mon"
misfire_grace = "{grace}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
concurrency = {concurrency}
timeout = 10

[http]
public_url = "{public_url}"
{listen}"""


def until(check: Callable[[], bool], timeout: float = 20, daemon: Daemon | None = None) -> float:
    """Poll ``check`` until true (fail after ``timeout`` s); returns the seconds it took.

    With ``daemon``: fail at once, with its log, if it exits meanwhile.
    """
    start = time.monotonic()
    while not check():
        if daemon is not None and daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited {daemon.proc.returncode}:\n{daemon.log_text()}")
        if time.monotonic() - start > timeout:
            log = daemon.log_text() if daemon is not None else ""
            raise AssertionError(f"timed out after {timeout}s\n{log}")
        time.sleep(0.02)
    return time.monotonic() - start


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any inherited ``STATEMENT_FEEDS_*`` setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEMENT_FEEDS_")}
    return {**env, **extra}


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DigestSite:
    """A site on disk whose [smtp] points at ``smtp_port`` and whose daemon sends digests."""

    def __init__(
        self,
        root: Path,
        smtp_port: int,
        *,
        concurrency: int = 2,
        grace: str = "6h",
        http_port: int | None = None,
    ) -> None:
        self.root = root
        for name in ("statements", "subscribers"):
            (root / name).mkdir(parents=True, exist_ok=True)
        public_url = (
            f"http://127.0.0.1:{http_port}/" if http_port else "https://example.org/newsletter/"
        )
        listen = f'listen = "127.0.0.1:{http_port}"\n' if http_port else ""
        self.config = root / "statement-feeds.toml"
        self.config.write_text(
            CONFIG.format(
                templates=(REPO / "src" / "statement_feeds" / "templates").as_posix(),
                grace=grace,
                smtp_port=smtp_port,
                concurrency=concurrency,
                public_url=public_url,
                listen=listen,
            ),
            encoding="utf-8",
        )
        self.feed = root / "public" / "feeds" / "en.atom"
        self.database = root / "state" / "state.sqlite"
        self._logs = 0

    # -- inputs ----------------------------------------------------------------------

    def publish(self, name: str, title: str, date: datetime) -> None:
        """Write a statement like an editor does: a temp file renamed over the target."""
        text = (
            f'---\ntitle: "{title}"\ndate: {stamp(date)}\n---\n\n'
            f"The first paragraph of {title}.\n\nThe second paragraph.\n"
        )
        path = self.root / "statements" / name
        temp = path.with_name(f".{path.name}.swp")
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)

    def subscribe(self, emails: Iterable[str], frequency: str = "daily") -> list[str]:
        emails = list(emails)
        rows = "".join(f"{e},Reader {i},en,{frequency}\n" for i, e in enumerate(emails))
        path = self.root / "subscribers" / f"{frequency}.csv"
        path.write_text("email,name,languages,frequency\n" + rows, encoding="utf-8")
        return emails

    def join(self, emails: Iterable[str], at: datetime) -> None:
        """Record join times directly in the ledger (as a daemon start at ``at`` would)."""
        with SqliteStore.open(self.root / "state") as store:
            store.sync_subscribers(emails, at)

    def feed_text(self) -> str:
        try:
            return self.feed.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    # -- the ledger ------------------------------------------------------------------

    def ledger(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        if not self.database.exists():
            return []
        db = sqlite3.connect(self.database, timeout=10)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def states(self) -> dict[str, str]:
        """email → delivery state (one edition per test site)."""
        return {str(e): str(s) for e, s in self.ledger("SELECT email, state FROM deliveries")}

    def state_counts(self) -> Counter[str]:
        return Counter(self.states().values())

    def message_ids(self) -> dict[str, str]:
        rows = self.ledger("SELECT email, message_id FROM deliveries")
        return {str(e): str(m) for e, m in rows}

    def editions(self) -> list[tuple[object, ...]]:
        return self.ledger("SELECT frequency, due_at, deliveries FROM editions ORDER BY id")

    # -- commands ------------------------------------------------------------------------

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "statement_feeds", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=clean_env(**(env or {})),
            cwd=self.root,
        )

    def start(
        self, fake_start: datetime | None = None, rescan: float = 30, extra: Sequence[str] = ()
    ) -> Daemon:
        """``run`` with ``extra`` arguments after it (``--heartbeat 0.5``)."""
        self._logs += 1
        log = self.root / f"daemon-{self._logs}.log"
        return Daemon(self, log, fake_start, rescan, extra)


class Daemon:
    """``python -m statement_feeds --config X -v run`` with its own log file."""

    def __init__(
        self,
        site: DigestSite,
        log: Path,
        fake_start: datetime | None,
        rescan: float,
        extra: Sequence[str] = (),
    ) -> None:
        self.site = site
        self.log = log
        env = clean_env(
            **({"STATEMENT_FEEDS_FAKE_START": fake_start.isoformat()} if fake_start else {})
        )
        self._stderr: IO[str] = log.open("a", encoding="utf-8")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "statement_feeds",
                "--config",
                str(site.config),
                "-v",
                "run",
                "--rescan",
                str(rescan),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=env,
            cwd=site.root,
        )

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8") if self.log.exists() else ""

    def wait_log(self, text: str, timeout: float = 30) -> float:
        return until(lambda: text in self.log_text(), timeout, self)

    def wait_ready(self, timeout: float = 30) -> float:
        return self.wait_log('event="daemon ready"', timeout)

    def terminate(self, timeout: float = 10) -> tuple[int, float]:
        """SIGTERM; the exit code and how long the exit took."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._stderr.close()
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._stderr.close()


class SmtpProcess:
    """The crash-test SMTP server (own process, fsync'ed log) on a fixed port."""

    def __init__(
        self, port: int, log: Path, delay: float = 0.0, *, pipelining: bool = False
    ) -> None:
        self.port = port
        self.log = ServerLog(log)
        self._process = start_server(port, log, delay, pipelining=pipelining)

    def read(self) -> Snapshot:
        return self.log.read()

    def received(self) -> Counter[str]:
        return Counter(rcpt for rcpt, _ in self.log.read().messages)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
        self._process.wait(timeout=10)
