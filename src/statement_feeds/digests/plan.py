"""Planning an edition: catalog + subscriber files + state store → deliveries recorded.

Data path::

    adapters.subscriber_files.read_subscribers (streamed, deduplicated against
        store.seen_addresses, a TEMP table; the row first seen, store.sightings, wins)
    → store.sync_subscribers (first sighting = join time)
    → store.subscriber_states (join time, blocked, keys already assigned)
    → core.selection.Selector.choose (+ domain.corrections.CorrectionFinder.choose)
    → ledger.PlannedDelivery
    → store.plan_edition (one transaction: edition, deliveries, assigned keys)

Everything from syncing join times to the last delivery runs inside
``store.plan_edition`` (the deliveries are a generator consumed there), in one
transaction (on PostgreSQL two, committed one after the other: the sync's, then the
edition's, written meanwhile by a second connection; ``state/postgres_plan``), so a
crash or an error anywhere leaves no trace of a half-planned edition.
Subscribers are handled in chunks and the addresses seen are kept in the
database: memory does not grow with the list.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from ..config import Config
from ..domain.catalog import Catalog
from ..domain.corrections import CorrectionFinder
from ..domain.problems import Problem
from ..domain.selection import Selector
from ..domain.subscribers import Subscriber, email_key
from ..domain.web_subscribers import merge_subscribers
from ..state.api import Edition, PlannedDelivery, Store, SubscriberState
from ..state.batches import chunks
from .diagnosis import Diagnosis
from .subscriber_files import read_subscribers

__all__ = [
    "MANUAL",
    "DryRun",
    "PlanResult",
    "dry_run",
    "plan_edition",
    "preview_edition",
    "sync_subscribers",
]

MANUAL = "manual"  # an edition asked for by hand: every subscriber, whatever their frequency


@dataclass(frozen=True, slots=True)
class PlanResult:
    edition: Edition
    problems: tuple[Problem, ...]  # from the CSV files: the CLI exits 1 if any
    created: bool  # False: the edition already existed and was returned unchanged
    diagnosis: Diagnosis | None = None  # why subscribers got nothing (if planned now)


def plan_edition(  # noqa: PLR0917 - the positional order is the agreed interface
    config: Config,
    store: Store,
    catalog: Catalog,
    frequency: str,
    due_at: datetime,
    now: datetime,
    *,
    message_id_for: Callable[[int, str], str],
) -> PlanResult:
    """Plan and record the edition for ``(frequency, due_at)``, or return the existing one.

    When the edition exists nothing is read or written (and no problems are reported).
    """
    existing = store.edition_for(frequency, due_at)
    if existing is not None:
        return PlanResult(existing, (), created=False)
    problems: list[Problem] = []
    selector = _selector(config, catalog, now)
    diagnosis = _diagnosis(config, catalog, frequency)
    consumed: list[bool] = []  # the store iterates the deliveries only if it plans anew

    def deliveries() -> Iterator[PlannedDelivery]:
        consumed.append(True)
        yield from _deliveries(
            config, store, selector, diagnosis, now=now, problems=problems, record=True
        )

    with _collector_set_aside():
        edition = store.plan_edition(frequency, due_at, now, deliveries(), message_id_for)
    return PlanResult(edition, tuple(problems), created=bool(consumed), diagnosis=diagnosis)


def preview_edition(  # noqa: PLR0917 - the positional order is the agreed interface
    config: Config,
    store: Store,
    catalog: Catalog,
    frequency: str,
    now: datetime,
    diagnosis: Diagnosis | None = None,
) -> tuple[list[PlannedDelivery], list[Problem]]:
    """What an edition planned now would contain, without writing anything (``--dry-run``).

    Addresses the store has never seen count as joining now, as they would. Why
    subscribers get nothing is counted into ``diagnosis`` if given.
    """
    problems: list[Problem] = []
    selector = _selector(config, catalog, now)
    diagnosis = diagnosis or _diagnosis(config, catalog, frequency)
    planned = list(
        _deliveries(config, store, selector, diagnosis, now=now, problems=problems, record=False)
    )
    return planned, problems


@dataclass(frozen=True, slots=True)
class _Picks:
    """What a delivery records of its new statements, in ``PlannedDelivery``'s order."""

    statement_ids: tuple[str, ...]
    translation_keys: tuple[str, ...]
    updated: tuple[datetime, ...]


_NO_PICKS = _Picks((), (), ())


@dataclass(frozen=True, slots=True)
class _Selection:
    new: Selector
    corrections: CorrectionFinder
    # Subscribers share a few dozen (languages, join time, history) triples: each one's
    # choice is made once (a million choices and three tuples each were ~5 % of a
    # plan's Python). Bounded: cleared when it grows past _PICKS_KEPT.
    picked: dict[tuple[tuple[str, ...], datetime, frozenset[str]], _Picks] = field(
        default_factory=dict
    )

    def picks(
        self, languages: tuple[str, ...], joined_at: datetime, assigned: frozenset[str]
    ) -> _Picks:
        key = (languages, joined_at, assigned)
        picks = self.picked.get(key)
        if picks is None:
            if len(self.picked) >= _PICKS_KEPT:
                self.picked.clear()
            choices = self.new.choose(languages, joined_at, assigned)
            picks = self.picked[key] = (
                _Picks(
                    tuple(c.statement_id for c in choices),
                    tuple(c.translation_key for c in choices),
                    tuple(c.updated or c.published for c in choices),
                )
                if choices
                else _NO_PICKS
            )
        return picks


_PICKS_KEPT = 10_000


def _selector(config: Config, catalog: Catalog, now: datetime) -> _Selection:
    max_age = config.digest.max_age
    return _Selection(
        Selector(catalog.published, now, max_age),
        CorrectionFinder(catalog.published, now, max_age, enabled=config.digest.corrections),
    )


