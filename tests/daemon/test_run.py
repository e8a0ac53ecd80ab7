"""`statement-feeds run` as a real subprocess in a temp site: files, watching, the lock,
signals and the clock are real; only the digest side is a recording test double
(:class:`RecordingRunner`, loaded by running this file as the entry point).

Time is controlled with ``$STATEMENT_FEEDS_FAKE_START`` (a clock that advances from a
pinned start), never by sleeping until a real 07:00.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve()
CONFIG = """\
[site]
title = "Test Statements"
url = "https://example.org/"
default_language = "en"
timezone = "Europe/London"

[paths]
statements = "statements"
templates = "templates"
subscribers = "subscribers"
output = "public"
state = "state"
outbox = "outbox"

[feeds]
max_entries = {max_entries}

[digest]
daily = "0 7 * * *"
weekly = "0 7 * * mon"
misfire_grace = "{grace}"
"""


def statement(title: str, date: str = "2024-01-01", body: str = "Some words.") -> str:
    return f'---\ntitle: "{title}"\ndate: {date}\n---\n\n{body}\n'


class Site:
    def __init__(self, root: Path, max_entries: int = 50, grace: str = "6h") -> None:
        self.root = root
        for name in ("statements", "templates", "subscribers"):
            (root / name).mkdir(parents=True, exist_ok=True)
        self.config = root / "statement-feeds.toml"
        self.config.write_text(CONFIG.format(max_entries=max_entries, grace=grace))
        self.statements = root / "statements"
        self.feed = root / "public" / "feeds" / "en.atom"
        self.record = root / "record.jsonl"
        self.log = root / "daemon.log"

    def write(self, name: str, text: str) -> Path:
        """Like an editor: temp file, then rename over the target."""
        path = self.statements / name
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.swp")
        temp.write_text(text)
        os.replace(temp, path)
        return path

    def feed_text(self) -> str:
        try:
            return self.feed.read_text()
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def records(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]

    def editions(self) -> list[tuple[str, str]]:
        return [(r["frequency"], r["due_at"]) for r in self.records() if r["call"] == "run_edition"]


class Daemon:
    def __init__(self, site: Site, *args: str, env: dict[str, str] | None = None) -> None:
        self.site = site
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            daemon_command(site, *args),
            stdout=subprocess.DEVNULL,
            stderr=site.log.open("a"),
            env={**os.environ, "RECORD": str(site.record), **(env or {})},
            cwd=site.root,
        )

    def wait_ready(self, timeout: float = 20) -> None:
        until(lambda: 'event="daemon ready"' in self.site.log_text(), timeout, self)

    def stop(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def daemon_command(site: Site, *args: str, harness: bool = True) -> list[str]:
    entry = [str(HERE)] if harness else ["-m", "statement_feeds"]
    return [sys.executable, *entry, "--config", str(site.config), "-v", "run", *args]


def until(check: Callable[[], bool], timeout: float = 10, daemon: Daemon | None = None) -> float:
    """Poll ``check`` until true; returns the seconds it took."""
    start = time.monotonic()
    while not check():
        if daemon is not None and daemon.proc.poll() is not None:
            raise AssertionError(
                f"daemon exited {daemon.proc.returncode}:\n{daemon.site.log_text()}"
            )
        if time.monotonic() - start > timeout:
            log = daemon.site.log_text() if daemon else ""
            raise AssertionError(f"timed out after {timeout}s\n{log}")
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


@pytest.fixture
def running(site: Site) -> Iterator[Daemon]:
    site.write("first.md", statement("First statement"))
    daemon = Daemon(site, "--rescan", "30")
    daemon.wait_ready()
    yield daemon
    if daemon.proc.poll() is None:
        daemon.proc.kill()
        daemon.proc.wait()


# ---- feeds -------------------------------------------------------------------------------


def test_new_edit_delete_rename_reach_the_feed(site: Site, running: Daemon) -> None:
    assert "First statement" in site.feed_text()
    site.write("second.md", statement("Second statement", "2024-02-01"))
    until(lambda: "Second statement" in site.feed_text(), daemon=running)
    # The pages follow in the same build: the feed's "Full statement" link lands.
    until(lambda: "Second statement" in _page(site, "en/second/"), daemon=running)
    site.write("second.md", statement("Second statement, corrected", "2024-02-01"))
    until(lambda: "Second statement, corrected" in site.feed_text(), daemon=running)
    until(lambda: "Second statement, corrected" in _page(site, "en/second/"), daemon=running)
    assert "First statement" in _page(site, "en/first/")
    (site.statements / "first.md").unlink()
    until(lambda: "First statement" not in site.feed_text(), daemon=running)
    until(lambda: not (site.root / "public/en/first").exists(), daemon=running)
    before = site.feed_text()
    (site.statements / "2024").mkdir()
    os.rename(site.statements / "second.md", site.statements / "2024" / "renamed.md")
    # A rename keeps the statement's identity, so the feed does not change: wait until a
    # build has recorded the new path (counting "build done" lines raced with the build
    # the mkdir caused), then edit the file to see that it is followed at its new path.
    until(lambda: _recorded_sources(site) == {"2024/renamed.md"}, daemon=running)
    site.write("2024/renamed.md", statement("Second statement, renamed", "2024-02-01"))
    until(lambda: "Second statement, renamed" in site.feed_text(), daemon=running)
    assert _entry_ids(site.feed_text()) == _entry_ids(before)  # same id, same url
    assert "/en/second/" in site.feed_text()
    assert running.stop() == 0


def _page(site: Site, path: str) -> str:
    try:
        return (site.root / "public" / path / "index.html").read_text("utf-8")
    except FileNotFoundError:
        return ""


def _recorded_sources(site: Site) -> set[str]:
    """The statement files the daemon's last build recorded (its build cache)."""
    path = site.root / "state" / "cache.sqlite"
    if not path.exists():
        return set()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return {source for (source,) in db.execute("SELECT source FROM files")}
    except sqlite3.OperationalError:
        return set()  # being created
    finally:
        db.close()


