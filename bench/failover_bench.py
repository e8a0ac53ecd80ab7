"""Leader takeover benchmark: seconds from kill -9 of the leading daemon to a new leader.

    .venv/bin/python bench/failover_bench.py                   # --heartbeat 0.5, 1, 5; 5 kills each
    .venv/bin/python bench/failover_bench.py --heartbeats 5 --kills 10 --daemons 3

Real ``statement-feeds run`` processes (no subscribers) on one fresh
PostgreSQL database (``$STATEMENT_FEEDS_TEST_PG`` or the local server, trust auth),
each with a site folder of its own. Each round kills the leader with SIGKILL, times
until another daemon logs ``leadership acquired`` (polling its log every 10 ms), then
restarts the killed one; the kill comes at a random point of the heartbeat cycle.
A printout, not a test. The kill closes the dead process's
socket, so the server drops its session (and advisory lock) at once: the takeover
waits for the next heartbeat of a follower, at most one interval. A host that vanishes
without closing its sockets adds the TCP keepalive limit (about 11 s) to that.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from statement_feeds.state.postgres_migrations import migrate

BASE = os.environ.get("STATEMENT_FEEDS_TEST_PG") or "postgresql://postgres@127.0.0.1:5432/postgres"
# With the digest side (public_url set, nobody subscribed): a daemon without it never leads.
CONFIG = """[site]
title = "Failover"
url = "https://example.org/"
[http]
public_url = "https://example.org/news/"
[state]
url = "{url}"
"""


class Daemon:
    def __init__(self, root: Path, url: str, heartbeat: float) -> None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "statements").mkdir(exist_ok=True)
        config = root / "statement-feeds.toml"
        config.write_text(CONFIG.format(url=url))
        self.log = root / f"daemon-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "statement_feeds", "--config", str(config), "run",
             "--rescan", "600", "--heartbeat", str(heartbeat)],
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"), cwd=root,
        )  # fmt: skip

    def leads(self) -> bool:
        return 'event="leadership acquired"' in self.log.read_text()

    def ready(self) -> bool:
        return 'event="daemon ready"' in self.log.read_text()


def wait(check: Callable[[], bool], timeout: float = 60.0) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise SystemExit("timed out")
        time.sleep(0.01)
    return time.monotonic() - start


def rounds(url: str, folder: Path, heartbeat: float, kills: int, count: int) -> list[float]:
    daemons = [Daemon(folder / f"host{i}", url, heartbeat) for i in range(count)]
    figures = []
    try:
        for daemon in daemons:
            wait(daemon.ready)
        for _ in range(kills):
            wait(lambda: any(d.leads() for d in daemons))
            leader = next(d for d in daemons if d.leads())
            others = [d for d in daemons if d is not leader]
            # At a random point of the followers' heartbeat cycle, as a crash would be.
            time.sleep(random.uniform(0, heartbeat))
            leader.proc.send_signal(signal.SIGKILL)
            leader.proc.wait()
            figures.append(wait(lambda o=others: any(d.leads() for d in o), heartbeat + 30))
            index = daemons.index(leader)
            daemons[index] = Daemon(folder / f"host{index}", url, heartbeat)
            wait(daemons[index].ready)
    finally:
        for daemon in daemons:
            daemon.proc.terminate()
            daemon.proc.wait()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heartbeats", type=float, nargs="+", default=[0.5, 1.0, 5.0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--daemons", type=int, default=2)
    args = parser.parse_args()
    name = f"sf_failover_{secrets.token_hex(4)}"
    with psycopg.connect(BASE, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        url = urlunsplit(urlsplit(BASE)._replace(path=f"/{name}"))
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                migrate(conn, url)  # the store's own schema, daemons table included
            with tempfile.TemporaryDirectory() as tmp:
                for heartbeat in args.heartbeats:
                    took = rounds(url, Path(tmp) / f"hb{heartbeat}", heartbeat, args.kills,
                                  args.daemons)  # fmt: skip
                    print(
                        f"--heartbeat {heartbeat:g}, {args.daemons} daemons, {len(took)} kills: "
                        f"takeover median {statistics.median(took):.2f} s, "
                        f"min {min(took):.2f} s, max {max(took):.2f} s",
                        flush=True,
                    )
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
