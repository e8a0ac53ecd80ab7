"""The state lock: one holder, the pid on record, released by the kernel on death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from statement_feeds.errors import LockHeldError
from statement_feeds.state.lock import LOCK_NAME, StateLock, lock_holder

HOLD = """
import sys, time
from pathlib import Path
from statement_feeds.state.lock import StateLock
lock = StateLock(Path(sys.argv[1])); lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_lock_writes_the_pid_and_refuses_a_second_holder(tmp_path: Path) -> None:
    with StateLock(tmp_path / "state") as lock:
        assert lock.held
        assert lock_holder(tmp_path / "state" / LOCK_NAME) == os.getpid()
        with pytest.raises(LockHeldError) as refused:
            StateLock(tmp_path / "state").acquire()  # a second open file: flock conflicts
        assert refused.value.pid == os.getpid()
        assert str(os.getpid()) in str(refused.value)
    assert not lock.held
    assert (tmp_path / "state" / LOCK_NAME).exists()  # never deleted (see module docstring)
    with StateLock(tmp_path / "state"):
        pass  # free again


def test_a_killed_holder_does_not_block_the_next(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeldError) as refused:
            StateLock(tmp_path).acquire()
        assert refused.value.pid == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 5
    while True:
        try:
            with StateLock(tmp_path):
                break
        except LockHeldError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_unreadable_pid_is_reported_as_unknown(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("garbage")
    assert lock_holder(tmp_path / LOCK_NAME) is None
    assert lock_holder(tmp_path / "missing") is None
