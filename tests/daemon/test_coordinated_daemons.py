"""Several ``run`` daemons on one PostgreSQL database, as real processes.

The digest side is test_run.py's recording runner (its "ledger" a JSON-lines file the
daemons share, each record with the writer's pid), so these run before the PostgreSQL
store exists; coordination itself (leader, heartbeats, NOTIFY) is the real thing.
Time: ``$STATEMENT_FEEDS_FAKE_START`` (an advancing clock per process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pg_coordination_helpers import execute, fresh_database, leader_backend, with_port
from statement_feeds.state.postgres_coordination import PostgresCoordinator

pytestmark = pytest.mark.slow
HARNESS = Path(__file__).with_name("test_run.py")  # the CLI with the recording runner
DUE = "2025-01-15T07:00:00+00:00"  # a Wednesday: daily due at 07:00 GMT
CONFIG = """\
[site]
title = "Test Statements"
url = "https://example.org/"
default_language = "en"
timezone = "Europe/London"

[digest]
daily = "0 7 * * *"
weekly = "0 7 * * mon"

[state]
url = "{url}"
"""


class Node:
    """One ``run`` daemon with a site folder of its own (as on its own host)."""

    def __init__(
        self,
        root: Path,
        url: str,
        record: Path,
        *args: str,
        env: dict[str, str] | None = None,
        harness: bool = True,
    ) -> None:
        for name in ("statements", "templates", "subscribers"):
            (root / name).mkdir(parents=True, exist_ok=True)
        self.config = root / "statement-feeds.toml"
        self.config.write_text(CONFIG.format(url=url))
        self.log = root / "daemon.log"
        # Not the harness: the real CLI, whose digest side is off here (no public_url).
        entry = [str(HARNESS)] if harness else ["-m", "statement_feeds"]
        command = [sys.executable, *entry, "--config", str(self.config), "-v"]
        self.proc = subprocess.Popen(
            [*command, "run", "--rescan", "600", *args],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("a"),
            env={**os.environ, "RECORD": str(record), **(env or {})},
            cwd=root,
        )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def leads(self) -> bool:
        text = self.log_text()
        return text.count('event="leadership acquired"') > text.count('event="leadership lost')

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log_text()}")
        return 'event="daemon ready"' in self.log_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)


def until(check: Callable[[], bool], timeout: float, *nodes: Node) -> float:
    """Poll ``check`` until true; the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            logs = "\n".join(n.log_text() for n in nodes)
            raise AssertionError(f"timed out after {timeout}s\n{logs}")
        time.sleep(0.02)
    return time.monotonic() - start


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def editions(path: Path) -> list[tuple[str, str, int]]:
    return [
        (r["frequency"], r["due_at"], r["pid"]) for r in records(path) if r["call"] == "run_edition"
    ]


def resumes(path: Path, pid: int) -> int:
    return sum(1 for r in records(path) if r["call"] == "resume" and r["pid"] == pid)


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait()


def start(nodes: list[Node], tmp_path: Path, url: str, *args: str, **env: str) -> Node:
    node = Node(tmp_path / f"host{len(nodes)}", url, tmp_path / "record.jsonl", *args, env=env)
    nodes.append(node)
    until(node.ready, 30, node)
    return node


def daemon_rows(url: str) -> dict[int, bool]:
    return {int(str(p)): bool(lead) for p, lead in execute(url, "SELECT pid, leader FROM daemons")}


@pytest.mark.parametrize("heartbeat", [0.5, 5.0])
def test_kill_9_of_the_leader_hands_over_within_a_heartbeat(
    tmp_path: Path, url: str, nodes: list[Node], heartbeat: float
) -> None:
    beat = ("--heartbeat", str(heartbeat))
    first = start(nodes, tmp_path, url, *beat)
    until(first.leads, 10, first)
    second = start(nodes, tmp_path, url, *beat)
    until(lambda: second.pid in daemon_rows(url), 10, second)
    time.sleep(0.5)
    assert not second.leads()
    assert daemon_rows(url) == {first.pid: True, second.pid: False}

    first.proc.kill()
    first.proc.wait()
    took = until(second.leads, heartbeat + 10, second)
    print(f"\ntakeover after kill -9 of the leader, --heartbeat {heartbeat:g}: {took:.2f} s")
    # The kernel closed the dead leader's socket: the server let the lock go at once,
    # so the follower leads at its next heartbeat.
    assert took <= heartbeat + 1.5
    assert daemon_rows(url)[first.pid] is False  # no longer shown as leading
    if heartbeat < 1:  # (with 5 s this takes 15 s more: same code)
        until(lambda: first.pid not in daemon_rows(url), 3 * heartbeat + 5, second)
    assert second.stop() == 0


