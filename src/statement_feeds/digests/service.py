"""The digest side of the service: planning, composing and sending joined in one place.

Data path of an edition::

    Publisher.load (catalog) → planning.plan_edition (one transaction in the store)
    → sending.deliver (claim → core.digest.Composer → adapters.mailer → mark_*)

:class:`Digests` is used by the CLI (``digest send|preview``, ``status``) and, as
the daemon's ``EditionRunner``, by ``run``. Only one process delivers from a
ledger at a time: whoever sends holds ``<state>/sender.lock`` (the daemon for
its whole life); ``digest send`` without it only plans, and wakes the holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import jinja2

from ..clock import Clock, system_clock
from ..config import Config
from ..domain.catalog import Catalog, newest_first
from ..domain.digest import Composer, DigestSettings, Preview
from ..domain.statements import Statement
from ..domain.tokens import Signer
from ..errors import ConfigError, DeliveryHalted, LockHeldError, NothingToPreview
from ..feeds.build import Publisher
from ..feeds.cache import BuildCache
from ..locales import load_translations
from ..logs import event
from ..state.api import EditionStatus, LedgerCounts, Store
from ..state.coordination import wake_daemons
from ..state.lock import LOCK_NAME, SENDER_LOCK, WAKE_SIGNAL, StateLock, live_holder
from ..state.open import open_store
from ..template_files import template_error
from .envelope import envelope_sender
from .mailer import make_messenger
from .plan import MANUAL, DryRun, PlanResult, dry_run, plan_edition, sync_subscribers
from .send import DeliverySummary, Progress, deliver, load_environment

__all__ = ["Digests", "SendOutcome", "StatusReport"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    plan: PlanResult | None
    summary: DeliverySummary | None  # None: another process (the daemon) delivers
    delegated_to: int | None = None
    woken: bool = True  # False: the daemon could not be signalled (it sends at its rescan)
    daemons: int = 0  # [state] url: the live daemons woken through the database


@dataclass(frozen=True, slots=True)
class StatusReport:
    editions: list[EditionStatus]
    counts: LedgerCounts
    next_retry_at: datetime | None
    daemon_pid: int | None
    sender_pid: int | None


class Digests:
    def __init__(self, config: Config, clock: Clock = system_clock) -> None:
        self.config = config
        self.clock = clock
        self._env = load_environment(config.paths.templates)

    # -- configuration --------------------------------------------------------------

    def settings(self) -> DigestSettings:
        return digest_settings(self.config)

    def require_public_url(self) -> None:
        if not self.config.http.public_url:
            raise ConfigError(
                "required once digests are sent: every digest carries an unsubscribe link "
                'under it; add public_url = "https://.../" under [http]',
                path=str(self.config.path),
                key="http.public_url",
            )

    def reload(self, config: Config) -> None:
        env = load_environment(config.paths.templates)
        _check_templates(config, env, self.clock())  # fail now, keeping the old ones
        self.config, self._env = config, env

    def check_templates(self) -> None:
        """Render a sample digest: a broken template is a ConfigError naming file and line.

        Done before planning or claiming anything, so a bad template never strands a
        delivery half-way; ``check`` and SIGHUP use it too.
        """
        _check_templates(self.config, self._env, self.clock())

    # -- planning ------------------------------------------------------------------

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        with open_store(self.config) as store:
            yield store

    def catalog(self) -> Catalog:
        with BuildCache(self.config.paths.state / "cache.sqlite") as cache:
            return Publisher(self.config, self.clock).load(cache)

    def signer(self) -> Signer:
        with self.store() as store:  # ids in links are keyed by the state's own id key
            return Signer(store.signing_keys(), id_key=store.subscriber_id_key())

    def plan(self, frequency: str, due_at: datetime) -> PlanResult:
        self.require_public_url()
        self.check_templates()  # before anything is recorded
        signer, domain = self.signer(), self.settings().domain
        catalog = self.catalog()
        with self.store() as store:
            return plan_edition(
                self.config,
                store,
                catalog,
                frequency,
                due_at,
                self.clock(),
                message_id_for=lambda edition, email: signer.message_id(edition, email, domain),
            )

    def dry_run(self, frequency: str) -> DryRun:
        catalog = self.catalog()
        with self.store() as store:
            return dry_run(self.config, store, catalog, frequency, self.clock())

    # -- sending -------------------------------------------------------------------

    def composer(self, catalog: Catalog) -> Composer:
        return Composer(
            self._env,
            self.settings(),
            translations=load_translations(self.config.site.default_language),
            signer=self.signer(),
            # Every statement, not only the latest: a retried delivery may be old.
            statements={s.id: s for s in catalog.statements},
            date=self.clock(),
        )

    async def deliver(
        self, stop: asyncio.Event | None = None, progress: Callable[[Progress], None] | None = None
    ) -> DeliverySummary:
        """Send everything due, in this process. The caller must hold the sender lock.

        (An opt-in mode with several sending processes was removed: on the edition
        benchmark two processes were no faster than one, 1,649 against 1,707 msg/s,
        with 2.5 times the memory; the ledger's writes serialise them anyway.)
        """
        self.require_public_url()
        self.check_templates()  # before anything is claimed
        # Reading every statement takes a while on a big site: not on the event loop,
        # which keeps answering signals, HTTP and the watcher meanwhile.
        composer = await asyncio.to_thread(lambda: self.composer(self.catalog()))
        messenger = make_messenger(self.config.smtp, self.config.paths.outbox)
        try:
            with self.store() as store:
                return await deliver(
                    store,
                    messenger,
                    composer,
                    self.clock,
                    sender=envelope_sender(
                        self.config, self.settings().sender_address, store.signing_keys()
                    ),
                    concurrency=self.config.smtp.concurrency,
                    retry_lifetime=self.config.digest.retry_lifetime,
                    stop=stop,
                    progress=progress,
                )
        finally:
            await messenger.close()

    def sender_lock(self) -> StateLock:
        return StateLock(self.config.paths.state, SENDER_LOCK)

    async def send(
        self,
        frequency: str | None,
        *,
        resend_failed: bool = False,
        progress: Callable[[Progress], None] | None = None,
    ) -> SendOutcome:
        """``digest send``: plan an edition now (unless only resending) and deliver it.

        If the daemon holds the sender lock, only plan, and wake it. If another
        ``digest send`` holds it, wait for it to finish and then deliver: it has no
        handler for the wake-up signal (which would kill it), and it may already be
        past its last claim, so what was just planned would wait for the next run.
        """
        plan = None if resend_failed else self.plan(frequency or MANUAL, self.clock())
        if resend_failed:
            with self.store() as store:
                store.retry_failed(now=self.clock())
        # [state] url: the daemons on any host deliver, woken through the database.
        daemons = await asyncio.to_thread(wake_daemons, self.config)
        if daemons:
            return SendOutcome(plan, None, daemons=daemons)
        lock = self.sender_lock()
        daemon = await self._acquire_or_find_daemon(lock)
        if daemon is not None:
            try:
                os.kill(daemon, WAKE_SIGNAL)
            except (ProcessLookupError, PermissionError) as exc:
                # Not ours to signal (another user): it still delivers at its next rescan.
                event(log, logging.WARNING, "cannot wake the daemon", pid=daemon, error=str(exc))
                return SendOutcome(plan, None, daemon, woken=False)
            return SendOutcome(plan, None, daemon)
        try:
            return SendOutcome(plan, await self.deliver(progress=progress))
        except (ConfigError, DeliveryHalted) as exc:
            if plan is None or not plan.edition.deliveries:
                raise
            text = (
                f"edition {plan.edition.id} was planned ({plan.edition.deliveries} messages) "
                f"but not sent: {exc}. Its messages stay pending: fix this, then run "
                "`digest send` again (or let the daemon send them)"
            )
            if isinstance(exc, DeliveryHalted):  # the same kind, for whoever tells them apart
                raise DeliveryHalted(
                    text, code=exc.code, enhanced=exc.enhanced, refusals=exc.refusals
                ) from exc
            raise ConfigError(text) from exc
        finally:
            lock.release()

    async def _acquire_or_find_daemon(self, lock: StateLock, poll: float = 0.1) -> int | None:
        """Take the sender lock (waiting for a ``digest send`` holding it), or return the
        pid of the daemon holding it (it holds it for its whole life)."""
        waiting = False
        while True:
            try:
                lock.acquire()
            except LockHeldError as held:
                daemon = live_holder(self.config.paths.state / LOCK_NAME)
                if daemon is not None and held.pid in (daemon, None):
                    return daemon
                if not waiting:
                    event(log, logging.INFO, "waiting for another sender", pid=held.pid)
                    waiting = True
                await asyncio.sleep(poll)
            else:
                return None

    # -- the daemon's EditionRunner ----------------------------------------------------

    async def run_edition(
        self,
        frequency: str,
        due_at: datetime,
        stop: asyncio.Event,
        *,
        planned: Callable[[], None] | None = None,
    ) -> None:
        # Planning a big list takes seconds: in a thread (the store opens per call).
        await asyncio.to_thread(self.plan, frequency, due_at)
        if planned is not None:
            planned()
        await self.deliver(stop=stop)

    async def resume_deliveries(self, stop: asyncio.Event) -> None:
        await self.deliver(stop=stop)

    def edition_exists(self, frequency: str, due_at: datetime) -> bool:
        with self.store() as store:
            return store.edition_for(frequency, due_at) is not None

    def next_retry_at(self) -> datetime | None:
        with self.store() as store:
            return store.next_attempt_at()

    def history_start(self) -> datetime | None:
        with self.store() as store:
            return store.history_start()

    def subscribers_changed(self) -> None:
        """Record the join time of addresses new in the subscriber files (for the daemon)."""
        with self.store() as store:
            problems = sync_subscribers(self.config, store, self.clock())
        for problem in problems:
            event(log, logging.WARNING, "invalid subscriber", problem=str(problem))

    def preview(self, lang: str | None, folder: Path, count: int = 5) -> list[Path]:
        """Render a digest of the latest statements in ``lang`` to text, HTML and .eml."""
        self.require_public_url()
        self.check_templates()
        catalog = self.catalog()
        lang = lang or self.config.site.default_language
        latest = newest_first(s for s in catalog.published if s.lang == lang)[:count]
        if not latest:
            raise NothingToPreview(lang)
        preview = self.composer(catalog).preview(lang, latest, "reader@example.org", "Reader")
        return _write_preview(folder, lang, preview)

    def status(self, limit: int = 10) -> StatusReport:
        state = self.config.paths.state
        with self.store() as store:
            return StatusReport(
                editions=store.editions(limit),
                counts=store.counts(),
                next_retry_at=store.next_attempt_at(),
                daemon_pid=live_holder(state / "daemon.lock"),
                sender_pid=live_holder(state / SENDER_LOCK),
            )


_SAMPLE_URL = "https://example.org/newsletter/"
_SAMPLE_KEY = b"sample-key-for-checking-templates"


def digest_settings(config: Config) -> DigestSettings:
    """What composing needs from the configuration."""
    site, digest = config.site, config.digest
    return DigestSettings(
        sender=digest.sender,
        site_title=site.title,
        site_url=site.url,
        public_url=config.http.public_url,
        timezone=site.timezone,
        unsubscribe_mailto=digest.unsubscribe_mailto,
        language_titles=dict(site.language_titles),
        feeds_url=site.feeds_url,
    )


def _check_templates(config: Config, env: jinja2.Environment, now: datetime) -> None:
    settings = digest_settings(config)
    composer = Composer(
        env,
        replace(settings, public_url=settings.public_url or _SAMPLE_URL),
        translations=load_translations(config.site.default_language),
        signer=Signer([_SAMPLE_KEY], id_key=_SAMPLE_KEY),
        statements={},
        date=now,
    )
    sample = _sample_statement(config, now)
    try:
        # With a "Corrected" section too, so that its block is checked as well.
        composer.preview(sample.lang, [sample], "reader@example.org", "Reader", [sample])
    except jinja2.TemplateError as exc:
        raise template_error(exc, None, config.paths.templates, config.path) from None


def _sample_statement(config: Config, now: datetime) -> Statement:
    lang = config.site.default_language
    return Statement(
        source="sample.md",
        id="urn:uuid:00000000-0000-5000-8000-000000000000",
        lang=lang,
        translation_key="sample",
        title="Sample statement",
        published=now,
        updated=now,
        url=f"{config.site.url}{lang}/sample/",
        summary="A sample excerpt.",
        body="",
        author=config.site.author,
        draft=False,
        digest="sample",
    )


def _write_preview(folder: Path, lang: str, preview: Preview) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"digest.{lang}.{ext}" for ext in ("txt", "html", "eml")]
    paths[0].write_text(preview.text, encoding="utf-8")
    paths[1].write_text(preview.html, encoding="utf-8")
    paths[2].write_bytes(preview.eml)
    return paths