def _diagnosis(config: Config, catalog: Catalog, frequency: str) -> Diagnosis:
    return Diagnosis(frequency, len(catalog.published), config.digest.max_age)


@dataclass(frozen=True, slots=True)
class DryRun:
    """What ``digest send --dry-run`` shows."""

    planned: list[PlannedDelivery]
    problems: list[Problem]
    diagnosis: Diagnosis
    labels: dict[str, str]  # statement id → "title (lang)", for the planned ones only


def dry_run(
    config: Config, store: Store, catalog: Catalog, frequency: str, now: datetime
) -> DryRun:
    """:func:`preview_edition` with why nobody gets anything and the statements' titles."""
    diagnosis = _diagnosis(config, catalog, frequency)
    planned, problems = preview_edition(config, store, catalog, frequency, now, diagnosis)
    # Ids mean nothing to a reader: the catalog planning used has the titles.
    wanted = {i for d in planned for i in (*d.statement_ids, *_corrected_ids(d))}
    labels = {s.id: f"{s.title} ({s.lang})" for s in catalog.statements if s.id in wanted}
    return DryRun(planned, problems, diagnosis, labels)


def sync_subscribers(config: Config, store: Store, now: datetime) -> list[Problem]:
    """Record the join time of every new address in the files (call when they change).

    Planning does this too; calling it as soon as a file changes makes "joined"
    mean "added to the list", not "first edition after being added".
    """
    problems: list[Problem] = []
    # One transaction, the files read inside it: the sightings recorded while
    # reading join it, so the join times and the sightings are written together.
    with _collector_set_aside():
        store.sync_subscribers(
            (s.email for s in _valid(config, problems, store, now, record=True)), now
        )
    return problems


@contextmanager
def _collector_set_aside() -> Iterator[None]:
    """Reading a list makes millions of short-lived objects, so the cyclic garbage
    collector runs hundreds of full collections, and each walked every object the
    process held before: modules, the catalog, the web app. ``gc.freeze`` sets those
    aside for the duration (and ``unfreeze`` gives them back to it). Measured with
    bench/plan_bench.py, 200,000 subscribers: full collections took 2.2 s of a first
    sync and two plans, 0.8 s with this (the sync's own collections still included)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _valid(
    config: Config, problems: list[Problem], store: Store, now: datetime, *, record: bool
) -> Iterator[Subscriber]:
    """The CSV subscribers with web sign-ups and preference changes applied.

    Rows first seen in their file count as seen ``now``, recorded unless it is a dry
    run: the row there first keeps an address two files list.
    """
    web, overrides = store.web_subscriber_view()
    # The addresses seen (to report duplicates) live in the database, not in memory.
    with store.seen_addresses() as seen:
        items = read_subscribers(
            config.paths.subscribers,
            config.site.default_language,
            seen,
            store.sightings(now, record=record),
        )
        for item in merge_subscribers(items, web, overrides):
            if isinstance(item, Problem):
                problems.append(item)
            else:
                yield item


def _deliveries(
    config: Config,
    store: Store,
    selector: _Selection,
    diagnosis: Diagnosis,
    *,
    now: datetime,
    problems: list[Problem],
    record: bool,
) -> Iterator[PlannedDelivery]:
    keys, corrected = selector.new.translation_keys, selector.corrections.translation_keys
    # Keys nobody ever got (new statements: the usual case) are in no address's history,
    # so the per-address look-up skips them. Read once, before this plan assigns any:
    # what it assigns goes to addresses already handled (each is planned once per
    # edition), and a key read per chunk would be looked up for everyone after the first.
    ever = store.ever_assigned(keys | corrected)
    keys, corrected = keys & ever, corrected & ever
    for chunk in chunks(_valid(config, problems, store, now, record=record)):
        # Every frequency is read and synced: joining is about the list, not the schedule.
        states = store.subscriber_states([s.email for s in chunk], keys, corrected)
        if record:
            # Only first sightings are written: a million no-op upserts cost seconds.
            unseen = [s.email for s in chunk if email_key(s.email) not in states]
            store.sync_subscribers(unseen, now)
        for subscriber in chunk:
            delivery = _delivery(selector, diagnosis, subscriber, states)
            if delivery is not None:
                yield delivery


def _delivery(
    selector: _Selection,
    diagnosis: Diagnosis,
    subscriber: Subscriber,
    states: Mapping[str, SubscriberState],
) -> PlannedDelivery | None:
    """One subscriber's delivery, or None (and the reason noted in ``diagnosis``)."""
    diagnosis.listed += 1
    if diagnosis.frequency not in (MANUAL, subscriber.frequency):
        diagnosis.other_frequency += 1
        return None
    state = states.get(email_key(subscriber.email))
    if state is None:
        diagnosis.first_seen_now += 1  # joins now, so nothing is new for them yet
        return None
    if state.blocked:
        diagnosis.blocked += 1
        return None
    picks = selector.picks(subscriber.languages, state.joined_at, state.assigned)
    corrections = selector.corrections.choose(state.mailed) if state.mailed else ()
    if picks is _NO_PICKS and not corrections:
        diagnosis.empty(selector.new, subscriber.languages, state.joined_at)
        return None
    return PlannedDelivery(
        email=subscriber.email,
        name=subscriber.name,
        lang=subscriber.languages[0],
        statement_ids=picks.statement_ids,
        translation_keys=picks.translation_keys,
        updated=picks.updated,
        corrections=corrections,
    )


def _corrected_ids(delivery: PlannedDelivery) -> tuple[str, ...]:
    return tuple(c.statement_id for c in delivery.corrections)