def test_status_lists_every_live_daemon(tmp_path: Path, url: str, nodes: list[Node]) -> None:
    first = start(nodes, tmp_path, url, "--heartbeat", "0.5")
    until(first.leads, 10, first)
    second = start(nodes, tmp_path, url, "--heartbeat", "0.5")
    until(lambda: second.pid in daemon_rows(url), 10, second)
    shown = subprocess.run(
        [sys.executable, "-m", "statement_feeds", "--config", str(second.config), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    lines = [line for line in shown.splitlines() if line.startswith("daemon ")]
    assert len(lines) == 2, shown
    assert f"pid {first.pid} leader, last heartbeat 20" in lines[0]
    assert f"pid {second.pid} follower" in lines[1]
    assert "+00:00, started 20" in lines[0] or "+01:00, started 20" in lines[0]  # with offset
    assert first.stop() == 0 and second.stop() == 0
    shown = subprocess.run(
        [sys.executable, "-m", "statement_feeds", "--config", str(second.config), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "daemon   none running (no heartbeat in the last 15 s)" in shown


def test_sigterm_gives_up_leadership_at_once(tmp_path: Path, url: str, nodes: list[Node]) -> None:
    first = start(nodes, tmp_path, url, "--heartbeat", "5")
    until(first.leads, 10, first)
    second = start(nodes, tmp_path, url, "--heartbeat", "5")
    until(lambda: second.pid in daemon_rows(url), 10, second)
    assert first.stop() == 0
    assert leader_backend(url) is None or second.leads()  # released before the exit
    assert first.pid not in daemon_rows(url)  # its row went with it
    assert "leadership released" in first.log_text()
    took = until(second.leads, 5 + 2, second)
    print(f"\ntakeover after SIGTERM of the leader, --heartbeat 5: {took:.2f} s")


def fake_clock(at: str, since: float | None = None) -> dict[str, str]:
    """A fake start of ``at``, or, ``since`` a monotonic time, where a clock that started
    at ``at`` then is now: daemons started one after the other share one fake time."""
    start = datetime.fromisoformat(at)
    if since is not None:
        start += timedelta(seconds=time.monotonic() - since)
    return {"STATEMENT_FEEDS_FAKE_START": start.isoformat()}


def seconds_to_due(at: str, since: float) -> float:
    return (datetime.fromisoformat(DUE) - datetime.fromisoformat(at)).total_seconds() - (
        time.monotonic() - since
    )


def test_a_frozen_leader_keeps_it_and_its_successor_catches_up_once(
    tmp_path: Path, url: str, nodes: list[Node]
) -> None:
    record = tmp_path / "record.jsonl"
    at = "2025-01-15T06:59:40+00:00"  # due in 20 s
    first = start(nodes, tmp_path, url, "--heartbeat", "0.5", **fake_clock(at))
    until(first.leads, 10, first)
    second = start(nodes, tmp_path, url, "--heartbeat", "0.5", **fake_clock(at, first.started))
    first.proc.send_signal(signal.SIGSTOP)  # its session lives on: it still leads
    assert seconds_to_due(at, first.started) > 0, "the machine is too slow for this test"
    time.sleep(seconds_to_due(at, first.started) + 2)  # past 07:00 for both
    assert editions(record) == []  # a follower never plans, whatever its clock says
    assert not second.leads()
    first.proc.kill()  # the dead leader's edition is planned by the next one, once
    until(lambda: editions(record) != [], 10, second)
    time.sleep(1.5)
    assert editions(record) == [("daily", DUE, second.pid)]
    assert second.leads()
    assert second.stop() == 0


def test_the_leader_plans_once_and_every_daemon_is_woken_to_send(
    tmp_path: Path, url: str, nodes: list[Node]
) -> None:
    record = tmp_path / "record.jsonl"
    at = "2025-01-15T06:59:50+00:00"  # due in 10 s
    first = start(nodes, tmp_path, url, "--heartbeat", "0.5", **fake_clock(at))
    until(first.leads, 10, first)
    second = start(nodes, tmp_path, url, "--heartbeat", "0.5", **fake_clock(at, first.started))
    assert seconds_to_due(at, first.started) > 0.5, "the machine is too slow for this test"
    assert resumes(record, second.pid) == 1  # its start
    until(lambda: editions(record) != [], 20, first, second)
    # The leader's NOTIFY once it planned: the follower delivers too, at once.
    until(lambda: resumes(record, second.pid) == 2, 5, second)
    time.sleep(1)
    assert editions(record) == [("daily", DUE, first.pid)]
    # `digest send` on any host wakes them all the same way.
    before = resumes(record, first.pid), resumes(record, second.pid)
    waker = PostgresCoordinator(url)
    waker.notify_send()
    waker.close()
    until(lambda: resumes(record, first.pid) > before[0], 5, first)
    until(lambda: resumes(record, second.pid) > before[1], 5, second)
    assert first.stop() == 0 and second.stop() == 0


def test_an_unreachable_database_stops_run_with_exit_2(tmp_path: Path, url: str) -> None:
    root = tmp_path / "host"
    root.mkdir()
    config = root / "statement-feeds.toml"
    config.write_text(CONFIG.format(url=with_port(url, 1)))
    result = subprocess.run(
        [sys.executable, "-m", "statement_feeds", "--config", str(config), "run"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=root,
    )
    assert result.returncode == 2, result.stderr
    assert "cannot connect to the state database 127.0.0.1:1/" in result.stderr


def test_a_leader_whose_session_is_terminated_stops_scheduling_and_rejoins(
    tmp_path: Path, url: str, nodes: list[Node]
) -> None:
    first = start(nodes, tmp_path, url, "--heartbeat", "0.5")
    until(first.leads, 10, first)
    second = start(nodes, tmp_path, url, "--heartbeat", "0.5")
    until(lambda: second.pid in daemon_rows(url), 10, second)
    backend = leader_backend(url)
    assert backend is not None
    execute(url, "SELECT pg_terminate_backend(%s)", [backend])
    until(lambda: "leadership lost: scheduling stops" in first.log_text(), 10, first)
    until(second.leads, 10, second)
    # The first reconnected and goes on beating, as a follower.
    until(lambda: daemon_rows(url) == {first.pid: False, second.pid: True}, 10, first, second)
    assert not first.leads()
    assert 'event="heartbeat failed"' in first.log_text()
    assert first.stop() == 0 and second.stop() == 0


def settled_resumes(record: Path, pid: int, quiet: float = 1.0, timeout: float = 15) -> int:
    """The daemon's count of deliveries once it has not changed for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = resumes(record, pid), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries never settled: {last}")
        time.sleep(0.05)
        now = resumes(record, pid)
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_a_lost_listening_connection_is_made_again_and_wakes_still_arrive(
    tmp_path: Path, url: str, nodes: list[Node]
) -> None:
    record = tmp_path / "record.jsonl"
    node = start(nodes, tmp_path, url, "--heartbeat", "0.5")
    until(node.leads, 10, node)
    listening = execute(
        url,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND query ILIKE 'LISTEN%%'",
    )
    assert len(listening) == 1
    # The start-up deliveries (and a catch-up edition the new leader plans) are done first.
    started = settled_resumes(record, node.pid)
    execute(url, "SELECT pg_terminate_backend(%s)", [listening[0][0]])
    until(lambda: 'event="wake-ups lost, listening again"' in node.log_text(), 10, node)
    # Listening again, it delivers once (a wake-up may have been missed meanwhile) ...
    until(lambda: resumes(record, node.pid) == started + 1, 10, node)
    time.sleep(1)
    assert resumes(record, node.pid) == started + 1
    # ... and wake-ups reach it again.
    waker = PostgresCoordinator(url)
    waker.notify_send()
    waker.close()
    until(lambda: resumes(record, node.pid) == started + 2, 5, node)
    assert node.leads()  # the heartbeat connection was not touched
    assert node.stop() == 0


def test_a_daemon_with_digests_disabled_leaves_leadership_to_one_that_can_plan(
    tmp_path: Path, url: str, nodes: list[Node]
) -> None:
    feeds_only = Node(
        tmp_path / "feeds-only", url, tmp_path / "record.jsonl", "--heartbeat", "0.5",
        harness=False,
    )  # fmt: skip
    nodes.append(feeds_only)
    until(feeds_only.ready, 30, feeds_only)
    until(lambda: feeds_only.pid in daemon_rows(url), 10, feeds_only)
    time.sleep(1)
    assert leader_backend(url) is None  # the lock is free, and left free
    assert "digests disabled" in feeds_only.log_text()
    planner = start(nodes, tmp_path, url, "--heartbeat", "0.5")
    until(planner.leads, 10, planner)
    assert daemon_rows(url) == {feeds_only.pid: False, planner.pid: True}
    assert feeds_only.stop() == 0 and planner.stop() == 0
