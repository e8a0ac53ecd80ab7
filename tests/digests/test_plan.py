"""Planning editions from real CSV files, statements and a real state database."""

from __future__ import annotations

import gc
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from pg_helpers import Backend
from statement_feeds.cli import cli
from statement_feeds.config import Config, load_config
from statement_feeds.digests import subscriber_files
from statement_feeds.digests.plan import plan_edition, preview_edition, sync_subscribers
from statement_feeds.domain.catalog import Catalog, build_catalog
from statement_feeds.domain.problems import Problem
from statement_feeds.domain.statements import Statement
from statement_feeds.domain.subscribers import Subscriber, parse_subscribers
from statement_feeds.feeds.build import Publisher
from statement_feeds.state.api import LedgerCounts
from statement_feeds.state.sqlite import SqliteStore

T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)
DAY = timedelta(days=1)

TOML = """\
[site]
title = "Site"
url = "https://example.org/"
default_language = "en"
timezone = "UTC"

[digest]
max_age = "30d"
"""


def mid(edition: int, email: str) -> str:
    return f"<{edition}.{email.lower()}@example.org>"


def make_config(tmp_path: Path, **csv_files: str) -> Config:
    (tmp_path / "statement-feeds.toml").write_text(TOML, encoding="utf-8")
    folder = tmp_path / "subscribers"
    folder.mkdir(exist_ok=True)
    for name, text in csv_files.items():
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    return load_config(tmp_path / "statement-feeds.toml")


def statement(key: str, lang: str, published: datetime) -> Statement:
    return Statement(
        f"{key}.{lang}.md",
        f"{key}-{lang}",
        lang,
        key,
        key,
        published,
        published,
        f"https://example.org/{lang}/{key}/",
        "",
        "",
        "",
        False,
        key + lang,
    )


def catalog(now: datetime, *statements: Statement) -> Catalog:
    return build_catalog(statements, [], now)


def deliveries(store: SqliteStore, edition: int) -> dict[str, tuple[str, ...]]:
    rows = store.claim(1000, datetime.max.replace(tzinfo=UTC) - DAY)
    store.recover_unknown()  # leave them as they were
    return {d.email: d.statement_ids for d in rows if d.edition_id == edition}


def test_only_statements_after_joining_in_the_preferred_language(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        a="email,languages,frequency\nru@x.org,ru en,daily\nen@x.org,,daily\nwk@x.org,,weekly\n",
    )
    with SqliteStore.open(config.paths.state) as store:
        # First sight: everyone joins at T0, nothing published before counts.
        old = statement("old", "en", T0 - DAY)
        first = plan_edition(config, store, catalog(T0, old), "daily", T0, T0, message_id_for=mid)
        assert first.created and first.edition.deliveries == 0 and first.problems == ()
        published = (
            old,
            statement("a", "en", T0 + DAY),
            statement("a", "ru", T0 + DAY),
            statement("b", "en", T0 + DAY),
        )
        now = T0 + 2 * DAY
        second = plan_edition(
            config, store, catalog(now, *published), "daily", now, now, message_id_for=mid
        )
        assert second.edition.deliveries == 2
        got = deliveries(store, second.edition.id)
        assert got == {"ru@x.org": ("b-en", "a-ru"), "en@x.org": ("b-en", "a-en")}
        assert store.joined_at("wk@x.org") == T0  # weekly subscribers joined too


def test_planning_is_idempotent_per_due_time(tmp_path: Path) -> None:
    config = make_config(tmp_path, a="email\na@x.org\n")
    with SqliteStore.open(config.paths.state) as store:
        sync_subscribers(config, store, T0)
        cat = catalog(T0 + DAY, statement("a", "en", T0 + DAY / 2))
        first = plan_edition(config, store, cat, "daily", T0 + DAY, T0 + DAY, message_id_for=mid)
    with SqliteStore.open(config.paths.state) as store:  # also across restarts
        cat = catalog(T0 + DAY, statement("a", "en", T0 + DAY / 2), statement("b", "en", T0 + DAY))
        again = plan_edition(
            config, store, cat, "daily", T0 + DAY, T0 + 2 * DAY, message_id_for=mid
        )
        assert not again.created
        assert again.edition == first.edition
        assert store.counts() == LedgerCounts(pending=1)


