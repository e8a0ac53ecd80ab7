"""Delivering one run from several worker processes (opt-in, for big lists).

One process tops out at one core: composing, SQLite and aiosmtplib are all Python.
With ``STATEMENT_FEEDS_SEND_PROCESSES=N``, :meth:`Digests.deliver` recovers the
ledger once, then starts worker processes (spawned: nothing of the parent's event
loop, threads or SQLite connection is inherited) that each run
``sending.deliver(recover=False)`` with their own ledger connection and their share of
``smtp.concurrency`` connections. ``claim`` is a transaction, so two workers never
hold the same delivery. The crash guarantee is the one-process one: each worker dies
with the parent (PR_SET_PDEATHSIG), so after a kill -9 the ledger holds
claimed-but-unconfirmed deliveries of the workers exactly as it would of one
process, and the next run re-sends those with the same Message-ID.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from .adapters.mailer import make_messenger
from .adapters.processes import die_with_parent
from .clock import system_clock
from .config import Config
from .errors import ConfigError
from .sending import DeliverySummary, Progress, deliver

if TYPE_CHECKING:
    from .digests import Digests

__all__ = ["PARALLEL_MIN_ENV", "SEND_PROCESSES_ENV", "deliver_in_processes", "sender_processes"]

log = logging.getLogger(__name__)

# Deliveries due below which starting processes costs more than it saves (overridable,
# e.g. for tests, with STATEMENT_FEEDS_SEND_PROCESSES_MIN).
PARALLEL_MIN = 5000
PARALLEL_MIN_ENV = "STATEMENT_FEEDS_SEND_PROCESSES_MIN"
# Opt-in: worker processes (e.g. 2) when this is set. Default one process: on the 2-core
# benchmark VM, with the SMTP server on the same machine, two workers were ~10 % slower
# than one process and doubled the summed RSS (bench/README.md, edition benchmark).
SEND_PROCESSES_ENV = "STATEMENT_FEEDS_SEND_PROCESSES"


def sender_processes(digests: Digests) -> int:
    """How many worker processes to deliver with (1: deliver in this process)."""
    override = os.environ.get(SEND_PROCESSES_ENV, "").strip()
    wanted = min(int(override), os.cpu_count() or 1) if override.isdigit() else 1
    # A custom clock (tests, a controllable daemon clock) cannot be shared with workers.
    workers = min(wanted, max(1, digests.config.smtp.concurrency))
    if workers <= 1 or digests.clock is not system_clock:
        return 1
    with digests.store() as store:
        counts = store.counts()
    threshold = os.environ.get(PARALLEL_MIN_ENV, "").strip()
    least = int(threshold) if threshold.isdigit() else PARALLEL_MIN
    return workers if counts.pending + counts.deferred + counts.sending >= least else 1


def _shares(total: int, parts: int) -> list[int]:
    """``total`` connections split over ``parts`` workers, each at least one."""
    return [max(1, total // parts + (i < total % parts)) for i in range(parts)]


async def deliver_in_processes(
    digests: Digests,
    workers: int,
    stop: asyncio.Event | None,
    progress: Callable[[Progress], None] | None,
) -> DeliverySummary:
    import multiprocessing

    with digests.store() as store:
        recovered = store.recover_unknown()
        counts = store.counts()
    total = counts.pending + counts.deferred
    log.info("delivering %d messages from %d worker processes", total, workers)
    context = multiprocessing.get_context("spawn")
    halt = context.Event()
    results = context.SimpleQueue()
    counters = context.Array("q", 3 * workers, lock=False)  # sent, deferred, failed per worker
    processes = [
        context.Process(
            target=_send_worker,
            args=(digests.config, index, share, os.getpid(), halt, results, counters),
            name=f"statement-feeds-sender-{index}",
            daemon=True,
        )
        for index, share in enumerate(_shares(digests.config.smtp.concurrency, workers))
    ]
    for process in processes:
        process.start()
    try:
        while any(p.is_alive() for p in processes):
            await asyncio.sleep(0.25)
            if stop is not None and stop.is_set():
                halt.set()
            if progress is not None:
                sent, deferred, failed = (sum(counters[k::3]) for k in range(3))
                progress(Progress(sent, total, deferred, failed))
    finally:
        halt.set()  # on cancellation: let workers finish their in-flight messages
        for process in processes:
            await asyncio.to_thread(process.join)
    return _merge(len(processes), results, recovered, total, stop)


def _merge(
    workers: int,
    results: object,
    recovered: int,
    total: int,
    stop: asyncio.Event | None,
) -> DeliverySummary:
    summary = DeliverySummary(recovered=recovered, total=total)
    fatal: ConfigError | None = None
    reported = 0
    while not results.empty():  # type: ignore[attr-defined]
        kind, value = results.get()  # type: ignore[attr-defined]
        reported += 1
        if kind == "config":
            fatal = fatal or ConfigError(value)
            continue
        part: DeliverySummary = value
        summary.sent += part.sent
        summary.deferred += part.deferred
        summary.failed += part.failed
        summary.bounced += part.bounced
        summary.cancelled += part.cancelled
        summary.stopped = summary.stopped or part.stopped
    if fatal is not None:
        raise fatal
    if reported < workers:
        # A worker died (killed, or a bug): its claimed messages have an unknown fate
        # and are re-sent by the next run, as after a crash of a single sender.
        log.error("%d of %d sending processes died", workers - reported, workers)
        summary.stopped = True
    summary.stopped = summary.stopped or bool(stop is not None and stop.is_set())
    return summary


def _send_worker(  # noqa: PLR0917 - a process entry point, arguments from the parent
    config: Config,
    index: int,
    connections: int,
    parent: int,
    halt: object,
    results: object,
    counters: object,
) -> None:
    """A worker process: deliver with ``connections`` SMTP connections until done or halted."""
    import dataclasses
    import signal

    die_with_parent(parent)
    # The parent decides when to stop (SIGINT from a terminal or SIGTERM from systemd
    # reach the whole group): workers finish their in-flight messages when it says so.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from .digests import Digests  # the parent imported this module from there

    digests = Digests(config)
    composer = digests.composer(digests.catalog())
    smtp = dataclasses.replace(config.smtp, concurrency=connections)

    def report(progress: Progress) -> None:
        counters[3 * index : 3 * index + 3] = [  # type: ignore[index]
            progress.sent,
            progress.deferred,
            progress.failed,
        ]

    async def run() -> DeliverySummary:
        stop = asyncio.Event()

        async def watch() -> None:
            while not halt.is_set() and os.getppid() == parent:  # type: ignore[attr-defined]
                await asyncio.sleep(0.1)
            stop.set()

        watcher = asyncio.create_task(watch())
        messenger = make_messenger(smtp, config.paths.outbox)
        try:
            with digests.store() as store:
                return await deliver(
                    store,
                    messenger,
                    composer,
                    system_clock,
                    sender=digests.settings().sender_address,
                    concurrency=connections,
                    retry_lifetime=config.digest.retry_lifetime,
                    stop=stop,
                    progress=report,
                    recover=False,
                )
        finally:
            watcher.cancel()
            await messenger.close()

    try:
        summary = asyncio.run(run())
    except ConfigError as exc:
        results.put(("config", str(exc)))  # type: ignore[attr-defined]
        return
    results.put(("ok", summary))  # type: ignore[attr-defined]
