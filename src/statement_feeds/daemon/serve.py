"""The daemon's one asyncio loop: build, watch, rescan, reload, until stopped.

Structure::

    Daemon.serve:  full build → editions (cron, catch-up, resume deliveries)
                   → tasks: _watch_loop (watchfiles hints) → _build_loop (one build at a time)
                            _rescan_loop (content-keyed rebuild + schedule check, the safety net)
                   → READY (sd_notify) → wait for stop → shutdown (≤ shutdown_timeout)

Builds run in a worker thread (``Publisher.build`` is synchronous), serialised by the
build loop: changes arriving during a build mark the state dirty and cause exactly one
more build. The digest side is :class:`~.editions.Editions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..clock import Clock
from ..config import Config, load_config
from ..errors import StatementFeedsError
from ..feeds.build import BuildReport, Publisher
from ..logs import event, use_timezone
from ..state.coordination_api import DEFAULT_HEARTBEAT, Coordinator
from ..state.lock import WAKE_SIGNAL
from .coordination import Coordination
from .editions import Editions
from .notify import sd_notify
from .reloading import reload_templates
from .runner import EditionRunner
from .timers import Tasks, Timers
from .triggers import clock_offset
from .watch import Change, WatchRoots, wait_stable, watch_changes
from .websub import WebSub

if TYPE_CHECKING:
    from ..web.app import HttpHandle
    from ..web.service import WebService

__all__ = ["VERIFY_EVERY", "Daemon", "DaemonOptions"]

log = logging.getLogger(__name__)

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
    heartbeat: float = DEFAULT_HEARTBEAT  # seconds; several daemons on one database only


class Daemon:
    def __init__(
        self,
        config_path: Path,
        config: Config,
        clock: Clock,
        runner: EditionRunner | None,
        options: DaemonOptions,
        *,
        coordinator: Coordinator | None = None,
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
        self._reported: set[str] = set()  # problems already logged: each reported once
        self.timers = Timers(clock, self._stop)
        self.tasks = Tasks()
        self._offset = clock_offset(clock)
        self.editions = Editions(
            config,
            clock,
            runner,
            offset=self._offset,
            stop=self._stop,
            timers=self.timers,
            tasks=self.tasks,
            leading=coordinator is None,  # with others: once the coordination says so
            planned=self._planned if coordinator is not None else None,
        )
        self.coordination = (
            Coordination(coordinator, self.editions, self._stop, self.tasks)
            if coordinator is not None
            else None
        )
        self._rescans = 0
        self._http: HttpHandle | None = None  # the web side, once serving
        self.websub = WebSub(config, clock, self.timers, self.tasks)  # pings never block a build

    # ---- lifecycle -------------------------------------------------------------------

    async def serve(self) -> None:
        self._install_signal_handlers()
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
        await self.editions.subscribers_changed()
        http = self._http = await self._start_http()
        self.editions.start()
        if self.coordination is not None:
            self.coordination.start()
        workers = [
            watcher,
            asyncio.create_task(self._build_loop(), name="build"),
            asyncio.create_task(self._rescan_loop(), name="rescan"),
        ]
        sd_notify("READY=1")
        event(log, logging.INFO, "daemon ready", rescan_s=self.options.rescan_interval)
        self._mark_dirty("armed")
        await self._stop.wait()
        if self.coordination is not None:  # leadership first: another daemon takes over
            await self.coordination.stopped()
        if http is not None:
            await http.close()  # no new requests first; then the in-flight work
        await self._shutdown(workers)

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, lambda: self.tasks.spawn(self._reload("SIGHUP")))
        loop.add_signal_handler(WAKE_SIGNAL, self._on_wake)

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
        self.tasks.spawn(self.editions.resume())

    def _planned(self) -> None:
        if self.coordination is not None:
            self.coordination.planned()

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
        self.editions.stop()
        self.timers.cancel_all()
        try:
            # The runner saw ``stop`` and is finishing or abandoning its messages.
            async with asyncio.timeout(self.options.shutdown_timeout):
                await asyncio.gather(*workers, return_exceptions=True)
                async with self.editions.work_lock:
                    pass
        except TimeoutError:
            event(log, logging.WARNING, "shutdown timeout: abandoning in-flight work")
        spawned = self.tasks.running()
        for task in [*workers, *spawned]:
            task.cancel()
        await asyncio.gather(*workers, *spawned, return_exceptions=True)
        event(log, logging.INFO, "daemon stopped", seconds=round(time.monotonic() - started, 3))

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
        self.websub.built(report.changed_urls)
        # Rebuild when the next embargoed statement becomes public: no file event comes.
        self.timers.arm("embargo", report.next_embargo, lambda: self._mark_dirty("embargo"))

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
            self.tasks.spawn(self._reload("config changed"))
        elif "templates" in kinds:
            self.tasks.spawn(self._reload_templates("templates changed"))
        if "subscribers" in kinds:
            event(log, logging.INFO, "subscribers changed", files=len(batch))
            self.tasks.spawn(self.editions.subscribers_changed())

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
            await self.editions.check(self.config.digest.misfire_grace)
            self.editions.arm_retry()
            await self._process_bounces()

    async def _process_bounces(self) -> None:
        """``bounces process`` on ``digest.bounce_mailbox`` (Maildir or IMAP), when set, at
        every rescan; with several daemons on one database, by the leader only (one reader
        of a shared mailbox: two would race to move the same messages)."""
        if not self.config.digest.bounce_mailbox or not self.editions.leading:
            return
        from ..digests.bounce_service import process_configured

        try:
            report = await asyncio.to_thread(process_configured, self.config, self.clock)
        except (StatementFeedsError, OSError) as exc:  # said, and tried again at the next
            # rescan: an unreadable Maildir, an IMAP server down, a refused login
            event(log, logging.ERROR, "bounce processing failed", error=str(exc))
            return
        if report is not None and report.outcomes:  # each message is logged on its own too
            event(
                log,
                logging.INFO,
                "bounces processed",
                messages=len(report.outcomes),
                marked_bounced=len(report.marked),
                unsubscribed=len(report.unsubscribed),
                unrecognised=len(report.unrecognised),
            )

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
        use_timezone(config.site.timezone)
        self.publisher = Publisher(config, self.clock)
        self.editions.reconfigure(config)
        self.websub.reconfigure(config)
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


def _file_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns
