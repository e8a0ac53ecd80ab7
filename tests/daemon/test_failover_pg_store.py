"""Leader failover with real ``run`` daemons, the real digest side and the PostgreSQL store.

Three daemons on one fresh database (migrated by
the store itself) and one aiosmtpd server; the leader is killed just before the daily due
time; another daemon takes over and plans the edition once, and every subscriber gets
exactly one message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip(
    "statement_feeds.state.postgres",
    reason="needs the PostgresStore (state/postgres.py, branch pg-store): runs after the merge",
)

from pg_coordination_helpers import execute, fresh_database
from smtp_server import RecordingServer

pytestmark = pytest.mark.slow
SUBSCRIBERS = [f"reader{i}@example.org" for i in range(20)]
CONFIG = """\
[site]
title = "Test Statements"
url = "https://example.org/"
default_language = "en"
timezone = "Europe/London"

[digest]
from = "Statements <statements@example.org>"
daily = "0 7 * * *"
weekly = "0 7 * * mon"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"

[http]
public_url = "https://example.org/news/"

[state]
url = "{url}"
"""
# Published after the subscribers join (the daemons start at 06:59:45), due at 07:00.
STATEMENT = '---\ntitle: "News"\ndate: 2025-01-15T06:59:50+00:00\n---\n\nWords.\n'
CLOCK = {"STATEMENT_FEEDS_FAKE_START": "2025-01-15T06:59:45+00:00"}


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database(daemons_table=False) as url:  # the store's migrations make it
        yield url


def start(root: Path, url: str, smtp: RecordingServer) -> tuple[subprocess.Popen[bytes], Path]:
    for name in ("statements", "subscribers"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "statements" / "news.en.md").write_text(STATEMENT)
    (root / "subscribers" / "list.csv").write_text("email\n" + "\n".join(SUBSCRIBERS) + "\n")
    config = root / "statement-feeds.toml"
    config.write_text(CONFIG.format(smtp_port=smtp.port, url=url))
    log = root / "daemon.log"
    command = [sys.executable, "-m", "statement_feeds", "--config", str(config), "-v", "run"]
    proc = subprocess.Popen(
        [*command, "--rescan", "600", "--heartbeat", "0.5"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("a"),
        env={**os.environ, **CLOCK},
        cwd=root,
    )
    return proc, log


def wait(check: Callable[[], bool], timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out\n" + "\n".join(p.read_text() for p in logs))
        time.sleep(0.05)


def test_the_leader_killed_before_a_due_time_is_replaced_and_the_edition_sent_once(
    tmp_path: Path, url: str
) -> None:
    with RecordingServer() as smtp:
        daemons = [start(tmp_path / f"host{i}", url, smtp) for i in range(3)]
        logs = [log for _, log in daemons]
        try:
            wait(lambda: any("leadership acquired" in p.read_text() for p in logs), 30, logs)
            leader = next(i for i, p in enumerate(logs) if "leadership acquired" in p.read_text())
            daemons[leader][0].kill()  # 06:59:5x: before the due time
            daemons[leader][0].wait()
            wait(lambda: len({m.recipients for m in smtp.messages}) == len(SUBSCRIBERS), 60, logs)
            time.sleep(2)  # nothing more comes
            counts = Counter(r for m in smtp.messages for r in m.recipients)
            assert counts == Counter(SUBSCRIBERS)
            planned = execute(url, "SELECT count(*) FROM editions WHERE frequency = 'daily'")
            assert planned == [(1,)]
        finally:
            for proc, _ in daemons:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(15)
