"""Which corrected statements go to a subscriber again (pure).

Rules (README "Corrections"): a statement's ``updated`` is the time of its last
correction. The ledger remembers, for every translation key a subscriber was mailed,
which version (statement id) went and the ``updated`` value it had then. When that
same version's ``updated`` is now later, it is a correction: the subscriber gets that
version once more, in the language they got before. A correction of another
translation alone reaches nobody who got a different one: their text did not change;
when their translation is corrected too, they get it. Editing a file without moving
``updated`` (a typo fix) reaches nobody; moving it again reaches everyone again.

A correction is mailed when its time is within ``digest.max_age`` of now and not in
the future (a future ``updated`` waits for its time, as a future ``date`` does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from .statements import Statement

__all__ = ["Correction", "CorrectionFinder", "Mailed"]


@dataclass(frozen=True, slots=True)
class Mailed:
    """What the ledger says a subscriber was mailed of one translation key."""

    # The version mailed; rows from before corrections were tracked hold every id of
    # the delivery that carried the key (only one of them is of this key).
    statement_ids: frozenset[str]
    # Its ``updated`` value when mailed (older rows: when their edition was planned).
    updated: datetime


@dataclass(frozen=True, slots=True)
class Correction:
    """One corrected version to mail again."""

    statement_id: str
    translation_key: str
    updated: datetime  # the correction time, as the ledger records it


class CorrectionFinder:
    """The corrected statements of one edition; :meth:`choose` one subscriber's.

    ``enabled=False`` (``digest.corrections = false``) finds nothing.
    """

    def __init__(
        self,
        published: Iterable[Statement],
        now: datetime,
        max_age: timedelta,
        *,
        enabled: bool = True,
    ) -> None:
        oldest = now - max_age
        self._by_id: dict[str, Statement] = {}
        if enabled:
            for statement in published:
                if statement.draft or statement.published > now:
                    continue
                if statement.published < statement.updated <= now and statement.updated >= oldest:
                    self._by_id[statement.id] = statement
        self._keys = frozenset(s.translation_key for s in self._by_id.values())

    @property
    def translation_keys(self) -> frozenset[str]:
        """The keys with a recent correction: the store needs history for these only."""
        return self._keys

    def choose(self, mailed: Mapping[str, Mailed]) -> tuple[Correction, ...]:
        """The corrections for one subscriber (``mailed``: by translation key), newest first."""
        found: list[Correction] = []
        for key, record in mailed.items():
            for statement_id in record.statement_ids:
                statement = self._by_id.get(statement_id)
                if (
                    statement is not None
                    and statement.translation_key == key
                    and statement.updated > record.updated
                ):
                    found.append(Correction(statement.id, key, statement.updated))
                    break
        found.sort(key=lambda c: (c.updated, c.statement_id), reverse=True)
        return tuple(found)
