"""Selection rules: new = after joining, within max_age, never a second translation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from statement_feeds.domain.catalog import build_catalog
from statement_feeds.domain.selection import Selector
from statement_feeds.domain.statements import Statement

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
MAX_AGE = timedelta(days=30)


def statement(key: str, lang: str, days_ago: float, *, draft: bool = False) -> Statement:
    published = NOW - timedelta(days=days_ago)
    return Statement(
        source=f"{key}.{lang}.md",
        id=f"{key}-{lang}",
        lang=lang,
        translation_key=key,
        title=key,
        published=published,
        updated=published,
        url=f"https://example.org/{lang}/{key}/",
        summary="",
        body="",
        author="",
        draft=draft,
        digest=f"{key}{lang}",
    )


LONG_AGO = NOW - timedelta(days=365)


def ids(
    selector: Selector,
    languages: tuple[str, ...],
    joined: datetime = LONG_AGO,
    assigned: frozenset[str] = frozenset(),
) -> list[str]:
    return [c.statement_id for c in selector.choose(languages, joined, assigned)]


def test_only_statements_published_after_joining_are_new() -> None:
    selector = Selector([statement("a", "en", 5), statement("b", "en", 1)], NOW, MAX_AGE)
    assert ids(selector, ("en",), joined=NOW - timedelta(days=3)) == ["b-en"]
    assert ids(selector, ("en",), joined=NOW - timedelta(days=1)) == []  # same instant: not after
    assert ids(selector, ("en",), joined=NOW) == []


def test_older_than_max_age_is_never_chosen() -> None:
    selector = Selector([statement("old", "en", 31), statement("new", "en", 29)], NOW, MAX_AGE)
    assert ids(selector, ("en",)) == ["new-en"]


def test_newest_first_in_the_most_preferred_language_that_has_it() -> None:
    published = [
        statement("a", "en", 3),
        statement("a", "ru", 2),
        statement("b", "en", 1),
        statement("c", "de", 1),
    ]
    selector = Selector(published, NOW, MAX_AGE)
    assert ids(selector, ("ru", "en")) == ["b-en", "a-ru"]  # b falls back to English
    assert ids(selector, ("en", "ru")) == ["b-en", "a-en"]
    assert ids(selector, ("ru",)) == ["a-ru"]  # no Russian b, no fallback: skipped
    assert ids(selector, ("fr",)) == []


def test_a_translation_of_something_already_assigned_is_never_chosen() -> None:
    selector = Selector([statement("a", "en", 3), statement("a", "ru", 1)], NOW, MAX_AGE)
    assert ids(selector, ("ru", "en"), assigned=frozenset({"a"})) == []
    assert ids(selector, ("en",), assigned=frozenset({"other"})) == ["a-en"]


def test_drafts_and_embargoed_statements_are_never_chosen_via_the_catalog() -> None:
    catalog = build_catalog(
        [
            statement("draft", "en", 1, draft=True),
            statement("future", "en", -1),
            statement("live", "en", 1),
        ],
        [],
        NOW,
    )
    selector = Selector(catalog.published, NOW, MAX_AGE)
    assert ids(selector, ("en",)) == ["live-en"]
    # Even if a caller passes everything, the selector holds them back too.
    assert ids(Selector(catalog.statements, NOW, MAX_AGE), ("en",)) == ["live-en"]


def test_candidates_are_computed_once_per_preference_list() -> None:
    selector = Selector([statement("a", "en", 1)], NOW, MAX_AGE)
    assert selector.candidates(("en",)) is selector.candidates(("en",))
    assert selector.translation_keys == {"a"}


def test_newest_ignores_max_age_and_takes_the_preferred_version() -> None:
    # Explains an empty edition: "too old" needs the newest date whatever its age.
    published = [statement("a", "en", 40), statement("a", "ru", 35), statement("b", "fr", 1)]
    selector = Selector(published, NOW, MAX_AGE)
    assert selector.newest(("en", "ru")) == NOW - timedelta(days=40)  # en decides for "a"
    assert selector.newest(("ru",)) == NOW - timedelta(days=35)
    assert selector.newest(("de",)) is None
    assert selector.candidates(("en", "ru")) == ()
