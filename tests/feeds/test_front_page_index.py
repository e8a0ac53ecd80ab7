"""The build's index of its feeds for the web pages: shape, bounds, and distrust on reading."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from statement_feeds.domain.catalog import build_catalog
from statement_feeds.domain.statements import Statement
from statement_feeds.feeds.atom import FeedSettings, plan_feeds
from statement_feeds.feeds.front_page_index import (
    EMPTY,
    LATEST,
    MAX_SUMMARY,
    MAX_TITLE,
    FrontPage,
    describe,
    dumps,
    loads,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SETTINGS = FeedSettings(
    site_title="S",
    site_url="https://example.org/",
    feeds_url="https://example.org/feeds/",
    author="A",
    language_titles={},
    max_entries=5,
    generator_version="0",
)


def statement(n: int, lang: str, title: str = "", summary: str = "") -> Statement:
    published = T0 + timedelta(days=n)
    return Statement(
        f"s{n}.{lang}.md",
        f"urn:s{n}-{lang}",
        lang,
        f"s{n}",
        title or f"Statement {n}",
        published,
        published,
        f"https://example.org/{lang}/s{n}/",
        summary or f"Summary {n}.\n\nSecond paragraph.",
        "",
        "A",
        False,
        f"d{n}{lang}",
    )


def page_of(statements: list[Statement], max_entries: int = 5) -> FrontPage:
    catalog = build_catalog(statements, [], T0 + timedelta(days=1000))
    return describe(plan_feeds(catalog, replace(SETTINGS, max_entries=max_entries)))


def test_counts_every_statement_and_keeps_the_latest_newest_first() -> None:
    # 23 English statements: a subscription feed of 5 and four archive pages.
    page = page_of([statement(n, "en") for n in range(23)] + [statement(0, "ru")])
    assert page.tags == ["en", "ru"]
    english = page.get("en")
    assert english is not None and english.statements == 23
    assert [e.title for e in english.latest] == [f"Statement {n}" for n in (22, 21, 20, 19, 18)]
    assert english.latest[0].published == (T0 + timedelta(days=22)).isoformat()
    assert english.latest[0].url == "https://example.org/en/s22/"
    assert page.get("de") is None
    assert loads(dumps(page)) == page
    longer = page_of([statement(n, "en") for n in range(23)], max_entries=50).get("en")
    assert longer is not None and len(longer.latest) == LATEST and longer.statements == 23


def test_giant_titles_and_summaries_are_cut() -> None:
    huge = statement(1, "en", title="T" * (MAX_TITLE * 5), summary="word " * MAX_SUMMARY)
    entry = page_of([huge]).languages[0].latest[0]
    assert len(entry.title) == MAX_TITLE and entry.title.endswith("…")
    assert len(entry.summary) <= MAX_SUMMARY and entry.summary.endswith("…")


def test_same_page_same_bytes() -> None:
    page = page_of([statement(1, "ru", title="Заявление")])
    assert dumps(page) == dumps(page_of([statement(1, "ru", title="Заявление")]))
    assert dumps(page).isascii()
    assert loads(dumps(page)).languages[0].latest[0].title == "Заявление"
    assert loads(dumps(EMPTY)) == EMPTY


def _valid() -> dict[str, object]:
    return json.loads(dumps(page_of([statement(1, "en")])))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(format=2),
        lambda d: d.update(languages={"en": 1}),
        lambda d: d["languages"][0].update(lang="../../etc"),
        lambda d: d["languages"][0].update(lang=5),
        lambda d: d["languages"][0].update(statements=-1),
        lambda d: d["languages"][0].update(statements=True),
        lambda d: d["languages"][0].update(latest=None),
        lambda d: d["languages"][0]["latest"][0].update(published="yesterday"),
        lambda d: d["languages"][0]["latest"][0].update(title=["x"]),
        lambda d: d["languages"][0]["latest"][0].pop("url"),
    ],
)
def test_anything_but_what_the_build_writes_is_refused(mutate: object) -> None:
    data = _valid()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ValueError):
        loads(json.dumps(data).encode())


@pytest.mark.parametrize(
    "data", [b"", b"\xff\xfe", b"[1, 2]", b"null", b"[" * 100_000, b'{"format": 1}']
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        loads(data)