def _entry_ids(feed: str) -> list[str]:
    return re.findall(r"<entry>\s*<id>([^<]+)</id>", feed)


def test_in_place_slow_write_is_not_published_half_way(site: Site, running: Daemon) -> None:
    path = site.statements / "slow.md"
    text = statement("Slow statement", body="word " * 2000)
    with path.open("w") as handle:  # in place, in pieces: no rename
        for start in range(0, len(text), 2000):
            handle.write(text[start : start + 2000])
            handle.flush()
            time.sleep(0.01)
    until(lambda: "Slow statement" in site.feed_text(), daemon=running)
    assert "slow.md" not in site.log_text()  # never reported as a broken file
    assert running.stop() == 0


def test_burst_of_a_thousand_files_is_picked_up_completely(tmp_path: Path) -> None:
    site = Site(tmp_path, max_entries=5000)
    daemon = Daemon(site, "--rescan", "120")
    try:
        daemon.wait_ready()
        for i in range(1000):
            (site.statements / f"burst-{i:04d}.md").write_text(statement(f"Burst {i:04d}"))
        until(lambda: site.feed_text().count("<entry") == 1000, 60, daemon)
        assert all(f"Burst {i:04d}" in site.feed_text() for i in range(1000))
    finally:
        assert daemon.stop() == 0