def test_a_statement_is_never_planned_twice_nor_in_another_language(tmp_path: Path) -> None:
    config = make_config(tmp_path, a="email,languages\na@x.org,ru en\n")
    with SqliteStore.open(config.paths.state) as store:
        sync_subscribers(config, store, T0)
        en = statement("a", "en", T0 + DAY)
        one = plan_edition(
            config, store, catalog(T0 + DAY, en), "daily", T0 + DAY, T0 + DAY, message_id_for=mid
        )
        assert deliveries(store, one.edition.id) == {"a@x.org": ("a-en",)}
        ru = statement("a", "ru", T0 + DAY + DAY / 2)  # the translation arrives later
        now = T0 + 2 * DAY
        two = plan_edition(
            config, store, catalog(now, en, ru), "daily", now, now, message_id_for=mid
        )
        assert two.edition.deliveries == 0


def test_blocked_addresses_get_nothing_and_problems_are_returned(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        a="email\na@x.org\nb@x.org\nbroken\n",
        b="email\nA@X.org\n",
    )
    with SqliteStore.open(config.paths.state) as store:
        sync_subscribers(config, store, T0)
        store.unsubscribe("b@x.org", T0)
        now = T0 + DAY
        result = plan_edition(
            config,
            store,
            catalog(now, statement("s", "en", now)),
            "daily",
            now,
            now,
            message_id_for=mid,
        )
        assert list(deliveries(store, result.edition.id)) == ["a@x.org"]
        assert [(p.source, p.line) for p in result.problems] == [("a.csv", 4), ("b.csv", 2)]


def test_a_crash_mid_planning_records_nothing(tmp_path: Path) -> None:
    config = make_config(tmp_path, a="email\n" + "".join(f"u{i}@x.org\n" for i in range(12000)))
    with SqliteStore.open(config.paths.state) as store:
        sync_subscribers(config, store, T0)

        def failing(edition: int, email: str) -> str:
            if email == "u11000@x.org":  # in the third chunk: earlier chunks were written
                raise OSError("disk gone")
            return mid(edition, email)

        now = T0 + DAY
        with pytest.raises(OSError):
            plan_edition(
                config,
                store,
                catalog(now, statement("s", "en", now)),
                "daily",
                now,
                now,
                message_id_for=failing,
            )
    with SqliteStore.open(config.paths.state) as store:
        assert store.edition_for("daily", now) is None
        assert store.counts() == LedgerCounts()
        assert store.assigned_keys("u1@x.org") == set()
        result = plan_edition(
            config,
            store,
            catalog(now, statement("s", "en", now)),
            "daily",
            now,
            now,
            message_id_for=mid,
        )
        assert result.edition.deliveries == 12000


def test_preview_writes_nothing(tmp_path: Path) -> None:
    config = make_config(tmp_path, a="email\na@x.org\nb@x.org\n")
    with SqliteStore.open(config.paths.state) as store:
        store.sync_subscribers(["a@x.org"], T0)
        now = T0 + DAY
        planned, problems = preview_edition(
            config, store, catalog(now, statement("s", "en", now)), "daily", now
        )
        assert [p.email for p in planned] == ["a@x.org"]  # b would join now: nothing new
        assert problems == []
        assert store.joined_at("b@x.org") is None
        assert store.counts() == LedgerCounts()


def test_end_to_end_with_statement_files(tmp_path: Path) -> None:
    config = make_config(tmp_path, a="email,languages\na@x.org,ru\n")
    folder = tmp_path / "statements"
    folder.mkdir()
    for name, date in (
        ("a.ru.md", "2024-06-02"),
        ("draft.ru.md", "2024-06-02"),
        ("later.ru.md", "2024-06-20"),
    ):
        draft = "draft: true\n" if name.startswith("draft") else ""
        (folder / name).write_text(f"---\ntitle: T\ndate: {date}\n{draft}---\nBody\n", "utf-8")
    with SqliteStore.open(config.paths.state) as store:
        sync_subscribers(config, store, T0)
        now = datetime(2024, 6, 3, 7, tzinfo=UTC)
        cat = Publisher(config, clock=lambda: now).load(cache=None)
        result = plan_edition(config, store, cat, "daily", now, now, message_id_for=mid)
        assert deliveries(store, result.edition.id) == {"a@x.org": (cat.published[0].id,)}
        assert [s.translation_key for s in cat.published] == ["a"]


