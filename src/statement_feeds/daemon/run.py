"""``statement-feeds run``: build, watch, schedule and send until SIGTERM/SIGINT.

Structure (one asyncio loop, one process, one lock per state folder)::

    run_daemon ── StateLock(<state>/daemon.lock) ── asyncio.run(Daemon.serve)
    run_daemon ── [state] url: register in the database ── asyncio.run(Daemon.serve)

The parts, each in its own module:

* :mod:`.serve` — :class:`Daemon`: the loop, builds, watching, rescans, signals, reload;
* :mod:`.editions` — the cron schedule, catch-up after downtime, retry timers;
* :mod:`.runner` — :class:`EditionRunner`, the digest side as the daemon sees it;
* :mod:`.timers` — named wake-ups and the tasks the shutdown waits for;
* :mod:`.coordination` — several daemons on one database: leader, heartbeats, wake-ups;
* :mod:`.notify` — systemd's ``sd_notify``.

``cli`` looks :func:`build_runner` up here at call time, so a test entry point can
replace it on this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..clock import Clock
from ..config import Config
from ..errors import LockHeldError
from ..logs import event
from ..state.coordination import open_coordinator
from ..state.lock import SENDER_LOCK, StateLock
from ..state.open import open_store
from .coordination import register
from .editions import FIRST_PAUSE, LONGEST_PAUSE
from .memory import share_one_malloc_arena
from .notify import sd_notify
from .runner import FREQUENCIES, EditionRunner, build_runner
from .serve import VERIFY_EVERY, Daemon, DaemonOptions

__all__ = [
    "FIRST_PAUSE",
    "FREQUENCIES",
    "LONGEST_PAUSE",
    "VERIFY_EVERY",
    "Daemon",
    "DaemonOptions",
    "EditionRunner",
    "build_runner",
    "run_daemon",
    "sd_notify",
]

log = logging.getLogger(__name__)


def run_daemon(
    config_path: Path,
    config: Config,
    clock: Clock,
    runner: EditionRunner | None,
    options: DaemonOptions | None = None,
) -> None:
    """Lock the state folder (LockHeldError if taken), then serve until stopped.

    With ``[state] url`` several daemons share the database: no folder lock, the
    coordination (leader, heartbeats, wake-ups through the database) instead."""
    # Before any thread exists: builds run in threads, and an arena per thread let
    # RSS creep under churn (adapters/memory.py).
    share_one_malloc_arena()
    options = options or DaemonOptions()
    coordinator = open_coordinator(config, options.heartbeat)
    if coordinator is not None:
        try:
            # Migrated first: the heartbeats write the store's `daemons` table.
            open_store(config).close()
            register(coordinator)  # StateError (exit 2) when the database cannot be reached
            daemon = Daemon(config_path, config, clock, runner, options, coordinator=coordinator)
            asyncio.run(daemon.serve())
        finally:
            coordinator.close()  # normally done already, on the way out of serve
        return
    # The sender lock too, for the daemon's whole life: `digest send` run beside it then
    # only plans, and wakes us (WAKE_SIGNAL) to deliver, so one process sends at a time.
    with StateLock(config.paths.state) as lock:
        event(log, logging.INFO, "lock acquired", path=str(lock.path), pid=os.getpid())
        with _sender_lock(config.paths.state):
            daemon = Daemon(config_path, config, clock, runner, options)
            asyncio.run(daemon.serve())


@contextlib.contextmanager
def _sender_lock(state: Path) -> Iterator[None]:
    """The sender lock; a `digest send` may hold it for a while: wait for it to finish
    (saying so once) rather than refusing to start, which systemd would not retry."""
    lock = StateLock(state, SENDER_LOCK)
    said = False
    while True:
        try:
            lock.acquire()
            break
        except LockHeldError as held:
            if not said:
                event(log, logging.WARNING, "waiting for digest send to finish", pid=held.pid)
                said = True
            time.sleep(0.5)
    try:
        yield
    finally:
        lock.release()
