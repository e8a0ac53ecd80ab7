"""When editions run: the cron schedule, the catch-up after downtime, deliveries' retries.

Everything the digest side does goes through the :class:`EditionRunner` under one lock,
so no two editions (or an edition and a retry round) ever run at once; the ledger behind
the runner decides whether an edition already exists.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ..clock import Clock
from ..config import Config
from ..domain.schedule import Action, Decision, decide, unless_before_history
from ..logs import event
from .runner import FREQUENCIES, EditionRunner
from .timers import Tasks, Timers
from .triggers import WallClockCronTrigger, latest_due

__all__ = ["FIRST_PAUSE", "LONGEST_PAUSE", "Editions"]

log = logging.getLogger(__name__)
# APScheduler's own lines are not in our format; the misses it would warn about are
# logged by the daemon itself (EVENT_JOB_MISSED, and the ledger check on start).
logging.getLogger("apscheduler").setLevel(logging.ERROR)

# After a runner call fails as a whole, deliveries wait this long, doubling per failure.
FIRST_PAUSE = timedelta(minutes=1)
LONGEST_PAUSE = timedelta(hours=1)


class Editions:
    """The digest side of the daemon; does nothing when there is no runner."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        runner: EditionRunner | None,
        *,
        offset: timedelta,
        stop: asyncio.Event,
        timers: Timers,
        tasks: Tasks,
        leading: bool = True,
        planned: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        # Only the leader schedules and plans (several daemons on one database: the
        # coordination says when we lead); alone, a daemon always leads.
        self.leading = leading
        self._planned = planned  # called once an edition is planned: wake other senders
        self.runner = runner
        self._clock = clock
        self._offset = offset  # how far the daemon's clock is ahead of real time
        self._stop = stop
        self._timers = timers
        self._tasks = tasks
        self.work_lock = asyncio.Lock()  # one runner call at a time
        self._skips_reported: set[tuple[str, datetime]] = set()
        self._scheduler: AsyncIOScheduler | None = None
        self._started = False
        self._failed_runs = 0  # consecutive runner calls that raised
        self._paused_until: datetime | None = None

    def start(self) -> None:
        if self.runner is None:
            event(log, logging.WARNING, "digests disabled: no edition runner, no scheduling")
            return
        self._started = True
        if self.leading:
            self.lead()
        self._tasks.spawn(self.resume())

    def lead(self) -> None:
        """Schedule, and catch up on what is due (also after taking over a leader that
        died: the ledger's unique key makes a second plan of one due time harmless)."""
        self.leading = True
        if self.runner is None or not self._started or self._scheduler is not None:
            return
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self._schedule()
        self._scheduler.start()
        # The ledger is the truth: an edition due while we were down runs once if the
        # grace allows. Looking back a week and a day also finds (and logs) a weekly one
        # missed for good.
        horizon = max(self.config.digest.misfire_grace, timedelta(days=8))
        self._tasks.spawn(self.check(horizon))

    def follow(self) -> None:
        """Leadership lost: stop scheduling (deliveries go on)."""
        self.leading = False
        self.stop()

    def stop(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=False)

    def reconfigure(self, config: Config) -> None:
        """A reloaded configuration: the cron expressions or the zone may differ."""
        self.config = config
        self._schedule()

    def _schedule(self) -> None:
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
            when = trigger.next_due(None, self._clock())
            event(
                log,
                logging.INFO,
                "edition scheduled",
                frequency=frequency,
                cron=trigger.expr,
                next=when or "",
            )

    def _on_missed(self, missed: JobExecutionEvent) -> None:
        event(
            log,
            logging.WARNING,
            "edition missed (later than misfire_grace): statements roll into the next",
            job=missed.job_id,
            due=missed.scheduled_run_time + self._offset,
        )

    async def _scheduled_edition(self, frequency: str) -> None:
        # The scheduler only wakes us; which due time counts is computed again from the
        # clock (a second of slack for a wake-up a hair early) and checked in the ledger.
        await self._catch_up(frequency, self.config.digest.misfire_grace, timedelta(seconds=1))

    async def check(self, horizon: timedelta) -> None:
        """Run any edition due within ``horizon`` that the ledger does not hold yet."""
        for frequency in FREQUENCIES:
            await self._catch_up(frequency, horizon, timedelta(0))

    async def _catch_up(self, frequency: str, horizon: timedelta, slack: timedelta) -> None:
        runner = self.runner
        if runner is None:
            return
        async with self.work_lock:
            if self._stop.is_set() or not self.leading:
                return
            now = self._clock() + slack
            expr = getattr(self.config.digest, frequency)
            due = latest_due(expr, self.config.site.timezone, now, horizon)
            exists = due is not None and runner.edition_exists(frequency, due)
            decision = decide(frequency, due, now, self.config.digest.misfire_grace, exists)
            if decision.action is Action.TOO_LATE:  # only then: one more ledger read
                decision = unless_before_history(decision, runner.history_start())
            self._log_decision(decision)
            if decision.action is Action.RUN and decision.due_at is not None:
                await self._run_edition(runner, frequency, decision.due_at)
        self.arm_retry()

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
                    due=decision.due_at,
                    late_s=int(decision.late.total_seconds()),
                )
        elif decision.action is not Action.RUN:
            event(
                log,
                logging.DEBUG,
                "edition check",
                frequency=decision.frequency,
                action=decision.action.value,
                due=decision.due_at or "",
            )

    async def _run_edition(self, runner: EditionRunner, frequency: str, due: datetime) -> None:
        started = time.perf_counter()
        event(log, logging.INFO, "edition start", frequency=frequency, due=due)
        try:
            await runner.run_edition(frequency, due, self._stop, planned=self._planned)
        except Exception as exc:
            event(log, logging.ERROR, "edition failed", frequency=frequency, error=repr(exc))
            return
        event(
            log,
            logging.INFO,
            "edition end",
            frequency=frequency,
            due=due,
            seconds=round(time.perf_counter() - started, 3),
            interrupted=self._stop.is_set(),
        )

    async def subscribers_changed(self) -> None:
        async def sync(runner: EditionRunner) -> None:
            await asyncio.to_thread(runner.subscribers_changed)

        await self._runner_call("sync subscribers", sync)

    async def resume(self) -> None:
        """Deliver what is pending or due for retry (a restart, a wake-up, a timer)."""

        async def deliver(runner: EditionRunner) -> None:
            await runner.resume_deliveries(self._stop)

        await self._runner_call("resume deliveries", deliver)

    async def _runner_call(
        self, what: str, call: Callable[[EditionRunner], Awaitable[None]]
    ) -> None:
        runner = self.runner
        if runner is None:
            return
        async with self.work_lock:
            if self._stop.is_set():
                return
            event(log, logging.DEBUG, what)
            try:
                await call(runner)
            except Exception as exc:
                self._failed_runs += 1
                pause = min(FIRST_PAUSE * 2 ** (self._failed_runs - 1), LONGEST_PAUSE)
                self._paused_until = self._clock() + pause
                event(
                    log,
                    logging.ERROR,
                    f"{what} failed",
                    error=repr(exc),
                    retry_in_s=int(pause.total_seconds()),
                )
            else:
                self._failed_runs, self._paused_until = 0, None
        self.arm_retry()

    def arm_retry(self) -> None:
        """Wake up when the earliest deferred delivery is due (the time is in the ledger,
        so it survives restarts; this timer is only the wake-up)."""
        if self.runner is None or self._stop.is_set():
            return
        try:
            when = self.runner.next_retry_at()
        except Exception as exc:  # the ledger cannot be read: try again after a pause
            event(log, logging.ERROR, "next retry lookup failed", error=repr(exc))
            when = None
            self._paused_until = self._paused_until or self._clock() + FIRST_PAUSE
        if self._paused_until is not None:
            # A whole run failed (SMTP refused the login, TLS missing, the ledger could
            # not be written): run again after the pause, not sooner (that would hammer
            # the server), and even if the ledger shows nothing due, because what a
            # failed write left 'sending' is only recovered by the next run.
            when = self._paused_until
        self._timers.arm("retry", when, lambda: self._tasks.spawn(self.resume()))