def test_web_subscribers_and_preference_changes_are_planned(tmp_path: Path) -> None:
    from statement_feeds.domain.web_subscribers import Preferences

    config = make_config(tmp_path, a="email,languages\ncsv@x.org,en\n")
    with SqliteStore.open(config.paths.state) as store:
        sync_subscribers(config, store, T0)
        store.add_confirmation("t1", "web@x.org", Preferences(("ru",), "daily"), T0, T0 + DAY)
        assert store.confirm_subscription("t1", T0) is not None  # joins at T0
        store.set_preferences("csv@x.org", Preferences(("ru", "en"), "daily"), T0)
        now = T0 + 2 * DAY
        published = (statement("a", "en", T0 + DAY), statement("a", "ru", T0 + DAY))
        plan = plan_edition(
            config, store, catalog(now, *published), "daily", now, now, message_id_for=mid
        )
        assert deliveries(store, plan.edition.id) == {
            "web@x.org": ("a-ru",),  # signed up on the web only
            "csv@x.org": ("a-ru",),  # the CSV row said en; the preferences page said ru
        }


def test_duplicates_across_files_name_both_places_and_the_first_file_wins(
    tmp_path: Path,
) -> None:
    # b.csv is listed first on purpose: files are read in sorted order.
    config = make_config(
        tmp_path,
        b="email,name,languages\nann@x.org,Second,ru\n",
        a="email,name,languages\nbob@x.org,Bob,en\nAnn@X.org,First,en\nbob@x.org,Again,en\n",
    )
    with SqliteStore.open(config.paths.state) as store:
        problems = sync_subscribers(config, store, T0)
        assert [(p.source, p.line, p.message) for p in problems] == [
            ("a.csv", 4, "duplicate address 'bob@x.org': already listed at a.csv:2"),
            ("b.csv", 2, "duplicate address 'ann@x.org': already listed at a.csv:3"),
        ]
        now = T0 + DAY
        planned, preview_problems = preview_edition(
            config,
            store,
            catalog(now, statement("s", "en", now), statement("s", "ru", now)),
            "daily",
            now,
        )
        assert preview_problems == problems
        assert {(d.email, d.name, d.lang) for d in planned} == {
            ("bob@x.org", "Bob", "en"),
            ("Ann@X.org", "First", "en"),
        }


def test_a_list_in_several_files_is_planned_on_either_backend(
    tmp_path: Path, make_backend: Backend
) -> None:
    # The rows of every file but the first have places past 32 bits (file << 32 | line):
    # PostgreSQL's TEMP table of seen addresses once refused them, and such a site
    # could neither sync nor plan.
    config = make_config(
        tmp_path,
        a="email,name,languages\nann@x.org,Ann,en\n",
        b="email,name,languages\nbob@x.org,Bob,ru\nANN@x.org,Again,en\n",
        c="email,name,languages\ncid@x.org,Cid,en\n",
    )
    with make_backend.open() as store:
        problems = sync_subscribers(config, store, T0)
        assert [(p.source, p.line) for p in problems] == [("b.csv", 3)]
        now = T0 + DAY
        news = catalog(now, statement("s", "en", now), statement("s", "ru", now))
        result = plan_edition(config, store, news, "daily", now, now, message_id_for=mid)
        assert result.edition.deliveries == 3
        rows = store.deliveries(result.edition.id)
        assert sorted((row.email, row.state) for row in rows) == [
            ("ann@x.org", "pending"),
            ("bob@x.org", "pending"),
            ("cid@x.org", "pending"),
        ]


def _winners(config: Config, store: SqliteStore, now: datetime) -> set[tuple[str, str, str]]:
    """(email, name, language) of everyone an edition planned now would mail."""
    news = catalog(now, statement(f"n{now:%j}", "en", now), statement(f"n{now:%j}", "ru", now))
    planned, _ = preview_edition(config, store, news, "daily", now)
    return {(d.email, d.name, d.lang) for d in planned}


