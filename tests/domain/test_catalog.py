"""build_catalog: ids unique, drafts and embargoes held back, newest first, translations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from statement_feeds.domain.catalog import Catalog, Translation, build_catalog, newest_first
from statement_feeds.domain.problems import Problem
from statement_feeds.domain.statements import SiteDefaults, Statement, parse_statement

SITE = SiteDefaults("https://example.org/", "en", UTC, "Tester", 100)
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def statement(source: str, title: str = "T", date: str = "2024-01-01", **extra: str) -> Statement:
    lines = [f"title: {title!r}", f"date: {date!r}", *(f"{k}: {v}" for k, v in extra.items())]
    text = "---\n" + "\n".join(lines) + "\n---\n\nBody.\n"
    result = parse_statement(source, text.encode(), SITE)
    assert result.statement is not None, result.problems
    return result.statement


def catalog(*statements: Statement, now: datetime = NOW) -> Catalog:
    return build_catalog(statements, [], now)


def test_drafts_and_embargoed_statements_are_not_published() -> None:
    found = catalog(
        statement("a.md"),
        statement("draft.md", draft="true"),
        statement("later.md", date="2024-06-01T00:00:01Z"),
        statement("draft-later.md", date="2024-06-01T00:00:02Z", draft="true"),
    )
    assert [s.source for s in found.published] == ["a.md"]
    assert len(found.statements) == 4
    assert found.next_embargo() == NOW + timedelta(seconds=1)


def test_the_embargo_lifts_exactly_at_its_time() -> None:
    later = statement("later.md", date="2024-06-01T00:00:00Z")
    assert [s.source for s in catalog(later, now=NOW).published] == ["later.md"]
    assert catalog(later, now=NOW - timedelta(microseconds=1)).published == []
    assert catalog(later, now=NOW).next_embargo() is None


def test_duplicate_id_keeps_the_file_whose_path_sorts_first_in_any_order() -> None:
    first = statement("a/x.md", id="urn:x:1")
    second = statement("b/y.md", id="urn:x:1", title="Other")
    for order in ((first, second), (second, first)):
        found = catalog(*order)
        assert [s.source for s in found.statements] == ["a/x.md"]
        assert len(found.problems) == 1
        problem = found.problems[0]
        assert problem.source == "b/y.md"
        assert "a/x.md" in problem.message
        assert problem.hint


def test_two_files_claiming_one_translation_language_are_reported() -> None:
    found = catalog(statement("2020/x.ru.md"), statement("2021/x.ru.md"))
    assert [s.source for s in found.statements] == ["2020/x.ru.md"]
    assert [p.source for p in found.problems] == ["2021/x.ru.md"]


def test_by_language_is_sorted_and_newest_first_with_a_stable_tie_break() -> None:
    same_day = [statement(f"{n}.md", date="2024-01-02") for n in "cab"]
    found = catalog(statement("old.md"), *same_day, statement("z.ru.md"))
    languages = found.by_language()
    assert list(languages) == ["en", "ru"]
    en = languages["en"]
    assert en[-1].source == "old.md"
    tied = [s.id for s in en[:3]]
    assert tied == sorted(tied, reverse=True)
    assert [s.id for s in newest_first(reversed(en))] == [s.id for s in en]


def test_translations_group_published_versions_in_language_order() -> None:
    found = catalog(
        statement("x.ru.md", title="Икс"),
        statement("x.en.md", title="Ex"),
        statement("x.de.md", title="Draft", draft="true"),
        statement("x.fr.md", title="Later", date="2030-01-01"),
        statement("y.md"),
    )
    assert found.translations()["x"] == [
        Translation("en", "https://example.org/en/x/", "Ex"),
        Translation("ru", "https://example.org/ru/x/", "Икс"),
    ]
    assert [t.lang for t in found.translations()["y"]] == ["en"]


def test_input_problems_are_kept_and_sorted() -> None:
    found = build_catalog([], [Problem("b.md", "bad", line=3), Problem("a.md", "bad")], NOW)
    assert [(p.source, p.line) for p in found.problems] == [("a.md", None), ("b.md", 3)]


def test_by_language_is_newest_first_and_the_memo_changes_nothing() -> None:
    statements = [
        statement(f"s{n}.{lang}.md", date=f"2024-0{1 + n % 5}-0{1 + n % 3}")
        for n in range(12)
        for lang in ("en", "ru")
    ]
    first = catalog(*statements)
    again = catalog(*statements)
    grouped = first.by_language()  # computes the memo of what is published
    assert grouped == {
        lang: newest_first(s for s in statements if s.lang == lang) for lang in ("en", "ru")
    }
    assert first == again and hash(first) == hash(again)  # the memo is no field
    assert first.published == again.published == list(first.statements)
    # Made once: feeds and pages plan from the same mapping of each (read, never changed).
    assert first.by_language() is grouped
    assert first.translations() is first.translations()
    assert first.translations() == again.translations() and first == again
