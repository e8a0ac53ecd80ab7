"""One row per address across every subscriber file: which row keeps it (pure, streaming).

When an address is listed twice, the row that was there first keeps it: of the
rows listing it now, the one whose (file, address) the state database saw
earliest (:class:`Sightings`). Only when the state saw none of them (``check``
without state, a first run, or rows first seen together) does file order decide:
sorted file names, then line order. Every other row is reported as a duplicate
naming both places. (Sorted order alone let a new ``bad.csv`` take an address
over from ``list.csv``, with its name, languages and frequency.)

Files are read one after the other, in sorted order, and every row is decided
when it is read, except one whose address a file still to be read was seen in
earlier: it waits, in memory, until that file is read. Only such rows (addresses
moved between files) are held; everything else streams. The places of the rows
that kept their address live in a :class:`SeenAddresses` store: in memory here,
or a table of the state database, so that memory does not grow with the list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .problems import Problem
from .subscribers import Subscriber, email_key

__all__ = ["Deduplicator", "MemorySeenAddresses", "SeenAddresses", "Sightings"]

NEW = "\uffff"  # the first-seen time of every pair without Sightings: after any real one
_HINT = "keep one row per address; the row that was there first is used"


class SeenAddresses(Protocol):
    """Where :class:`Deduplicator` remembers the place of every row that kept its address.

    A place is an opaque int. Implementations: :class:`MemorySeenAddresses`, and a
    table in the state database (``SubscriberStore.seen_addresses``) for big lists.
    """

    def first_places(self, entries: Sequence[tuple[str, int]]) -> list[int]:
        """For each ``(key, place)`` in order: the place first recorded for ``key``.

        A key not seen before is recorded with its place (so the result is that
        place); within ``entries``, the first entry of a repeated key wins.
        """
        ...


class Sightings(Protocol):
    """When the state first saw each address in each file (``SubscriberStore.sightings``)."""

    def first_seen(self, pairs: Sequence[tuple[str, str]]) -> Mapping[str, Mapping[str, str]]:
        """For the email keys of ``(key, source)`` pairs: source → first-seen time.

        Times are text that sorts in time order. Every source the state saw a key in
        is there, not only those of ``pairs``; so is every pair of ``pairs``: one not
        seen before as seen now (and recorded so, unless the store only reads), so a
        later batch of the same run ranks it the same.
        """
        ...


class MemorySeenAddresses:
    """:class:`SeenAddresses` in a dict: fine for tests and lists of modest size."""

    def __init__(self) -> None:
        self._places: dict[str, int] = {}

    def first_places(self, entries: Sequence[tuple[str, int]]) -> list[int]:
        return [self._places.setdefault(key, place) for key, place in entries]


Rank = tuple[str, int]  # (first seen in its file, file number): the smaller keeps the address


@dataclass(slots=True)
class _Held:
    """A row waiting for a later file that listed its address earlier (``until``)."""

    item: Subscriber
    place: int
    rank: Rank
    until: int
    losers: list[Subscriber]  # rows of the address it beat: reported once a row keeps it


class Deduplicator:
    """One row per address; the others become problems naming both places.

    Feed it the files of ``sources`` in that (sorted) order: ``filter`` once per
    file, then ``finish`` once. Rows are looked up in batches of ``batch``
    subscribers (one round trip each to an external store) and come out in the
    order they went in, except held ones (see the module), which come out when the
    file they wait for was read.
    """

    def __init__(
        self,
        seen: SeenAddresses | None = None,
        *,
        sightings: Sightings | None = None,
        sources: Sequence[str] = (),
        batch: int = 5000,
    ) -> None:
        self._seen = seen if seen is not None else MemorySeenAddresses()
        self._sightings = sightings
        self._batch = batch
        # Place = file number << 32 | line: one int per address, whatever the store.
        self._sources: dict[str, int] = {}
        self._names: list[str] = []
        for source in sources:
            self._number(source)
        self._held: dict[str, _Held] = {}
        self._count = 0

    def filter(
        self, items: Iterable[Subscriber | Problem], source: str | None = None
    ) -> Iterator[Subscriber | Problem]:
        """The items of one file (``source``), decided; then the rows that waited for it."""
        pending: list[Subscriber | Problem] = []
        subscribers = 0
        for item in items:
            pending.append(item)
            if isinstance(item, Subscriber):
                source = source or item.source
                subscribers += 1
                if subscribers >= self._batch:
                    yield from self._resolve(pending)
                    pending, subscribers = [], 0
        if pending:
            yield from self._resolve(pending)
        done = -1 if source is None else self._number(source)
        yield from self._release(lambda held: held.until <= done)

    def finish(self) -> Iterator[Subscriber | Problem]:
        """The rows still waiting (their file listed the address no more, or was unreadable)."""
        yield from self._release(lambda held: True)

    def _resolve(self, items: list[Subscriber | Problem]) -> Iterator[Subscriber | Problem]:
        people = [item for item in items if isinstance(item, Subscriber)]
        keys = [email_key(item.email) for item in people]
        sighted: Mapping[str, Mapping[str, str]] = {}
        if self._sightings is not None and people:
            sighted = self._sightings.first_seen(
                [(k, p.source) for k, p in zip(keys, people, strict=True)]
            )
        decided: list[Problem | int] = []  # an int: the index of a lookup
        lookups: list[tuple[str, int, Subscriber, list[Subscriber]]] = []
        next_key = iter(keys)
        source, number = "", -1
        for item in items:
            if not isinstance(item, Subscriber):
                decided.append(item)
                continue
            if item.source != source:  # a batch is (nearly always) one file
                source, number = item.source, self._number(item.source)
            key, place = next(next_key), number << 32 | item.line
            times = sighted.get(key)
            if key in self._held or (times is not None and len(times) > 1):
                losers = self._decide(key, item, place, times or {})
                if losers is None:
                    continue
            else:  # the common case: listed in this file only, nothing waiting
                losers = []
            decided.append(len(lookups))
            lookups.append((key, place, item, losers))
        firsts = self._seen.first_places([(k, p) for k, p, _, _ in lookups]) if lookups else []
        for entry in decided:
            if isinstance(entry, int):
                _, place, item, losers = lookups[entry]
                if firsts[entry] == place and not losers:  # the usual row: no generator
                    self._count += 1
                    yield item
                else:
                    yield from self._settled(item, place, losers, firsts[entry])
            else:
                yield entry

    def _decide(
        self, key: str, item: Subscriber, place: int, sighted: Mapping[str, str]
    ) -> list[Subscriber] | None:
        """Hold the row, or give it up to a held one (None); else the rows it beat.

        A row not held and not given up is looked up in the ``seen`` store: a row
        of an earlier file may have kept the address already.
        """
        rank = (sighted.get(item.source, NEW), place >> 32)
        losers: list[Subscriber] = []
        held = self._held.get(key)
        if held is not None:
            if rank >= held.rank:
                held.losers.append(item)
                return None
            del self._held[key]  # this row was there before the held one: it takes over
            losers = [*held.losers, held.item]
        until = self._waits_for(sighted, rank)
        if until is not None:
            self._held[key] = _Held(item, place, rank, until, losers)
            return None
        return losers

    def _waits_for(self, sighted: Mapping[str, str], rank: Rank) -> int | None:
        """The last file still to be read that listed the address before this row did."""
        later = [
            number
            for source, seen_at in sighted.items()
            if (number := self._sources.get(source, -1)) > rank[1] and (seen_at, number) < rank
        ]
        return max(later, default=None)

    def _release(self, ready: Callable[[_Held], bool]) -> Iterator[Subscriber | Problem]:
        released = [(key, held) for key, held in self._held.items() if ready(held)]
        for key, _ in released:
            del self._held[key]
        entries = [(key, held.place) for key, held in released]
        firsts = self._seen.first_places(entries) if entries else []
        for (_, held), first in zip(released, firsts, strict=True):
            yield from self._settled(held.item, held.place, held.losers, first)

    def _settled(
        self, item: Subscriber, place: int, losers: list[Subscriber], kept_at: int
    ) -> Iterator[Subscriber | Problem]:
        """``item`` if it kept its address (at ``kept_at``), and the rows that did not."""
        if kept_at == place:
            self._count += 1
            yield item
        else:
            yield self._duplicate(item, kept_at)
        for loser in losers:
            yield self._duplicate(loser, kept_at)

    def _duplicate(self, item: Subscriber, kept_at: int) -> Problem:
        where = self._place(kept_at)
        if kept_at < self._place_of(item):  # places compare in reading order
            why = f"already listed at {where}"
        else:
            why = f"{where} listed it first"
        return Problem(item.source, f"duplicate address {item.email!r}: {why}", _HINT, item.line)

    def _number(self, source: str) -> int:
        number = self._sources.get(source)
        if number is None:
            number = self._sources[source] = len(self._names)
            self._names.append(source)
        return number

    def _place_of(self, item: Subscriber) -> int:
        return self._number(item.source) << 32 | item.line

    def _place(self, place: int) -> str:
        number, line = place >> 32, place & 0xFFFFFFFF
        return f"{self._names[number]}:{line}"

    def __len__(self) -> int:
        """How many distinct addresses it has let through."""
        return self._count