def test_invalid_file_is_reported_once_and_the_rest_stays_published(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.write("good.md", statement("Good statement"))
    daemon = Daemon(site, "--rescan", "0.3")
    try:
        daemon.wait_ready()
        site.write("bad.md", "---\ntitle: no date\n---\n\nbody\n")
        until(lambda: "bad.md" in site.log_text(), daemon=daemon)
        until(lambda: site.log_text().count("reason=rescan") >= 4, daemon=daemon)
        assert site.log_text().count('event="file problem" path=bad.md') == 1
        assert "Good statement" in site.feed_text()
    finally:
        assert daemon.stop() == 0


def test_embargo_is_published_on_time_without_a_file_event(tmp_path: Path) -> None:
    site = Site(tmp_path)
    start = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)
    site.write("now.md", statement("Public already", "2025-01-15T11:00:00+00:00"))
    site.write("later.md", statement("Embargoed", "2025-01-15T12:00:05+00:00"))
    spawned = time.monotonic()
    daemon = Daemon(site, "--rescan", "600", env={"STATEMENT_FEEDS_FAKE_START": start.isoformat()})
    try:
        daemon.wait_ready()
        assert "Public already" in site.feed_text()
        assert "Embargoed" not in site.feed_text()
        assert _page(site, "en/later/") == ""
        until(lambda: "Embargoed" in site.feed_text(), 15, daemon)
        until(lambda: "Embargoed" in _page(site, "en/later/"), 2, daemon)
        appeared = time.monotonic() - spawned
        # The fake clock starts a little after the spawn, so "5 s" is at least 5 s here.
        assert 5.0 <= appeared < 8.0, appeared
        until(lambda: "reason=embargo" in site.log_text(), daemon=daemon)  # logged after
    finally:
        assert daemon.stop() == 0


# ---- operating it ----------------------------------------------------------------------


def test_second_instance_is_refused_with_the_holders_pid(site: Site, running: Daemon) -> None:
    second = subprocess.run(
        daemon_command(site, harness=False), check=False, capture_output=True, text=True, timeout=30
    )
    assert second.returncode == 2
    assert str(running.proc.pid) in second.stderr
    assert "only one daemon" in second.stderr
    assert running.proc.poll() is None


def test_sigterm_exits_zero_quickly(site: Site) -> None:
    site.write("first.md", statement("First"))
    daemon = Daemon(site)  # via `python -m statement_feeds`, no digest runner
    daemon.proc.kill()
    daemon.proc.wait()
    proc = subprocess.Popen(
        daemon_command(site, harness=False), stderr=site.log.open("a"), cwd=site.root
    )
    until(lambda: 'event="daemon ready"' in site.log_text(), 20)
    assert "digests disabled" in site.log_text()
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - start < 10
    assert 'event="daemon stopped"' in site.log_text()


def test_sigterm_during_an_edition_lets_the_runner_record_and_exits_zero(tmp_path: Path) -> None:
    site = Site(tmp_path)
    env = {"STATEMENT_FEEDS_FAKE_START": "2025-01-15T08:00:00+00:00", "EDITION_SECONDS": "60"}
    daemon = Daemon(site, env=env)
    until(lambda: site.editions() != [], 20, daemon)
    start = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - start < 10
    assert [r["call"] for r in site.records()][-1] == "edition_interrupted"


def test_sighup_with_a_broken_config_keeps_running(site: Site, running: Daemon) -> None:
    good = site.config.read_text()
    site.config.write_text("this is [not toml")
    running.proc.send_signal(signal.SIGHUP)
    until(lambda: "reload failed" in site.log_text(), daemon=running)
    site.write("after.md", statement("After the broken reload"))
    until(lambda: "After the broken reload" in site.feed_text(), daemon=running)
    site.config.write_text(good.replace("Test Statements", "Renamed Site"))
    running.proc.send_signal(signal.SIGHUP)
    until(lambda: "Renamed Site" in site.feed_text(), daemon=running)
    assert running.stop() == 0


# ---- scheduling with a controllable clock --------------------------------------------------

DUE = "2025-01-15T07:00:00+00:00"  # a Wednesday: daily due at 07:00 GMT


def test_down_over_a_due_time_within_grace_sends_once_on_start(site: Site) -> None:
    env = {"STATEMENT_FEEDS_FAKE_START": "2025-01-15T08:00:00+00:00"}
    daemon = Daemon(site, "--rescan", "0.3", env=env)
    daemon.wait_ready()
    until(lambda: site.editions() == [("daily", DUE)], daemon=daemon)
    until(lambda: site.log_text().count("reason=rescan") >= 3, daemon=daemon)
    assert daemon.stop() == 0
    assert site.editions() == [("daily", DUE)]  # weekly (Monday 07:00) is 2 days late
    assert "edition skipped" in site.log_text()
    # A restart just after: the ledger has the edition, nothing is sent again.
    env = {"STATEMENT_FEEDS_FAKE_START": "2025-01-15T08:30:00+00:00"}
    again = Daemon(site, "--rescan", "0.3", env=env)
    again.wait_ready()
    until(lambda: site.log_text().count("reason=rescan") >= 6, daemon=again)
    assert again.stop() == 0
    assert site.editions() == [("daily", DUE)]