def test_the_row_that_was_there_first_keeps_its_address_when_a_new_file_lists_it(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, list="email,name,languages\nalice@x.org,Alice,en\n")
    with SqliteStore.open(config.paths.state) as store:
        assert sync_subscribers(config, store, T0) == []
        # bad.csv sorts first and comes later, with Alice under another name and language.
        (config.paths.subscribers / "bad.csv").write_text(
            "email,name,languages\nbob@x.org,Bob,en\nAlice@X.org,Mallory,ru\n", encoding="utf-8"
        )
        problems = sync_subscribers(config, store, T0 + DAY)
        assert [(p.source, p.line, p.message) for p in problems] == [
            (
                "bad.csv",
                3,
                "duplicate address 'Alice@X.org': list.csv:2 listed it first",
            )
        ]
        now = T0 + 2 * DAY
        assert _winners(config, store, now) == {
            ("alice@x.org", "Alice", "en"),
            ("bob@x.org", "Bob", "en"),
        }
        # `subscribers export` shows the list as planning sees it.
        exported = CliRunner().invoke(
            cli, ["--config", str(config.path), "subscribers", "export"], env={}
        )
        assert "alice@x.org,Alice,en,daily,list.csv,active" in exported.stdout.splitlines()
        # Without list.csv's row, bad.csv's is the only one left: it is used.
        (config.paths.subscribers / "list.csv").write_text("email\n", encoding="utf-8")
        assert sync_subscribers(config, store, now) == []
        assert ("Alice@X.org", "Mallory", "ru") in _winners(config, store, now + DAY)
    # Without the state (check, subscribers list of a new site) sorted order decides.
    (config.paths.subscribers / "list.csv").write_text("email\nalice@x.org\n", encoding="utf-8")
    items = list(subscriber_files.read_subscribers(config.paths.subscribers, "en"))
    assert [(type(i).__name__, i.source) for i in items] == [
        ("Subscriber", "bad.csv"),
        ("Subscriber", "bad.csv"),
        ("Problem", "list.csv"),
    ]


def test_of_three_files_the_one_that_listed_the_address_earliest_keeps_it(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, c="email,name\nann@x.org,C\n")
    folder = config.paths.subscribers
    with SqliteStore.open(config.paths.state) as store:
        sync_subscribers(config, store, T0)
        (folder / "b.csv").write_text("email,name\nann@x.org,B\n", encoding="utf-8")
        sync_subscribers(config, store, T0 + DAY)
        (folder / "a.csv").write_text("email,name\nann@x.org,A\n", encoding="utf-8")
        problems = sync_subscribers(config, store, T0 + 2 * DAY)
        assert [(p.source, p.message.split(": ", 1)[1]) for p in problems] == [
            ("a.csv", "c.csv:2 listed it first"),
            ("b.csv", "c.csv:2 listed it first"),
        ]
        assert _winners(config, store, T0 + 3 * DAY) == {("ann@x.org", "C", "en")}
        # c.csv drops her: of the rows left, b.csv's was there first.
        (folder / "c.csv").write_text("email,name\n", encoding="utf-8")
        problems = sync_subscribers(config, store, T0 + 3 * DAY)
        assert [(p.source, p.message.split(": ", 1)[1]) for p in problems] == [
            ("a.csv", "b.csv:2 listed it first")
        ]
        assert _winners(config, store, T0 + 4 * DAY) == {("ann@x.org", "B", "en")}


def test_a_dry_run_records_no_sightings(tmp_path: Path) -> None:
    config = make_config(tmp_path, list="email,name\nann@x.org,List\n")
    with SqliteStore.open(config.paths.state) as store:
        _winners(config, store, T0)  # a preview: the state saw nothing
        (config.paths.subscribers / "a.csv").write_text("email,name\nann@x.org,A\n")
        sync_subscribers(config, store, T0 + DAY)  # both first seen now: sorted order
        assert _winners(config, store, T0 + 2 * DAY) == {("ann@x.org", "A", "en")}


