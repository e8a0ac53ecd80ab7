"""The daemon's named wake-ups and the background tasks its shutdown waits for."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from ..clock import Clock
from ..logs import event

__all__ = ["Tasks", "Timers"]

log = logging.getLogger(__name__)


class Timers:
    """One-shot wake-ups by name (``embargo``, ``retry``): arming one replaces it.

    Times come from the daemon's clock, so a fake clock's times work unchanged.
    """

    def __init__(self, clock: Clock, stop: asyncio.Event) -> None:
        self._clock = clock
        self._stop = stop
        self._handles: dict[str, asyncio.TimerHandle] = {}

    def __getitem__(self, name: str) -> asyncio.TimerHandle:
        return self._handles[name]

    def arm(self, name: str, when: datetime | None, callback: Callable[[], None]) -> None:
        old = self._handles.pop(name, None)
        if old is not None:
            old.cancel()
        if when is None or self._stop.is_set():
            return
        # The extra 10 ms makes sure "now" is past ``when`` when the timer fires.
        delay = max(0.0, (when - self._clock()).total_seconds()) + 0.01
        self._handles[name] = asyncio.get_running_loop().call_later(delay, callback)
        event(log, logging.DEBUG, "timer armed", timer=name, at=when, delay_s=delay)

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()


class Tasks:
    """Work started from callbacks (signals, timers, file events): kept referenced so it
    is not garbage-collected mid-flight, and awaited or cancelled at shutdown."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()

    def spawn(self, work: Awaitable[None]) -> None:
        async def wrapped() -> None:
            await work

        task = asyncio.get_running_loop().create_task(wrapped())
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def running(self) -> list[asyncio.Task[None]]:
        return list(self._running)
