"""Process pools: ``map`` on every core for big batches, in-process for small ones."""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["process_map", "start_method"]

J = TypeVar("J")
R = TypeVar("R")


def process_map(
    func: Callable[[J], R],
    jobs: Iterator[J],
    *,
    parallel_from: int,
    window: int,
    chunksize: int,
    per_core: int = 1,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[R]:
    """``map(func, jobs)`` in order, on every core once there are ``parallel_from`` jobs.

    ``jobs`` is consumed as workers take them: memory holds about a window of them.
    ``per_core`` workers per core (at most 4 cores): more than one for jobs that
    wait for the disk. ``initializer(*initargs)`` runs once in every worker, and once here when the
    jobs run in this process, so ``func`` sees the same state either way. Forked workers
    inherit ``initargs`` (nothing is pickled): with :func:`start_method` "fork", a caller
    can hand over big data there and send only small jobs (say, indices into it).
    """
    method = start_method()
    if method == "spawn":
        parallel_from *= 8
    first = list(itertools.islice(jobs, parallel_from))
    cores = min(os.cpu_count() or 1, 4)
    if len(first) < parallel_from or cores < 2:
        if initializer is not None:
            initializer(*initargs)
        yield from map(func, itertools.chain(first, jobs))
        return
    # Imported here: most builds (a rebuild after one edit) never start a pool, and
    # these two were a tenth of such a rebuild's imports.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context(method)
    # Extra workers per core only when they are cheap (fork): a spawned one imports
    # everything afresh (~0.5 s of CPU, ~35 MB).
    workers = cores * (per_core if method == "fork" else 1)
    # Chunks in flight: at least two per worker, so none waits while results of
    # earlier chunks are collected here (pool.map per window idled at every window).
    in_flight = max(window // chunksize, 2 * workers)
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=initializer, initargs=initargs
    ) as pool:
        pending: deque[Future[list[R]]] = deque()
        for chunk in _chunks(itertools.chain(first, jobs), chunksize):
            pending.append(pool.submit(_apply, func, chunk))
            if len(pending) >= in_flight:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def start_method() -> str:
    """How :func:`process_map` would start workers now: "fork" or "spawn".

    fork is cheapest, but only safe while this process has no other threads (the
    daemon has some: watchfiles, asyncio's executor); spawn starts fresh interpreters
    (~1 s, ~90 MB), worth it only for much more work.
    """
    return "fork" if threading.active_count() == 1 else "spawn"


def _chunks(jobs: Iterator[J], size: int) -> Iterator[list[J]]:
    while chunk := list(itertools.islice(jobs, size)):
        yield chunk


def _apply(func: Callable[[J], R], chunk: list[J]) -> list[R]:
    return [func(job) for job in chunk]
