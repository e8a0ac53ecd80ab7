"""Process pools: ``map`` on every core for big batches, in-process for small ones."""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ..processes import die_with_parent, watch_parent

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
    here: bool = False,
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

    ``here``: with forked workers, this process takes a chunk itself whenever the
    workers have all they can take, and one worker fewer is started. Every forked worker
    ends up with a private copy of what it touches of this process's memory (reference
    counts are writes): a worker fewer is one copy fewer.
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
    # Workers must not outlive this process (a kill -9 left them blocked on their job
    # queue for good, holding the spool and the cache). Forked ones are all started at
    # the first submit, here, by this (then the only) thread; spawned ones are started
    # as jobs are submitted, by whichever thread resumes this generator: see _start_worker.
    main = threading.current_thread() is threading.main_thread()
    tie = (os.getpid(), method == "fork" and main)
    # Extra workers per core only when they are cheap (fork): a spawned one imports
    # everything afresh (~0.5 s of CPU, ~35 MB).
    workers = cores * (per_core if method == "fork" else 1)
    here = here and method == "fork"
    if here:
        workers -= 1
        if initializer is not None:
            initializer(*initargs)
    # Chunks in flight: at least two per worker, so none waits while results of
    # earlier chunks are collected here (pool.map per window idled at every window).
    in_flight = max(window // chunksize, 2 * workers)
    with ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(tie, initializer, initargs),
    ) as pool:
        pending: deque[Future[list[R]] | list[R]] = deque()
        busy = 0  # submitted chunks in ``pending`` not known to be done
        for chunk in _chunks(itertools.chain(first, jobs), chunksize):
            if here and busy >= in_flight:
                pending.append(_apply(func, chunk))
            else:
                pending.append(pool.submit(_apply, func, chunk))
                busy += 1
            if here:
                while pending and _ready(pending[0]):
                    yield from _result(pending.popleft())
                busy = sum(1 for item in pending if not _ready(item))
            elif len(pending) >= in_flight:
                yield from _result(pending.popleft())
        while pending:
            yield from _result(pending.popleft())


def start_method() -> str:
    """How :func:`process_map` would start workers now: "fork" or "spawn".

    fork is cheapest, but only safe while this process has no other threads (the
    daemon has some: watchfiles, asyncio's executor); spawn starts fresh interpreters
    (~1 s, ~90 MB), worth it only for much more work.
    """
    return "fork" if threading.active_count() == 1 else "spawn"


def _start_worker(
    tie: tuple[int, bool],
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
) -> None:
    """In every worker first: die with the parent, then the caller's initializer.

    ``tie``: the parent's pid, and whether the main thread forked this worker. Then
    the kernel kills it with the parent (PR_SET_PDEATHSIG, at once). Otherwise a
    thread in the worker watches for the parent's death (within a quarter second):
    PDEATHSIG fires when the *thread* that started a worker ends, and a thread that
    spawned workers (the daemon builds in its executor's threads) may end while the
    process and the pool live on.
    """
    parent, by_main_thread = tie
    if by_main_thread:
        die_with_parent(parent)
    else:
        watch_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def _ready(item: Future[list[R]] | list[R]) -> bool:
    return isinstance(item, list) or item.done()


def _result(item: Future[list[R]] | list[R]) -> list[R]:
    return item if isinstance(item, list) else item.result()


def _chunks(jobs: Iterator[J], size: int) -> Iterator[list[J]]:
    while chunk := list(itertools.islice(jobs, size)):
        yield chunk


def _apply(func: Callable[[J], R], chunk: list[J]) -> list[R]:
    return [func(job) for job in chunk]
