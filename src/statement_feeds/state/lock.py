"""One daemon per state folder: an ``flock`` on ``<state>/daemon.lock`` holding the pid.

``flock`` rather than "does the pid file exist": the kernel drops the lock when the
holder dies (also on kill -9), so a stale file never blocks a restart. The file is never
deleted: unlinking it while a second process has it open would let a third create a new
file and lock that, and two daemons would run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from pathlib import Path
from types import TracebackType

from ..errors import LockHeldError

__all__ = [
    "LOCK_NAME",
    "SENDER_LOCK",
    "WAKE_SIGNAL",
    "StateLock",
    "live_holder",
    "lock_holder",
]

LOCK_NAME = "daemon.lock"
# Held by whichever process delivers from the ledger (the daemon, for its whole life).
SENDER_LOCK = "sender.lock"
# Sent to the sender-lock holder by `digest send`: "an edition was planned, deliver it".
WAKE_SIGNAL = signal.SIGUSR1


class StateLock:
    """``with StateLock(state_folder):`` — raises :class:`LockHeldError` naming the holder."""

    def __init__(self, state: Path, name: str = LOCK_NAME) -> None:
        self.path = state / name
        self._fd: int | None = None

    def acquire(self, patience: float = 0.25) -> None:
        """Take the lock, or raise LockHeldError naming the holder.

        ``patience``: a `status` probe holds the lock shared for a moment; a few short
        retries keep such a probe from looking like another daemon.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockHeldError(str(self.path), lock_holder(self.path)) from None
                time.sleep(0.02)
        # Written only once the lock is ours, so the pid in the file is always the holder's.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # no stale pid for `status` to show
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def lock_holder(path: Path) -> int | None:
    """The pid written in the lock file, if it can be read (for messages and ``status``)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def live_holder(path: Path) -> int | None:
    """The pid in a lock file if a live process holds that lock (a shared probe, no write)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return lock_holder(path)
    finally:
        os.close(fd)  # also drops the probe's shared lock
    return None
