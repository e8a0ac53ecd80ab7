"""``statement-feeds run``: build, watch, schedule and send until SIGTERM/SIGINT.

Structure (one asyncio loop, one process, one lock per state folder)::

    run_daemon ── StateLock(<state>/daemon.lock) ── asyncio.run(Daemon.serve)
      serve:  full build → scheduler (cron editions, catch-up, resume deliveries)
              → tasks: _watch_loop (watchfiles hints) → _build_loop (one build at a time)
                       _rescan_loop (content-keyed rebuild + schedule check, the safety net)
              → READY (sd_notify) → wait for stop → shutdown (≤ shutdown_timeout)

Builds run in a worker thread (``Publisher.build`` is synchronous), serialised by the
build loop: changes arriving during a build mark the state dirty and cause exactly one
more build. Everything the digest side does goes through :class:`EditionRunner` under one
lock, so no two editions (or an edition and a retry round) ever run at once; the ledger
behind the runner decides whether an edition already exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ..clock import Clock
from ..config import Config, load_config
from ..domain.schedule import Action, Decision, decide
from ..errors import ConfigError, LockHeldError, StatementFeedsError
from ..feeds.build import BuildReport, Publisher
from ..logs import event
from ..state.lock import SENDER_LOCK, WAKE_SIGNAL, StateLock
from .memory import share_one_malloc_arena
from .reloading import reload_templates
from .triggers import WallClockCronTrigger, clock_offset, latest_due
from .watch import Change, WatchRoots, wait_stable, watch_changes

if TYPE_CHECKING:
    from ..web.app import HttpHandle
    from ..web.service import WebService

__all__ = ["Daemon", "DaemonOptions", "EditionRunner", "build_runner", "run_daemon", "sd_notify"]

log = logging.getLogger("statement_feeds.daemon.run")
# APScheduler's own lines are not in our format; the misses it would warn about are
# logged by the daemon itself (EVENT_JOB_MISSED, and the ledger check on start).
logging.getLogger("apscheduler").setLevel(logging.ERROR)
FREQUENCIES = ("daily", "weekly")


class EditionRunner(Protocol):
    """What the daemon needs from the digest side (planning + sending + the ledger).

    The daemon decides *when*; the runner decides *what* and records it. Every call is
    made under the daemon's work lock, never concurrently with another.
    """

    async def run_edition(self, frequency: str, due_at: datetime, stop: asyncio.Event) -> None:
        """Plan the edition due at ``due_at`` (idempotent per frequency + due_at: the
        store's unique constraint) and deliver it. When ``stop`` is set: send nothing
        new, finish or abandon-and-record the messages in flight, return promptly."""

    async def resume_deliveries(self, stop: asyncio.Event) -> None:
        """After a restart or at a retry wake-up: recover unknown outcomes, send what is
        pending or due for retry. Same ``stop`` contract as :meth:`run_edition`."""

    def edition_exists(self, frequency: str, due_at: datetime) -> bool:
        """Whether the ledger holds an edition for this due time (sent or not)."""

    def next_retry_at(self) -> datetime | None:
        """When the earliest deferred delivery is due, if any."""

    def reload(self, config: Config) -> None:
        """A new configuration or changed templates: re-read them. Raise
        :class:`StatementFeedsError` to reject them (the daemon keeps the old ones)."""

    def subscribers_changed(self) -> None:
        """The subscriber files changed: record join times now, so that "joined" means
        "added to the list", not "first edition planned after being added"."""


def build_runner(config: Config, clock: Clock) -> EditionRunner | None:
    """The digest side for ``run``: :class:`~statement_feeds.digests.service.Digests`.

    None when ``http.public_url`` is not set, because every digest must carry an
    unsubscribe link under it: the daemon then keeps the feeds current, schedules no
    editions and says so in its log.
    """
    if not config.http.public_url:
        if any(config.paths.subscribers.glob("*.csv")):
            # Subscribers but no unsubscribe base: refuse rather than silently never mail.
            raise ConfigError(
                "required once digests are sent (there are subscriber files); add "
                'public_url = "https://.../" under [http]',
                path=str(config.path),
                key="http.public_url",
            )
        event(log, logging.WARNING, "digests disabled", reason="http.public_url is not set")
        return None
    from ..digests.service import Digests

    return Digests(config, clock)


# After a runner call fails as a whole, deliveries wait this long, doubling per failure.
FIRST_PAUSE = timedelta(minutes=1)
LONGEST_PAUSE = timedelta(hours=1)

# Every n-th rescan reads and hashes every statement; the others trust a file whose
# size, mtime, ctime and inode are unchanged (any write moves ctime).
VERIFY_EVERY = 10


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    rescan_interval: float = 60.0  # seconds between safety-net rescans
    step_ms: int = 50  # quiet time that closes a batch of file events
    debounce_ms: int = 400  # a batch is handed on at the latest after this long
    stable_interval: float = 0.05  # changed files must keep size+mtime this long
    shutdown_timeout: float = 8.0  # then exit anyway (systemd's TimeoutStopSec is 15)


def run_daemon(
    config_path: Path,
    config: Config,
    clock: Clock,
    runner: EditionRunner | None,
    options: DaemonOptions | None = None,
) -> None:
    """Lock the state folder (LockHeldError if taken), then serve until stopped."""
    # Before any thread exists: builds run in threads, and an arena per thread let
    # RSS creep under churn (adapters/memory.py).
    share_one_malloc_arena()
    # The sender lock too, for the daemon's whole life: `digest send` run beside it then
    # only plans, and wakes us (WAKE_SIGNAL) to deliver, so one process sends at a time.
    with StateLock(config.paths.state) as lock:
        event(log, logging.INFO, "lock acquired", path=str(lock.path), pid=os.getpid())
        with _sender_lock(config.paths.state):
            daemon = Daemon(config_path, config, clock, runner, options or DaemonOptions())
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


class Daemon:
    def __init__(
        self,
        config_path: Path,
        config: Config,
        clock: Clock,
        runner: EditionRunner | None,
        options: DaemonOptions,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.clock = clock
        self.runner = runner
        self.options = options
        self.publisher = Publisher(config, clock)
        self._config_signature = _file_signature(config_path)
        self._stop = asyncio.Event()
        self._dirty = asyncio.Event()
        self._changed: set[Path] = set()
        self._reasons: set[str] = set()
        self._watch_stop = asyncio.Event()
        self._work_lock = asyncio.Lock()  # one runner call at a time
        self._reported: set[str] = set()  # problems already logged: each reported once
        self._skips_reported: set[tuple[str, datetime]] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduler: AsyncIOScheduler | None = None
        self._offset = clock_offset(clock)
        self._rescans = 0
        self._failed_runs = 0  # consecutive runner calls that raised
        self._paused_until: datetime | None = None
        self._http: HttpHandle | None = None  # the web side, once serving

    # ---- lifecycle -------------------------------------------------------------------

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self._reload("SIGHUP")))
        loop.add_signal_handler(WAKE_SIGNAL, self._on_wake)
        event(
            log,
            logging.INFO,
            "daemon starting",
            pid=os.getpid(),
            config=str(self.config_path),
            digests="enabled" if self.runner else "disabled (no edition runner wired)",
            clock_offset_s=round(self._offset.total_seconds(), 3),
        )
        # The watches are armed before the start build lists the folder: a file written
        # meanwhile is either in that listing or causes an event (queued until the build
        # loop runs). awatch installs its watches before its first await; the one build
        # after "ready" covers a watcher that would arm later than that.
        watcher = asyncio.create_task(self._watch_loop(), name="watch")
        await asyncio.sleep(0)
        await self._build({"start"})
        # Addresses first seen now join now: only what is published later is new to them.
        await self._subscribers_changed()
        http = self._http = await self._start_http()
        self._start_scheduler()
        workers = [
            watcher,
            asyncio.create_task(self._build_loop(), name="build"),
            asyncio.create_task(self._rescan_loop(), name="rescan"),
        ]
        sd_notify("READY=1")
        event(log, logging.INFO, "daemon ready", rescan_s=self.options.rescan_interval)
        self._mark_dirty("armed")
        await self._stop.wait()
        if http is not None:
            await http.close()  # no new requests first; then the in-flight work
        await self._shutdown(workers)

    async def _start_http(self) -> HttpHandle | None:
        """Serve feeds, subscribe and unsubscribe when ``http.listen`` is set."""
        if not self.config.http.listen:
            return None
        from ..web.app import start_http  # aiohttp only when serving

        handle = await start_http(self.config, self.clock)
        event(log, logging.INFO, "http serving", url=handle.url)
        return handle

    def _on_wake(self) -> None:
        """`digest send` planned an edition while we hold the sender lock: deliver it."""
        event(log, logging.INFO, "woken to deliver", signal=WAKE_SIGNAL.name)
        self._spawn(self._runner_call("resume deliveries", self._resume))

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if self._stop.is_set():
            return
        event(log, logging.INFO, "shutdown requested", signal=sig.name)
        sd_notify("STOPPING=1")
        self._stop.set()
        self._watch_stop.set()
        self._dirty.set()  # wake the build loop so it sees the stop

    async def _shutdown(self, workers: list[asyncio.Task[None]]) -> None:
        started = time.monotonic()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        for timer in self._timers.values():
            timer.cancel()
        try:
            # The runner saw ``stop`` and is finishing or abandoning its messages.
            async with asyncio.timeout(self.options.shutdown_timeout):
                await asyncio.gather(*workers, return_exceptions=True)
                async with self._work_lock:
                    pass
        except TimeoutError:
            event(log, logging.WARNING, "shutdown timeout: abandoning in-flight work")
        for task in [*workers, *self._tasks]:
            task.cancel()
        await asyncio.gather(*workers, *self._tasks, return_exceptions=True)
        event(log, logging.INFO, "daemon stopped", seconds=round(time.monotonic() - started, 3))

    def _spawn(self, work: Awaitable[None]) -> None:
        """Run ``work`` as a task the shutdown can wait for (and that is not GC'd)."""

        async def wrapped() -> None:
            await work

        task = asyncio.get_running_loop().create_task(wrapped())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- feeds -----------------------------------------------------------------------

    def _mark_dirty(self, reason: str, paths: set[Path] | None = None) -> None:
        self._reasons.add(reason)
        self._changed |= paths or set()
        self._dirty.set()

    async def _build_loop(self) -> None:
        while True:
            await self._dirty.wait()
            if self._stop.is_set():
                return
            # Cleared before waiting: events that arrive meanwhile cause one more build.
            self._dirty.clear()
            changed, self._changed = self._changed, set()
            reasons, self._reasons = self._reasons, set()
            await wait_stable(changed, interval=self.options.stable_interval)
            await self._build(reasons)

    async def _build(self, reasons: set[str]) -> None:
        started = time.perf_counter()
        try:
            # "verify": read and hash every file instead of trusting unchanged signatures.
            verify = bool(reasons & {"start", "verify"})
            report = await asyncio.to_thread(self.publisher.build, verify=verify)
        except Exception as exc:  # disk full, unreadable state: keep running, retry later
            event(log, logging.ERROR, "build failed", error=repr(exc), reason=",".join(reasons))
            return
        self._report_build(report, reasons, time.perf_counter() - started)
        self._arm_embargo(report.next_embargo)

    def _report_build(self, report: BuildReport, reasons: set[str], seconds: float) -> None:
        current = {str(p): p for p in report.problems}
        for key in sorted(current.keys() - self._reported):
            problem = current[key]
            event(
                log,
                logging.WARNING,
                "file problem",
                path=problem.source,
                line=problem.line or "",
                problem=problem.message,
                fix=problem.hint,
            )
        # Forget fixed problems, so that a file broken again later is reported again.
        self._reported = set(current)
        level = logging.INFO if report.written or report.removed else logging.DEBUG
        event(
            log,
            level,
            "build done",
            reason=",".join(sorted(reasons)),
            statements=report.statements,
            feeds=len(report.feeds),
            written=report.written,
            removed=len(report.removed),
            problems=len(report.problems),
            seconds=round(seconds, 3),
        )

    def _arm_embargo(self, when: datetime | None) -> None:
        """Rebuild when the next embargoed statement becomes public: no file event comes."""
        self._arm("embargo", when, lambda: self._mark_dirty("embargo"))

    def _arm(self, name: str, when: datetime | None, callback: Callable[[], None]) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        if when is None or self._stop.is_set():
            return
        # A delay from the daemon's clock, so a fake clock's times work unchanged. The
        # extra 10 ms makes sure "now" is past ``when`` when the timer fires.
        delay = max(0.0, (when - self.clock()).total_seconds()) + 0.01
        self._timers[name] = asyncio.get_running_loop().call_later(delay, callback)
        event(log, logging.DEBUG, "timer armed", timer=name, at=when.isoformat(), delay_s=delay)

    # ---- watching and rescanning -----------------------------------------------------

    def _roots(self) -> WatchRoots:
        paths = self.config.paths
        return WatchRoots(paths.statements, paths.subscribers, paths.templates, self.config_path)

    async def _watch_loop(self) -> None:
        while not self._stop.is_set():
            self._watch_stop = asyncio.Event()
            roots = self._roots()
            try:
                if not roots.existing():
                    await self._watch_stop.wait()
                    continue
                event(log, logging.DEBUG, "watching", paths=",".join(map(str, roots.existing())))
                async for batch in watch_changes(
                    roots,
                    self._watch_stop,
                    step_ms=self.options.step_ms,
                    debounce_ms=self.options.debounce_ms,
                ):
                    self._on_changes(batch)
            except Exception as exc:  # e.g. a watched folder deleted: rescans still run
                event(log, logging.WARNING, "watcher failed", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 5.0)

    def _on_changes(self, batch: list[Change]) -> None:
        kinds = {c.kind for c in batch}
        event(log, logging.DEBUG, "files changed", count=len(batch), inputs=",".join(sorted(kinds)))
        statements = {c.path for c in batch if c.kind == "statements"}
        if statements:
            self._mark_dirty("watch", statements)
        if "config" in kinds:
            self._spawn(self._reload("config changed"))
        elif "templates" in kinds:
            self._spawn(self._reload_templates("templates changed"))
        if "subscribers" in kinds:
            event(log, logging.INFO, "subscribers changed", files=len(batch))
            self._spawn(self._subscribers_changed())

    async def _rescan_loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.options.rescan_interval)
            if self._stop.is_set():
                return
            # The watcher is a hint: inotify overflows, network file systems and a file
            # replaced under a watch all miss events. The build is keyed by content, so
            # rebuilding when nothing changed costs reading, not writing.
            self._rescans += 1
            self._mark_dirty("verify" if self._rescans % VERIFY_EVERY == 0 else "rescan")
            if _file_signature(self.config_path) != self._config_signature:
                await self._reload("config changed (rescan)")
            await self._check_editions(self.config.digest.misfire_grace)
            self._arm_retry()

    # ---- configuration -----------------------------------------------------------------

    async def _reload(self, reason: str) -> None:
        signature = _file_signature(self.config_path)
        try:
            config = load_config(self.config_path)
            if config.paths.state != self.config.paths.state:
                raise StatementFeedsError(
                    "paths.state changed: the lock is held on the old folder; restart to move"
                )
            reload_templates(config, self.runner, self._web())
        except StatementFeedsError as exc:
            self._config_signature = signature  # reported once, not on every rescan
            event(log, logging.ERROR, "reload failed, keeping the old config", error=str(exc))
            return
        self._config_signature = signature
        self.config = config
        self.publisher = Publisher(config, self.clock)
        self._schedule_editions()
        self._watch_stop.set()  # re-arm the watches: paths may differ, the file was replaced
        self._mark_dirty("reload")
        event(log, logging.INFO, "config reloaded", reason=reason, config=str(self.config_path))

    def _web(self) -> WebService | None:
        return self._http.service if self._http is not None else None

    async def _reload_templates(self, reason: str) -> None:
        if self.runner is None and self._http is None:
            return
        try:
            reload_templates(self.config, self.runner, self._web())
        except StatementFeedsError as exc:
            event(log, logging.ERROR, "templates reload failed, keeping the old", error=str(exc))
            return
        event(log, logging.INFO, "templates reloaded", reason=reason)

    # ---- digests -----------------------------------------------------------------------

    def _start_scheduler(self) -> None:
        if self.runner is None:
            event(log, logging.WARNING, "digests disabled: no edition runner, no scheduling")
            return
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self._schedule_editions()
        self._scheduler.start()
        # The ledger is the truth: an edition due while we were down runs once if the
        # grace allows. Looking back a week and a day also finds (and logs) a weekly one
        # missed for good.
        horizon = max(self.config.digest.misfire_grace, timedelta(days=8))
        self._spawn(self._check_editions(horizon))
        self._spawn(self._runner_call("resume deliveries", self._resume))

    def _schedule_editions(self) -> None:
        if self._scheduler is None:
            return
        digest, zone = self.config.digest, self.config.site.timezone
        for frequency in FREQUENCIES:
            trigger = WallClockCronTrigger(getattr(digest, frequency), zone, self._offset)
            self._scheduler.add_job(
                self._scheduled_edition,
                trigger=trigger,
                args=[frequency],
                id=f"edition-{frequency}",
                name=f"{frequency} edition",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(digest.misfire_grace.total_seconds())),
                replace_existing=True,
            )
            when = trigger.next_due(None, self.clock())
            event(
                log,
                logging.INFO,
                "edition scheduled",
                frequency=frequency,
                cron=trigger.expr,
                next=when.isoformat() if when else "",
            )

    def _on_missed(self, missed: JobExecutionEvent) -> None:
        event(
            log,
            logging.WARNING,
            "edition missed (later than misfire_grace): statements roll into the next",
            job=missed.job_id,
            due=(missed.scheduled_run_time + self._offset).isoformat(),
        )

    async def _scheduled_edition(self, frequency: str) -> None:
        # The scheduler only wakes us; which due time counts is computed again from the
        # clock (a second of slack for a wake-up a hair early) and checked in the ledger.
        await self._catch_up(frequency, self.config.digest.misfire_grace, timedelta(seconds=1))

    async def _check_editions(self, horizon: timedelta) -> None:
        for frequency in FREQUENCIES:
            await self._catch_up(frequency, horizon, timedelta(0))

    async def _catch_up(self, frequency: str, horizon: timedelta, slack: timedelta) -> None:
        runner = self.runner
        if runner is None:
            return
        async with self._work_lock:
            if self._stop.is_set():
                return
            now = self.clock() + slack
            expr = getattr(self.config.digest, frequency)
            due = latest_due(expr, self.config.site.timezone, now, horizon)
            exists = due is not None and runner.edition_exists(frequency, due)
            decision = decide(frequency, due, now, self.config.digest.misfire_grace, exists)
            self._log_decision(decision)
            if decision.action is Action.RUN and decision.due_at is not None:
                await self._run_edition(runner, frequency, decision.due_at)
        self._arm_retry()

    def _log_decision(self, decision: Decision) -> None:
        if decision.action is Action.TOO_LATE and decision.due_at is not None:
            key = (decision.frequency, decision.due_at)
            if key not in self._skips_reported:
                self._skips_reported.add(key)
                event(
                    log,
                    logging.WARNING,
                    "edition skipped: later than misfire_grace, statements roll into the next",
                    frequency=decision.frequency,
                    due=decision.due_at.isoformat(),
                    late_s=int(decision.late.total_seconds()),
                )
        elif decision.action is not Action.RUN:
            event(
                log,
                logging.DEBUG,
                "edition check",
                frequency=decision.frequency,
                action=decision.action.value,
                due=decision.due_at.isoformat() if decision.due_at else "",
            )

    async def _run_edition(self, runner: EditionRunner, frequency: str, due: datetime) -> None:
        started = time.perf_counter()
        event(log, logging.INFO, "edition start", frequency=frequency, due=due.isoformat())
        try:
            await runner.run_edition(frequency, due, self._stop)
        except Exception as exc:
            event(log, logging.ERROR, "edition failed", frequency=frequency, error=repr(exc))
            return
        event(
            log,
            logging.INFO,
            "edition end",
            frequency=frequency,
            due=due.isoformat(),
            seconds=round(time.perf_counter() - started, 3),
            interrupted=self._stop.is_set(),
        )

    async def _subscribers_changed(self) -> None:
        async def sync(runner: EditionRunner) -> None:
            await asyncio.to_thread(runner.subscribers_changed)

        await self._runner_call("sync subscribers", sync)

    async def _resume(self, runner: EditionRunner) -> None:
        await runner.resume_deliveries(self._stop)

    async def _runner_call(
        self, what: str, call: Callable[[EditionRunner], Awaitable[None]]
    ) -> None:
        runner = self.runner
        if runner is None:
            return
        async with self._work_lock:
            if self._stop.is_set():
                return
            event(log, logging.DEBUG, what)
            try:
                await call(runner)
            except Exception as exc:
                self._failed_runs += 1
                pause = min(FIRST_PAUSE * 2 ** (self._failed_runs - 1), LONGEST_PAUSE)
                self._paused_until = self.clock() + pause
                event(
                    log,
                    logging.ERROR,
                    f"{what} failed",
                    error=repr(exc),
                    retry_in_s=int(pause.total_seconds()),
                )
            else:
                self._failed_runs, self._paused_until = 0, None
        self._arm_retry()

    def _arm_retry(self) -> None:
        """Wake up when the earliest deferred delivery is due (the time is in the ledger,
        so it survives restarts; this timer is only the wake-up)."""
        if self.runner is None or self._stop.is_set():
            return
        try:
            when = self.runner.next_retry_at()
        except Exception as exc:  # the ledger cannot be read: try again after a pause
            event(log, logging.ERROR, "next retry lookup failed", error=repr(exc))
            when = None
            self._paused_until = self._paused_until or self.clock() + FIRST_PAUSE
        if self._paused_until is not None:
            # A whole run failed (SMTP refused the login, TLS missing, the ledger could
            # not be written): run again after the pause, not sooner (that would hammer
            # the server), and even if the ledger shows nothing due, because what a
            # failed write left 'sending' is only recovered by the next run.
            when = self._paused_until
        self._arm(
            "retry", when, lambda: self._spawn(self._runner_call("resume deliveries", self._resume))
        )


def _file_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def sd_notify(message: str, environ: Any = None) -> bool:
    """Tell systemd (Type=notify) about our state: a datagram to $NOTIFY_SOCKET.
    No dependency needed; without the variable (not under systemd) it does nothing."""
    address = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        event(log, logging.WARNING, "sd_notify failed", error=str(exc))
        return False
    return True
