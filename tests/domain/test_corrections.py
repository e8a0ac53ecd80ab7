"""Which corrected statements go to a subscriber again (domain/corrections.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from statement_feeds.domain.corrections import Correction, CorrectionFinder, Mailed
from statement_feeds.domain.statements import Statement

T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)
HOUR = timedelta(hours=1)
MAX_AGE = timedelta(days=30)


def statement(
    key: str, lang: str, published: datetime, updated: datetime | None = None
) -> Statement:
    return Statement(
        f"{key}.{lang}.md",
        f"{key}-{lang}",
        lang,
        key,
        key,
        published,
        updated or published,
        f"https://example.org/{lang}/{key}/",
        "",
        "",
        "",
        False,
        key + lang,
    )


def mailed(statement_id: str, updated: datetime) -> Mailed:
    return Mailed(frozenset({statement_id}), updated)


def test_the_version_mailed_comes_again_when_its_updated_moved_later() -> None:
    fixed = statement("a", "ru", T0, T0 + 5 * HOUR)
    finder = CorrectionFinder([fixed, statement("a", "en", T0)], T0 + 6 * HOUR, MAX_AGE)
    assert finder.translation_keys == {"a"}
    assert finder.choose({"a": mailed("a-ru", T0)}) == (Correction("a-ru", "a", T0 + 5 * HOUR),)


def test_no_correction_when_updated_is_what_was_mailed_or_earlier() -> None:
    # Mailed with updated = T0 + 5h already (corrected before it went): nothing to tell.
    fixed = statement("a", "ru", T0, T0 + 5 * HOUR)
    finder = CorrectionFinder([fixed], T0 + 6 * HOUR, MAX_AGE)
    assert finder.choose({"a": mailed("a-ru", T0 + 5 * HOUR)}) == ()
    assert finder.choose({"a": mailed("a-ru", T0 + 6 * HOUR)}) == ()


def test_a_typo_fix_without_moving_updated_is_no_correction() -> None:
    typo = dataclasses.replace(statement("a", "en", T0), digest="changed", summary="fixed")
    finder = CorrectionFinder([typo], T0 + 6 * HOUR, MAX_AGE)
    assert finder.translation_keys == frozenset()
    assert finder.choose({"a": mailed("a-en", T0)}) == ()


def test_another_translation_corrected_alone_reaches_nobody_who_got_a_different_one() -> None:
    finder = CorrectionFinder(
        [statement("a", "en", T0, T0 + 5 * HOUR), statement("a", "ru", T0)], T0 + 6 * HOUR, MAX_AGE
    )
    assert finder.choose({"a": mailed("a-ru", T0)}) == ()
    assert finder.choose({"a": mailed("a-en", T0)}) == (Correction("a-en", "a", T0 + 5 * HOUR),)


def test_rows_from_before_tracking_find_their_version_among_the_delivery_ids() -> None:
    finder = CorrectionFinder(
        [statement("a", "ru", T0, T0 + 5 * HOUR), statement("b", "ru", T0, T0 + 5 * HOUR)],
        T0 + 6 * HOUR,
        MAX_AGE,
    )
    legacy = Mailed(frozenset({"a-ru", "b-ru", "c-en"}), T0 + HOUR)
    assert finder.choose({"a": legacy}) == (Correction("a-ru", "a", T0 + 5 * HOUR),)


def test_future_too_old_draft_and_disabled_corrections_are_not_mailed() -> None:
    now = T0 + 40 * 24 * HOUR
    future = statement("f", "en", T0, now + HOUR)
    old = statement("o", "en", T0, T0 + HOUR)  # corrected 40 days ago: past max_age
    draft = dataclasses.replace(statement("d", "en", T0, now - HOUR), draft=True)
    recent = statement("r", "en", T0, now - HOUR)
    everything = [future, old, draft, recent]
    history = {k: mailed(f"{k}-en", T0) for k in "fodr"}
    assert CorrectionFinder(everything, now, MAX_AGE).choose(history) == (
        Correction("r-en", "r", now - HOUR),
    )
    assert CorrectionFinder(everything, now, MAX_AGE, enabled=False).choose(history) == ()


def test_newest_correction_first() -> None:
    finder = CorrectionFinder(
        [statement("a", "en", T0, T0 + HOUR), statement("b", "en", T0, T0 + 2 * HOUR)],
        T0 + 3 * HOUR,
        MAX_AGE,
    )
    chosen = finder.choose({"a": mailed("a-en", T0), "b": mailed("b-en", T0)})
    assert [c.translation_key for c in chosen] == ["b", "a"]
