"""The state store for the web side, on one dedicated thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ..config import Config
from ..state.api import Store
from ..state.open import open_store

__all__ = ["StoreThread"]

T = TypeVar("T")


class StoreThread:
    """The state store on one dedicated thread.

    Store calls block (a busy daemon can hold SQLite's write lock for seconds while
    it plans an edition); running them here keeps the event loop, which the daemon
    shares, responsive. One thread, because a sqlite3 connection belongs to the
    thread that opened it.
    """

    def __init__(self, where: Config | Path) -> None:
        self._where = where  # a config (SQLite or PostgreSQL), or a SQLite state folder
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="statement-feeds-web-store")
        self._store: Store | None = None

    async def run(self, function: Callable[[Store], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._call, function)

    def _call(self, function: Callable[[Store], T]) -> T:
        if self._store is None:
            self._store = open_store(self._where)
        return function(self._store)

    async def close(self) -> None:
        def shut(_: Store | None = None) -> None:
            if self._store is not None:
                self._store.close()
                self._store = None

        await asyncio.get_running_loop().run_in_executor(self._pool, shut)
        self._pool.shutdown(wait=True)