def test_a_file_that_is_not_utf8_contributes_nothing_even_if_the_bad_byte_is_late(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscriber_files, "BLOCK", 16)  # the bad byte many blocks in
    folder = tmp_path / "subscribers"
    folder.mkdir()
    rows = "".join(f"u{i}@x.org\n" for i in range(20))
    (folder / "a.csv").write_bytes(("email\n" + rows).encode() + b"bad\xff@x.org\n")
    (folder / "b.csv").write_text("email\nok@x.org\n", encoding="utf-8")
    items = list(subscriber_files.read_subscribers(folder, "en"))
    assert [(type(i).__name__, i.source) for i in items] == [
        ("Problem", "a.csv"),
        ("Subscriber", "b.csv"),
    ]


def test_files_are_read_by_the_csv_modules_line_rules_with_physical_line_numbers(
    tmp_path: Path,
) -> None:
    # \r, \n and \r\n end lines; U+2028 and friends are text (str.splitlines would have
    # made "injected@evil.org" a row of its own); a quoted field may span lines.
    text = (
        '\ufeffemail,name,frequency\r\na@x.org,"A, B"\r\rb@x.org,B\u2028injected@evil.org,weekly\n'
        '\nc@x.org,"C\nsecond line"\rd@x.org,D\x85e@evil.org\re@x.org,E,weekly'
    )
    folder = tmp_path / "subscribers"
    folder.mkdir()
    (folder / "l.csv").write_bytes(text.encode())
    items = list(subscriber_files.read_subscribers(folder, "en"))
    assert items == list(parse_subscribers("l.csv", text.removeprefix("\ufeff"), "en"))
    assert [(i.email, i.line) for i in items if isinstance(i, Subscriber)] == [
        ("a@x.org", 2),
        ("e@x.org", 9),
    ]
    assert [(i.line, "line break" in i.message) for i in items if isinstance(i, Problem)] == [
        (4, True),  # b: U+2028 in the name
        (6, True),  # c: a newline in the name, on lines 6-7
        (8, True),  # d: U+0085 in the name
    ]


def test_reading_a_big_list_does_not_grow_python_memory(tmp_path: Path) -> None:
    def peak(count: int) -> int:
        folder = tmp_path / str(count)
        folder.mkdir()
        with (folder / "list.csv").open("w", encoding="utf-8") as out:
            out.write("email,name\n")
            out.writelines(f"user{i}@example{i % 7}.org,User {i}\n" for i in range(count))
        with SqliteStore.open(tmp_path / f"state{count}") as store, store.seen_addresses() as seen:
            tracemalloc.start()
            try:
                for _ in subscriber_files.read_subscribers(folder, "en", seen):
                    pass
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    small, big = peak(6_000), peak(40_000)
    # Keeping the addresses (or the file) in memory would cost several MB more.
    assert big - small < 1_000_000, (small, big)


def test_the_collector_sets_older_objects_aside_while_planning_and_takes_them_back(
    tmp_path: Path,
) -> None:
    # gc.freeze for the plan's duration (plan._collector_set_aside): the objects held
    # before are not walked by the plan's collections, and get back to the collector
    # afterwards, also when the plan fails (else they could never be collected).
    config = make_config(tmp_path, a="email\na@x.org\nb@x.org\n")
    frozen: list[int] = []

    def watching(edition: int, email: str) -> str:
        frozen.append(gc.get_freeze_count())
        if email == "b@x.org" and edition == 2:
            raise OSError("disk gone")
        return mid(edition, email)

    with SqliteStore.open(config.paths.state) as store:
        sync_subscribers(config, store, T0)
        assert gc.get_freeze_count() == 0
        now = T0 + DAY
        cat = catalog(now, statement("s", "en", now))
        plan_edition(config, store, cat, "daily", now, now, message_id_for=watching)
        assert gc.get_freeze_count() == 0
        with pytest.raises(OSError, match="disk gone"):
            later = now + DAY
            cat = catalog(later, statement("s", "en", now), statement("t", "en", later))
            plan_edition(config, store, cat, "daily", later, later, message_id_for=watching)
        assert gc.get_freeze_count() == 0
    assert len(frozen) == 4
    assert all(count > 1000 for count in frozen)  # the test session's modules, at least