def test_down_over_a_due_time_beyond_grace_skips(site: Site) -> None:
    env = {"STATEMENT_FEEDS_FAKE_START": "2025-01-15T13:30:00+00:00"}  # 6h30 late
    daemon = Daemon(site, "--rescan", "0.3", env=env)
    daemon.wait_ready()
    until(lambda: "edition skipped" in site.log_text(), daemon=daemon)
    until(lambda: site.log_text().count("reason=rescan") >= 3, daemon=daemon)
    assert daemon.stop() == 0
    assert site.editions() == []
    assert site.log_text().count('event="edition skipped') == 2  # daily and weekly, once each


def test_due_time_passing_while_running_sends_once(site: Site) -> None:
    env = {"STATEMENT_FEEDS_FAKE_START": "2025-01-15T06:59:57+00:00"}
    daemon = Daemon(site, "--rescan", "0.5", env=env)
    daemon.wait_ready()
    until(lambda: site.editions() != [], 15, daemon)
    time.sleep(1.5)  # let rescans' ledger checks run: they must not send again
    assert daemon.stop() == 0
    assert site.editions() == [("daily", DUE)]


@pytest.mark.parametrize(("grace", "expected"), [("6h", [("daily", DUE)]), ("2s", [])])
def test_sigstop_sigcont_across_a_due_time(
    tmp_path: Path, grace: str, expected: list[tuple[str, str]]
) -> None:
    site = Site(tmp_path, grace=grace)
    spawned = time.monotonic()
    env = {"STATEMENT_FEEDS_FAKE_START": "2025-01-15T06:59:52+00:00"}  # due in 8 s
    daemon = Daemon(site, "--rescan", "0.5", env=env)
    daemon.wait_ready()
    daemon.proc.send_signal(signal.SIGSTOP)
    assert time.monotonic() - spawned < 7, "too slow to stop before the due time"
    assert site.editions() == []
    # Resume 5-8 s after the due time (the fake clock started up to ~3 s after spawn):
    # within a 6h grace the edition is sent once; beyond a 2s grace it is skipped.
    time.sleep(max(0.0, spawned + 16 - time.monotonic()))
    daemon.proc.send_signal(signal.SIGCONT)
    if expected:
        until(lambda: site.editions() != [], 10, daemon)
    time.sleep(2)  # rescans and the scheduler had their chance to send a second time
    assert daemon.stop() == 0
    assert site.editions() == expected


def test_deferred_deliveries_resume_on_start_and_at_the_retry_time(site: Site) -> None:
    start = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
    env = {
        "STATEMENT_FEEDS_FAKE_START": start.isoformat(),
        "RETRY_AT": (start + timedelta(seconds=4)).isoformat(),
    }
    daemon = Daemon(site, "--rescan", "600", env=env)
    daemon.wait_ready()
    until(lambda: sum(r["call"] == "resume" for r in site.records()) == 2, 15, daemon)
    assert daemon.stop() == 0
    resumes = [datetime.fromisoformat(r["at"]) for r in site.records() if r["call"] == "resume"]
    assert resumes[0] < start + timedelta(seconds=4) <= resumes[1]


# ---- the digest side, as a recording test double -------------------------------------------


