"""Choosing what each subscriber gets in an edition (pure).

Rules (DESIGN.md "Digests"): a statement is "new" for a subscriber when it was
published after they joined, is not older than ``digest.max_age`` and no
translation of it was ever assigned to them. It comes in their most preferred
language that has it; if none of their languages has it, they do not get it.

Speed: subscribers share a handful of preference lists, so the ordered candidate
list is computed once per distinct ``languages`` tuple; per subscriber only a
scan of that (short, newest-first) list remains.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .statements import Statement

__all__ = ["Choice", "Selector"]


@dataclass(frozen=True, slots=True)
class Choice:
    """One statement version chosen for a subscriber."""

    statement_id: str
    translation_key: str
    published: datetime
    updated: datetime | None = None  # its ``updated`` value: what a correction is measured from


class Selector:
    """Per-edition selection state: the published statements within ``max_age`` of ``now``.

    ``published`` must already be filtered by time (``Catalog.published``): drafts
    and embargoed statements are never in it.
    """

    def __init__(self, published: Iterable[Statement], now: datetime, max_age: timedelta) -> None:
        self.now = now
        self.oldest = now - max_age
        self._versions: dict[str, dict[str, Statement]] = {}
        for statement in published:
            if statement.draft or statement.published > now:
                continue  # belt and braces: the catalog already holds these back
            self._versions.setdefault(statement.translation_key, {})[statement.lang] = statement
        self._candidates: dict[tuple[str, ...], tuple[Choice, ...]] = {}
        self._newest: dict[tuple[str, ...], datetime | None] = {}

    @property
    def translation_keys(self) -> frozenset[str]:
        """Every key that could be chosen: the store only needs history for these."""
        return frozenset(self._versions)

    def candidates(self, languages: tuple[str, ...]) -> tuple[Choice, ...]:
        """What a subscriber with these preferences could get, newest first (cached)."""
        cached = self._candidates.get(languages)
        if cached is None:
            cached = self._compute(languages)
            self._candidates[languages] = cached
        return cached

    def newest(self, languages: tuple[str, ...]) -> datetime | None:
        """The newest preferred version whatever its age (cached): says why nothing was new."""
        if languages not in self._newest:
            dates = (
                next((v[lang].published for lang in languages if lang in v), None)
                for v in self._versions.values()
            )
            self._newest[languages] = max((d for d in dates if d is not None), default=None)
        return self._newest[languages]

    def _compute(self, languages: tuple[str, ...]) -> tuple[Choice, ...]:
        chosen: list[Choice] = []
        for key, versions in self._versions.items():
            # The preferred version decides, even if it is too old while another
            # translation is recent: the statement itself is what ages.
            version = next((versions[lang] for lang in languages if lang in versions), None)
            if version is not None and version.published >= self.oldest:
                chosen.append(Choice(version.id, key, version.published, version.updated))
        chosen.sort(key=lambda c: (c.published, c.statement_id), reverse=True)
        return tuple(chosen)

    def choose(
        self, languages: tuple[str, ...], joined_at: datetime, assigned: Container[str] = ()
    ) -> tuple[Choice, ...]:
        """The new statements for one subscriber, newest first."""
        picked: list[Choice] = []
        for choice in self.candidates(languages):
            if choice.published <= joined_at:
                break  # newest first: everything after this is older still
            if choice.translation_key not in assigned:
                picked.append(choice)
        return tuple(picked)
