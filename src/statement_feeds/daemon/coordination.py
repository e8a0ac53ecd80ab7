"""The daemon among several on one database: heartbeats, leadership, wake-ups.

Used only with ``[state] url`` (see :mod:`statement_feeds.state.coordination`); alone on
SQLite the daemon holds the state folder's file locks instead and leads for ever.

* every ``--heartbeat`` seconds a heartbeat (in a thread: it is a network round trip)
  says whether we lead; on a change :class:`~.editions.Editions` starts or stops
  scheduling. Taking over runs the catch-up, so an edition due while the old leader
  was dying is planned (once: the ledger's unique key on frequency + due time);
* a failed heartbeat (the database restarting, our session terminated) counts as
  "not leading" at once: better no scheduler for a moment than two;
* every daemon listens for wake-ups (``digest send`` on any host, or the leader once it
  planned an edition) and delivers;
* on SIGTERM, leadership is given up first, before the in-flight work is finished, so
  another daemon takes over at its next heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import StatementFeedsError
from ..logs import event
from ..state.coordination_api import Coordinator
from .editions import Editions
from .timers import Tasks

__all__ = ["Coordination", "register"]

log = logging.getLogger(__name__)


def register(coordinator: Coordinator) -> None:
    """Add this process to the daemons' table and listen (before the loop starts, so
    an unreachable database stops ``run`` with a clear error, exit code 2)."""
    host = socket.gethostname()
    pid = os.getpid()
    # The pid alone could repeat on a host (pid reuse after a restart); the suffix not.
    coordinator.start(f"{host}:{pid}:{uuid.uuid4().hex[:8]}", host, pid)
    event(log, logging.INFO, "coordination started", host=host, interval_s=coordinator.interval)


class Coordination:
    def __init__(
        self, coordinator: Coordinator, editions: Editions, stop: asyncio.Event, tasks: Tasks
    ) -> None:
        self.coordinator = coordinator
        self._editions = editions
        self._stop = stop
        self._tasks = tasks
        self._leading = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="coordination")

    async def stopped(self) -> None:
        """Wait until leadership is given up and our row removed (after ``stop``)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def planned(self) -> None:
        """The leader planned an edition: wake every sender (ourselves included)."""
        self._tasks.spawn(self._call("wake the senders", self.coordinator.notify_send))

    async def _run(self) -> None:
        listening = asyncio.get_running_loop().create_task(self._wake_loop(), name="wake-ups")
        try:
            while not self._stop.is_set():
                await self._beat()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.coordinator.interval)
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            await self._call("leave", self.coordinator.close)
            if self._leading:
                event(log, logging.INFO, "leadership released")

    async def _beat(self) -> None:
        # Without a runner (digests disabled here) we could lead but never plan: we would
        # keep a daemon that can from leading. So such a daemon only beats.
        contend = self._editions.runner is not None
        beat = functools.partial(self.coordinator.heartbeat, contend=contend)
        leading = await self._call("heartbeat", beat) is True
        if leading and not self._leading:
            event(log, logging.INFO, "leadership acquired", pid=os.getpid())
            self._editions.lead()
        elif self._leading and not leading:
            event(log, logging.WARNING, "leadership lost: scheduling stops", pid=os.getpid())
            self._editions.follow()
        self._leading = leading

    async def _wake_loop(self) -> None:
        while not self._stop.is_set():
            try:
                # Also returns once listening again after a loss (wake-ups may be missed).
                await self.coordinator.wait_for_wakeup()
            except StatementFeedsError as exc:
                event(log, logging.WARNING, "wake-ups lost, listening again", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.coordinator.interval)
                continue
            event(log, logging.INFO, "woken to deliver", source="notify")
            if not self._stop.is_set():
                self._tasks.spawn(self._editions.resume())

    async def _call(self, what: str, call: Callable[[], Any]) -> Any:
        """A blocking coordinator call in a thread; its failure is logged, not raised."""
        try:
            return await asyncio.to_thread(call)
        except StatementFeedsError as exc:
            event(log, logging.WARNING, f"{what} failed", error=str(exc))
            return None