class RecordingRunner:
    """Implements daemon.EditionRunner; its "ledger" is a JSON-lines file that survives
    restarts, so the daemon's once-per-due-time logic is checked across processes."""

    def __init__(self, path: Path, clock: Callable[[], datetime]) -> None:
        self.path = path
        self.clock = clock

    def _write(self, **record: Any) -> None:
        record["at"] = self.clock().isoformat()
        record["pid"] = os.getpid()  # several daemons may share one record (a ledger)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def _records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    async def run_edition(
        self,
        frequency: str,
        due_at: datetime,
        stop: asyncio.Event,
        *,
        planned: Callable[[], None] | None = None,
    ) -> None:
        self._write(call="run_edition", frequency=frequency, due_at=due_at.isoformat())
        if planned is not None:
            planned()
        seconds = float(os.environ.get("EDITION_SECONDS", "0"))
        try:
            await asyncio.wait_for(stop.wait(), seconds)
            self._write(call="edition_interrupted")
        except TimeoutError:
            self._write(call="edition_done")

    async def resume_deliveries(self, stop: asyncio.Event) -> None:
        self._write(call="resume")

    def edition_exists(self, frequency: str, due_at: datetime) -> bool:
        return any(
            r["call"] == "run_edition"
            and r["frequency"] == frequency
            and datetime.fromisoformat(r["due_at"]) == due_at
            for r in self._records()
        )

    def next_retry_at(self) -> datetime | None:
        retry = os.environ.get("RETRY_AT")
        if not retry:
            return None
        when = datetime.fromisoformat(retry)
        done = any(
            r["call"] == "resume" and datetime.fromisoformat(r["at"]) >= when
            for r in self._records()
        )
        return None if done else when

    def history_start(self) -> datetime | None:
        # An established site: every due time in these tests is after its start.
        return datetime(2000, 1, 1, tzinfo=UTC)

    def reload(self, config: object) -> None:
        self._write(call="reload")

    def subscribers_changed(self) -> None:
        self._write(call="subscribers")


if __name__ == "__main__":  # the real CLI, with the recording runner plugged in
    import statement_feeds.daemon.run as daemon_module
    from statement_feeds.cli import main

    record = Path(os.environ["RECORD"])
    daemon_module.build_runner = lambda config, clock: RecordingRunner(record, clock)
    main()


def test_waits_for_a_running_digest_send_instead_of_refusing_to_start(site: Site) -> None:
    from statement_feeds.state.lock import SENDER_LOCK, StateLock

    site.write("first.md", statement("First statement"))
    sender = StateLock(site.root / "state", SENDER_LOCK)
    sender.acquire()  # as `digest send` does while it delivers
    daemon = Daemon(site)
    try:
        until(lambda: "waiting for digest send to finish" in site.log_text(), 20, daemon)
        assert 'event="daemon ready"' not in site.log_text()
        sender.release()
        daemon.wait_ready()
    finally:
        sender.release()
        assert daemon.stop() == 0


def test_subscribers_without_public_url_is_a_configuration_error(site: Site) -> None:
    (site.root / "subscribers" / "list.csv").write_text("email\na@example.org\n")
    result = subprocess.run(
        daemon_command(site, harness=False),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=site.root,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "http.public_url" in result.stderr


def _thread_heaps(pid: int) -> int:
    """glibc's thread arenas in a process's memory map: each is an anonymous 64 MiB
    reservation (partly usable, partly PROT_NONE) at a 64 MiB-aligned address."""
    size = 64 << 20
    regions = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        low, high = (int(x, 16) for x in fields[0].split("-"))
        regions.append((low, high, len(fields) > 5))
    heaps = 0
    for index, (low, high, named) in enumerate(regions):
        if named or low % size:
            continue
        end = high
        for next_low, next_high, next_named in regions[index + 1 :]:
            if next_low != end or next_named or end - low >= size:
                break
            end = next_high
        heaps += end - low == size
    return heaps


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc (Linux)")
def test_daemon_threads_share_one_malloc_arena(site: Site, running: Daemon) -> None:
    # Builds ran in worker threads by now; with an arena each, free space fragmented
    # across arenas made RSS creep under churn (bench/README.md). A plain Python with
    # threads shows such heaps, so this can see them (tests/daemon/test_memory.py).
    site.write("new.en.md", statement("Another"))
    until(lambda: "Another" in site.feed_text(), daemon=running)
    assert _thread_heaps(running.proc.pid) == 0
