"""A killed ``build`` or ``run`` leaves no process behind.

The command runs as a real subprocess in a session of its own, on a corpus big enough
for a cold build to start worker processes; it is killed with SIGKILL while they run.
Workers keep the session and process group of the command even when orphaned (they
are re-parented, not moved), so an empty group after the kill means none survived.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from statement_feeds.feeds import parse as parsing

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: no worker processes"),
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc"),
]

MakeSite = Callable[..., Path]
BODY = " ".join(f"word{n}" for n in range(300)) + "\n\nA second paragraph, *emphasised*.\n"


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry))
    return members


def write_corpus(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        text = f"---\ntitle: Statement {n}\ndate: 2024-01-{n % 28 + 1:02d}\n---\n\n{BODY}"
        (folder / f"s{n:05d}.{('en', 'ru')[n % 2]}.md").write_text(text, encoding="utf-8")


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Commands the test starts; afterwards their whole group is killed (a failing test
    must not leave its orphans behind either)."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in group_members(process.pid):
            os.kill(pid, signal.SIGKILL)


def start(config: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEMENT_FEEDS_")}
    return subprocess.Popen(
        [sys.executable, "-m", "statement_feeds", "--config", str(config), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, which its workers inherit
    )


def kill_while_workers_run(process: subprocess.Popen[bytes], state: Path) -> None:
    """SIGKILL ``process`` while its workers parse: once one wrote to the build's spool
    (``<state>/spool-<pid>-*/<worker pid>.html``) and it still runs."""
    deadline = time.monotonic() + 60
    while not list(state.glob(f"spool-{process.pid}-*/*.html")):
        assert process.poll() is None, "the command ended before its workers were seen"
        assert time.monotonic() < deadline, "no worker process started parsing"
        time.sleep(0.01)
    workers = [p for p in group_members(process.pid) if p != process.pid]
    assert len(workers) >= 2
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def assert_group_empties(pgid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while members := group_members(pgid):
        if time.monotonic() > deadline:
            commands = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:80] for p in members}
            raise AssertionError(f"left behind {timeout}s after the kill: {commands}")
        time.sleep(0.05)


def test_a_killed_cold_build_leaves_no_worker_behind(
    tmp_path: Path, make_site: MakeSite, started: list[subprocess.Popen[bytes]]
) -> None:
    config = make_site(tmp_path / "site")
    # Forked workers (no other thread in `build`) parse from _PARALLEL_FROM files on.
    write_corpus(config.parent / "statements", 6 * parsing._PARALLEL_FROM)
    process = start(config, "build")
    started.append(process)
    kill_while_workers_run(process, config.parent / "state")
    assert_group_empties(process.pid)


def test_a_daemon_killed_while_building_leaves_no_worker_behind(
    tmp_path: Path, make_site: MakeSite, started: list[subprocess.Popen[bytes]]
) -> None:
    config = make_site(tmp_path / "site")
    # The daemon builds in a thread, so its workers are spawned (not forked), which
    # pays off only from 8 times as many files.
    write_corpus(config.parent / "statements", 9 * parsing._PARALLEL_FROM)
    process = start(config, "run", "--rescan", "600")
    started.append(process)
    kill_while_workers_run(process, config.parent / "state")
    assert_group_empties(process.pid)
