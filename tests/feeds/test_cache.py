"""BuildCache: only a cache. Damage means a miss, never a failed build."""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import replace
from datetime import UTC
from pathlib import Path

from statement_feeds.domain.statements import SiteDefaults, Statement, parse_statement
from statement_feeds.feeds.cache import BuildCache

SITE = SiteDefaults("https://example.org/", "en", UTC, "Tester", 100)


def statement(source: str = "a.md") -> Statement:
    result = parse_statement(source, b"---\ntitle: A\ndate: 2024-01-01\n---\n\nBody.\n", SITE)
    assert result.statement is not None
    return result.statement


def test_round_trip_of_every_table(tmp_path: Path) -> None:
    path = tmp_path / "state" / "cache.sqlite"
    with BuildCache(path) as cache:
        cache.store_parsed([("k1", statement())], {"k1"})
        cache.store_file_hints({"a.md": ("1:2:3:4", "k1")})
        cache.store_last_build({"at": "2024-01-01T00:00:00+00:00", "written": "1"})
        cache.store_fingerprints({"feeds/en.atom": "f1"})
    with BuildCache(path) as cache:
        assert cache.parsed() == {"k1": replace(statement(), body="")}  # bodies never cached
        assert cache.file_hints() == {"a.md": ("1:2:3:4", "k1")}
        assert cache.last_build() == {"at": "2024-01-01T00:00:00+00:00", "written": "1"}
        assert cache.fingerprints() == {"feeds/en.atom": "f1"}


def test_unused_rows_are_dropped(tmp_path: Path) -> None:
    with BuildCache(tmp_path / "cache.sqlite") as cache:
        cache.store_parsed([("k1", statement()), ("k2", statement("b.md"))], {"k1", "k2"})
        cache.store_parsed([], {"k2"})
        assert list(cache.parsed()) == ["k2"]
        cache.store_file_hints({"a.md": ("s", "k1"), "b.md": ("s", "k2")})
        cache.store_file_hints({"b.md": ("s", "k2")})
        assert cache.file_hints() == {"b.md": ("s", "k2")}
        cache.store_fingerprints({"x": "1"})
        cache.store_fingerprints({"y": "2"})
        assert cache.fingerprints() == {"y": "2"}


def test_garbage_file_is_replaced_by_an_empty_cache(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"garbage" * 1000)
    with BuildCache(path) as cache:
        assert cache.parsed() == {}
        cache.store_fingerprints({"d": "h"})
        assert cache.fingerprints() == {"d": "h"}


def test_an_unreadable_row_is_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    with BuildCache(path) as cache:
        cache.store_parsed([("good", statement())], {"good"})
    db = sqlite3.connect(path)
    db.execute("INSERT INTO parsed SELECT 'bad', source, id, lang, translation_key, title,"
               " 'not a date', published_zone, updated, updated_zone, url, summary, author,"
               " draft, digest FROM parsed")  # fmt: skip
    db.execute("INSERT INTO parsed SELECT 'zone', source, id, lang, translation_key, title,"
               " published, 'No/Such_Zone', updated, updated_zone, url, summary, author,"
               " draft, digest FROM parsed WHERE key = 'good'")  # fmt: skip
    db.commit()
    db.close()
    with BuildCache(path) as cache:
        assert list(cache.parsed()) == ["good"]


def test_statements_come_back_equal_with_their_zones_and_offsets(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    london = ZoneInfo("Europe/London")
    moments = [
        datetime(2024, 10, 27, 1, 30, tzinfo=london),  # the hour that happens twice
        datetime(2024, 10, 27, 1, 30, fold=1, tzinfo=london),
        datetime(2024, 7, 1, 12, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        datetime(1800, 1, 1, tzinfo=london),  # local mean time: -00:01:15
        datetime(2024, 1, 1, tzinfo=UTC),
    ]
    items = [
        (f"k{n}", replace(statement(f"{n}.md"), published=m, updated=m, body=""))
        for n, m in enumerate(moments)
    ]
    with BuildCache(tmp_path / "cache.sqlite") as cache:
        cache.store_parsed(items, {key for key, _ in items})
        back = cache.parsed()
    for key, original in items:
        restored = back[key]
        assert restored == original
        assert restored.published.isoformat() == original.published.isoformat()
        assert restored.published.tzinfo == original.published.tzinfo or isinstance(
            original.published.tzinfo, timezone
        )


def test_a_cache_of_another_format_version_is_discarded(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    with BuildCache(path) as cache:
        cache.store_fingerprints({"x": "1"})
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=1")
    db.close()
    with BuildCache(path) as cache:
        assert cache.fingerprints() == {}


def test_file_hints_written_as_a_difference_end_up_the_same(tmp_path: Path) -> None:
    first = {"a.md": ("1", "ka"), "b.md": ("2", "kb"), "c.md": ("3", "kc")}
    second = {"a.md": ("1", "ka"), "b.md": ("9", "kb2"), "d.md": ("4", "kd")}
    with BuildCache(tmp_path / "cache.sqlite") as cache:
        cache.store_file_hints(first)
        cache.store_file_hints(second, previous=cache.file_hints())
        assert cache.file_hints() == second
        cache.store_file_hints({}, previous=second)
        assert cache.file_hints() == {}


def test_fingerprints_written_as_a_difference_end_up_the_same(tmp_path: Path) -> None:
    first = {"feeds/en.atom": "1", "page:a/index.html": "2", "page:b/index.html": "3"}
    second = {"feeds/en.atom": "1", "page:a/index.html": "9", "page:c/index.html": "4"}
    with BuildCache(tmp_path / "cache.sqlite") as cache:
        cache.store_fingerprints(first)
        cache.store_fingerprints(second, previous=cache.fingerprints())
        assert cache.fingerprints() == second
        cache.store_fingerprints({}, previous=second)
        assert cache.fingerprints() == {}


def test_free_text_is_stored_as_text_and_leaves_the_statements_as_they_were(
    tmp_path: Path,
) -> None:
    # Bound as str, a non-ASCII str would keep a UTF-8 copy of itself from then on
    # (sys.getsizeof counts it): the catalog held 11 MB of them through a cold build.
    original = replace(
        statement(), title="Заявление «один»", summary="Résumé — ünïcode " * 20, author="Ёжик"
    )
    texts = (original.title, original.summary, original.author)
    sizes = [sys.getsizeof(text) for text in texts]
    path = tmp_path / "cache.sqlite"
    with BuildCache(path) as cache:
        cache.store_parsed([("k1", original)], {"k1"})
        assert [sys.getsizeof(text) for text in texts] == sizes
        assert cache.parsed() == {"k1": replace(original, body="")}
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT typeof(title), typeof(summary), typeof(author) FROM parsed")
        assert row.fetchone() == ("text", "text", "text")
