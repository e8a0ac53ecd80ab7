"""From parsed statements to the published set: ids unique, drafts and embargoes held back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

from .problems import Problem
from .statements import Statement

__all__ = ["Catalog", "Translation", "build_catalog", "newest_first"]


@dataclass(frozen=True, slots=True)
class Translation:
    lang: str
    url: str
    title: str


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every valid statement, and what is published at ``now``."""

    statements: tuple[Statement, ...]  # valid, unique ids, drafts included
    problems: tuple[Problem, ...]
    now: datetime
    # What is published, with sort keys: computed once (planning asks for it per language
    # and for translations, and each time converted every date: a visible part of a
    # rebuild). A memo of the fields above, so it takes no part in equality.
    _memo: dict[str, list[tuple[_Key, Statement]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # The same for by_language() and translations(): feeds and pages plan from one of each.
    _shared: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def published(self) -> list[Statement]:
        return [s for _, s in self._published()]

    def _published(self) -> list[tuple[_Key, Statement]]:
        found = self._memo.get("published")
        if found is None:
            now = _instant(self.now)
            found = self._memo["published"] = [
                (key, s)
                for s in self.statements
                if not s.draft and (key := _instant(s.published)) <= now
            ]
        return found

    def next_embargo(self) -> datetime | None:
        """When the next embargoed statement becomes public (for the daemon's timer)."""
        future = [s.published for s in self.statements if not s.draft and s.published > self.now]
        return min(future, default=None)

    def by_language(self) -> dict[str, list[Statement]]:
        """Published statements per language, newest first (as :func:`newest_first`).
        Made once per catalog and shared by every caller: read it, never change it."""
        found: dict[str, list[Statement]] | None = self._shared.get("by_language")
        if found is None:
            languages: dict[str, list[tuple[_Key, Statement]]] = {}
            for key, statement in self._published():
                languages.setdefault(statement.lang, []).append((key, statement))
            found = self._shared["by_language"] = {
                lang: _newest_first(items) for lang, items in sorted(languages.items())
            }
        return found

    def translations(self) -> Mapping[str, Sequence[Translation]]:
        """translation_key → published versions, in language order. Made once per
        catalog and shared by every caller: read it, never change it."""
        found: Mapping[str, Sequence[Translation]] | None = self._shared.get("translations")
        if found is None:
            groups: dict[str, list[Translation]] = {}
            for s in sorted(self.published, key=attrgetter("lang")):
                translation = Translation(s.lang, s.url, s.title)
                groups.setdefault(s.translation_key, []).append(translation)
            found = self._shared["translations"] = groups
        return found


def newest_first(statements: Iterable[Statement]) -> list[Statement]:
    return _newest_first([(_instant(s.published), s) for s in statements])


def _newest_first(keyed: list[tuple[_Key, Statement]]) -> list[Statement]:
    """The statements of (sort key, statement) pairs, newest first."""
    # id breaks ties so that equal dates still give one order, hence identical bytes.
    return [s for _, s in sorted(keyed, key=lambda pair: (pair[0], pair[1].id), reverse=True)]


_Key = tuple[float, datetime]


def _instant(moment: datetime) -> _Key:
    """A sort key for an aware datetime that compares fast.

    Aware datetimes with different tzinfo objects (every parsed statement has its
    own) compare by converting both to UTC, which made sorting 10,000 statements a
    visible part of every build. The timestamp decides unless two are equal as
    floats (possible only microseconds apart, far from 1970); then the datetimes do.
    """
    return (moment.timestamp(), moment)


def build_catalog(
    statements: Iterable[Statement], problems: Iterable[Problem], now: datetime
) -> Catalog:
    """Drop statements that claim an id (or a language of a translation) already taken.

    The file whose path sorts first keeps the id, so the outcome does not depend on
    the order the folder was listed in.
    """
    found = list(problems)
    kept: dict[str, Statement] = {}
    versions: dict[tuple[str, str], Statement] = {}
    for statement in sorted(statements, key=lambda s: s.source):
        owner = kept.get(statement.id)
        if owner is None:
            owner = versions.get((statement.translation_key, statement.lang))
        if owner is not None:
            found.append(
                Problem(
                    statement.source,
                    f"id {statement.id} (translation_key {statement.translation_key!r}, "
                    f"lang {statement.lang!r}) is already used by {owner.source}",
                    "give one of them its own 'translation_key' or 'id'",
                )
            )
            continue
        kept[statement.id] = statement
        versions[(statement.translation_key, statement.lang)] = statement
    return Catalog(tuple(kept.values()), tuple(sorted(found, key=_problem_order)), now)


def _problem_order(problem: Problem) -> tuple[str, int]:
    return (problem.source, problem.line or 0)
