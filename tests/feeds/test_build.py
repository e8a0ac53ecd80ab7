"""Publisher.build on real folders: RFC 5005 archives, reproducibility, incremental builds,
embargoes, the build cache, and golden output for the example site.

Golden files: ``UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/feeds/test_build.py -k golden``
rewrites ``tests/feeds/golden/*.atom`` from the example site; read the diff before committing.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner
from lxml import etree

from statement_feeds.cli import cli
from statement_feeds.config import Config, load_config
from statement_feeds.feeds.build import BuildReport, Publisher

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "site"
GOLDEN = Path(__file__).resolve().parent / "golden"
NS = {"a": "http://www.w3.org/2005/Atom", "fh": "http://purl.org/syndication/history/1.0"}
NOW = datetime(2030, 1, 1, tzinfo=UTC)
FEEDS = "https://example.org/feeds/"

TOML = """\
[site]
title = "Test"
url = "https://example.org/"
feeds_url = "https://example.org/feeds/"
author = "Tester"
default_language = "en"
timezone = "UTC"

[paths]
statements = "statements"
output = "public"
state = "state"

[feeds]
max_entries = {max_entries}
excerpt_words = {excerpt_words}

[digest]
from = "S <s@example.org>"
"""


def md(title: str, date: str, body: str = "Alpha beta gamma delta epsilon zeta eta.") -> str:
    return f"---\ntitle: {title!r}\ndate: {date!r}\n---\n\n{body}\n"


def write_config(root: Path, max_entries: int = 50, excerpt_words: int = 100) -> Config:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "statement-feeds.toml"
    path.write_text(TOML.format(max_entries=max_entries, excerpt_words=excerpt_words), "utf-8")
    (root / "statements").mkdir(exist_ok=True)
    return load_config(path)


def add(root: Path, name: str, text: str) -> None:
    path = root / "statements" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def add_numbered(root: Path, numbers: range) -> None:
    for n in numbers:
        add(root, f"s{n:02d}.md", md(f"Statement {n}", f"2024-01-{n:02d}"))


def build(config: Config, now: datetime = NOW) -> BuildReport:
    return Publisher(config, clock=lambda: now).build()


def snapshot(root: Path) -> dict[str, bytes]:
    """The feed files (the pages beside them: tests/feeds/test_pages.py)."""
    public = root / "public"
    return {
        str(p.relative_to(public)): p.read_bytes()
        for p in sorted((public / "feeds").rglob("*"))
        if p.is_file()
    }


def mtimes(root: Path) -> dict[str, int]:
    public = root / "public"
    return {str(p.relative_to(public)): p.stat().st_mtime_ns for p in public.rglob("*.atom")}


def titles(path: Path) -> list[str]:
    return [e.title for e in feedparser.parse(path.read_bytes()).entries]


def links(path: Path) -> dict[str, str]:
    root = etree.parse(str(path)).getroot()
    return {str(link.get("rel")): str(link.get("href")) for link in root.findall("a:link", NS)}


def local(url: str, root: Path) -> Path:
    assert url.startswith(FEEDS), url
    return root / "public" / "feeds" / url.removeprefix(FEEDS)


# --- RFC 5005 archives -------------------------------------------------------------------


@pytest.fixture
def archived(tmp_path: Path) -> tuple[Path, Config]:
    config = write_config(tmp_path, max_entries=3)
    add_numbered(tmp_path, range(1, 11))
    build(config)
    return tmp_path, config


def test_subscription_feed_has_the_newest_page_and_links_back(
    archived: tuple[Path, Config],
) -> None:
    root, _ = archived
    feed = root / "public" / "feeds" / "en.atom"
    assert titles(feed) == ["Statement 10", "Statement 9", "Statement 8"]
    assert links(feed)["prev-archive"] == FEEDS + "archive/en/3.atom"
    assert etree.parse(str(feed)).find("fh:archive", NS) is None


def test_archive_pages_are_full_pages_counted_from_the_oldest(
    archived: tuple[Path, Config],
) -> None:
    root, _ = archived
    folder = root / "public" / "feeds" / "archive" / "en"
    assert sorted(p.name for p in folder.iterdir()) == ["1.atom", "2.atom", "3.atom"]
    assert titles(folder / "1.atom") == ["Statement 3", "Statement 2", "Statement 1"]
    assert titles(folder / "2.atom") == ["Statement 6", "Statement 5", "Statement 4"]
    assert titles(folder / "3.atom") == ["Statement 9", "Statement 8", "Statement 7"]
    for page in folder.iterdir():
        assert etree.parse(str(page)).find("fh:archive", NS) is not None


def test_archive_links_chain(archived: tuple[Path, Config]) -> None:
    root, _ = archived
    archive = FEEDS + "archive/en/{}.atom"
    for page in (1, 2, 3):
        found = links(root / "public" / "feeds" / "archive" / "en" / f"{page}.atom")
        assert found["self"] == archive.format(page)
        assert found["current"] == FEEDS + "en.atom"
        assert found.get("prev-archive") == (archive.format(page - 1) if page > 1 else None)
        # Present even on the newest page, so the page never changes; the target
        # appears at exactly that URL when it is full (see the next test).
        assert found["next-archive"] == archive.format(page + 1)


def test_every_statement_is_reachable_walking_prev_archive(archived: tuple[Path, Config]) -> None:
    root, _ = archived
    seen: list[str] = []
    path: Path | None = root / "public" / "feeds" / "en.atom"
    while path is not None:
        seen.extend(titles(path))
        previous = links(path).get("prev-archive")
        path = local(previous, root) if previous else None
    assert {f"Statement {n}" for n in range(1, 11)} == set(seen)


def test_new_statements_never_change_full_archive_pages(archived: tuple[Path, Config]) -> None:
    root, config = archived
    before = snapshot(root)
    times = mtimes(root)
    add_numbered(root, range(11, 14))  # 13 statements: a 4th full page appears
    build(config)
    after = snapshot(root)
    for page in ("1", "2", "3"):
        key = f"feeds/archive/en/{page}.atom"
        assert after[key] == before[key], key
        assert mtimes(root)[key] == times[key], key
    assert titles(root / "public/feeds/archive/en/4.atom") == [
        f"Statement {n}" for n in (12, 11, 10)
    ]
    assert local(links(root / "public/feeds/archive/en/3.atom")["next-archive"], root).is_file()
    assert links(root / "public/feeds/en.atom")["prev-archive"] == FEEDS + "archive/en/4.atom"


def test_deleting_statements_removes_stale_archive_pages(archived: tuple[Path, Config]) -> None:
    root, config = archived
    for n in range(3, 11):
        (root / "statements" / f"s{n:02d}.md").unlink()
    report = build(config)
    files = sorted(snapshot(root))
    assert files == ["feeds/en.atom"]
    assert sorted(report.removed) == [f"feeds/archive/en/{n}.atom" for n in (1, 2, 3)]
    assert "prev-archive" not in links(root / "public" / "feeds" / "en.atom")


def test_a_language_without_statements_loses_its_feed(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    add(tmp_path, "a.md", md("A", "2024-01-01"))
    add(tmp_path, "a.ru.md", md("А", "2024-01-01"))
    build(config)
    (tmp_path / "statements" / "a.ru.md").unlink()
    build(config)
    assert sorted(snapshot(tmp_path)) == ["feeds/en.atom"]


# --- reproducibility and incremental builds ---------------------------------------------


def test_two_builds_give_identical_bytes_and_the_second_writes_nothing(
    archived: tuple[Path, Config],
) -> None:
    root, config = archived
    before, times = snapshot(root), mtimes(root)
    report = build(config)
    assert snapshot(root) == before
    assert mtimes(root) == times
    assert [(f.lang, f.written) for f in report.feeds] == [("en", False)]


def test_cli_says_unchanged_on_the_second_build(tmp_path: Path) -> None:
    write_config(tmp_path)
    add(tmp_path, "a.md", md("A", "2024-01-01"))
    args = ["--config", str(tmp_path / "statement-feeds.toml"), "build"]
    env = {"STATEMENT_FEEDS_FAKE_NOW": NOW.isoformat()}
    first = CliRunner().invoke(cli, args, env=env)
    second = CliRunner().invoke(cli, args, env=env)
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert "written" in first.output
    assert "unchanged" in second.output


def test_same_input_in_two_folders_gives_identical_bytes(tmp_path: Path) -> None:
    results = []
    for name in ("one", "two/deeper"):
        root = tmp_path / name
        config = write_config(root, max_entries=3)
        add_numbered(root, range(1, 8))
        add(root, "x.ru.md", md("Икс", "2024-02-01"))
        build(config)
        results.append(snapshot(root))
    assert results[0] == results[1]
    assert len(results[0]) == 4  # en, ru, two archive pages


def test_output_does_not_depend_on_the_clock(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    add(tmp_path, "a.md", md("A", "2024-01-01"))
    build(config, now=NOW)
    first = snapshot(tmp_path)
    shutil.rmtree(tmp_path / "public")
    shutil.rmtree(tmp_path / "state")
    build(config, now=datetime(2099, 12, 31, 23, 59, tzinfo=UTC))
    assert snapshot(tmp_path) == first
    assert b"2099" not in first["feeds/en.atom"]


def test_a_changed_statement_rewrites_only_its_language(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    add(tmp_path, "a.md", md("A", "2024-01-01"))
    add(tmp_path, "a.ru.md", md("А", "2024-01-01"))
    add(tmp_path, "b.ru.md", md("Б", "2024-01-02"))
    build(config)
    before, times = snapshot(tmp_path), mtimes(tmp_path)
    add(tmp_path, "b.ru.md", md("Б исправлено", "2024-01-02"))
    report = build(config)
    assert {f.lang: f.written for f in report.feeds} == {"en": False, "ru": True}
    assert mtimes(tmp_path)["feeds/en.atom"] == times["feeds/en.atom"]
    assert snapshot(tmp_path)["feeds/en.atom"] == before["feeds/en.atom"]
    assert titles(tmp_path / "public/feeds/ru.atom")[0] == "Б исправлено"


def test_a_retitled_translation_updates_the_other_language_link(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    add(tmp_path, "a.md", md("A", "2024-01-01"))
    add(tmp_path, "a.ru.md", md("А", "2024-01-01"))
    build(config)
    add(tmp_path, "a.ru.md", md("А исправлено", "2024-01-01"))
    report = build(config)
    assert {f.lang: f.written for f in report.feeds} == {"en": True, "ru": True}
    assert "А исправлено".encode() in (tmp_path / "public/feeds/en.atom").read_bytes()


def test_a_deleted_output_file_is_written_again(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    add(tmp_path, "a.md", md("A", "2024-01-01"))
    build(config)
    before = snapshot(tmp_path)
    (tmp_path / "public" / "feeds" / "en.atom").unlink()
    assert build(config).written == 1
    assert snapshot(tmp_path) == before


# --- embargo -----------------------------------------------------------------------------


def test_embargoed_statement_appears_when_the_clock_passes_it(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    add(tmp_path, "now.md", md("Now", "2024-01-01"))
    add(tmp_path, "later.md", md("Later", "2024-06-01T12:00:00Z"))
    report = build(config, now=datetime(2024, 6, 1, 11, 59, tzinfo=UTC))
    assert titles(tmp_path / "public/feeds/en.atom") == ["Now"]
    assert report.next_embargo == datetime(2024, 6, 1, 12, tzinfo=UTC)
    assert b"Later" not in (tmp_path / "public/feeds/en.atom").read_bytes()
    report = build(config, now=datetime(2024, 6, 1, 12, tzinfo=UTC))
    assert titles(tmp_path / "public/feeds/en.atom") == ["Later", "Now"]
    assert report.next_embargo is None


def test_an_embargoed_only_language_has_no_feed_yet(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    add(tmp_path, "a.md", md("A", "2024-01-01"))
    add(tmp_path, "a.ru.md", md("А", "2024-06-01"))
    build(config, now=datetime(2024, 3, 1, tzinfo=UTC))
    assert sorted(snapshot(tmp_path)) == ["feeds/en.atom"]
    assert b"hreflang" not in (tmp_path / "public/feeds/en.atom").read_bytes()


# --- the build cache ---------------------------------------------------------------------


def test_corrupt_cache_still_builds_the_same_bytes(archived: tuple[Path, Config]) -> None:
    root, config = archived
    before = snapshot(root)
    cache = root / "state" / "cache.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{cache}{suffix}").unlink(missing_ok=True)
    cache.write_bytes(b"this is not a database\x00" * 400)
    shutil.rmtree(root / "public")
    report = build(config)
    assert not report.problems
    assert snapshot(root) == before


def test_truncated_cache_still_builds(archived: tuple[Path, Config]) -> None:
    root, config = archived
    cache = root / "state" / "cache.sqlite"
    cache.write_bytes(cache.read_bytes()[:100])
    report = build(config)
    assert report.statements == 10
    assert len(snapshot(root)) == 4


def test_deleting_the_cache_rebuilds_identical_bytes(archived: tuple[Path, Config]) -> None:
    root, config = archived
    before, times = snapshot(root), mtimes(root)
    shutil.rmtree(root / "state")
    report = build(config)
    assert snapshot(root) == before
    assert report.written == 0  # rendered again, same bytes: not rewritten
    assert mtimes(root) == times


def test_a_noncharacter_reference_neither_fails_the_build_nor_the_feed(tmp_path: Path) -> None:
    """``&#xFFFE;`` once raised out of the renderer and stopped the whole build."""
    config = write_config(tmp_path)
    add(tmp_path, "odd.md", md("Odd", "2024-01-02", "A &#xFFFE; and a &#xFFFF; here."))
    add(tmp_path, "plain.md", md("Plain", "2024-01-01"))
    report = build(config)
    assert not report.problems
    feed = feedparser.parse((tmp_path / "public" / "feeds" / "en.atom").read_bytes())
    assert not feed.bozo
    assert [e.title for e in feed.entries] == ["Odd", "Plain"]
    assert feed.entries[0].summary == "A \ufffd and a \ufffd here."


def test_changing_excerpt_words_re_derives_summaries(tmp_path: Path) -> None:
    config = write_config(tmp_path, excerpt_words=3)
    add(tmp_path, "a.md", md("A", "2024-01-01"))
    build(config)
    summary = feedparser.parse((tmp_path / "public/feeds/en.atom").read_bytes()).entries[0].summary
    assert summary == "Alpha beta gamma …"
    config = write_config(tmp_path, excerpt_words=5)
    assert build(config).written == 1
    summary = feedparser.parse((tmp_path / "public/feeds/en.atom").read_bytes()).entries[0].summary
    assert summary == "Alpha beta gamma delta epsilon …"


# --- golden output for the example site --------------------------------------------------


@pytest.fixture(scope="module")
def example_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example site built in a temporary copy (the repository's folder stays untouched)."""
    root = tmp_path_factory.mktemp("example")
    # Not what the demo adds (scripts/example-digest.sh writes statements/demo/).
    shutil.copytree(
        EXAMPLE / "statements", root / "statements", ignore=shutil.ignore_patterns("demo")
    )
    shutil.copy(EXAMPLE / "statement-feeds.toml", root / "statement-feeds.toml")
    report = Publisher(load_config(root / "statement-feeds.toml"), clock=lambda: NOW).build()
    assert not report.problems
    return root / "public" / "feeds"


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_golden_example_feeds(example_build: Path, lang: str) -> None:
    produced = (example_build / f"{lang}.atom").read_bytes()
    golden = GOLDEN / f"{lang}.atom"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        golden.write_bytes(produced)
    assert golden.is_file(), (
        "run: UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/feeds/test_build.py -k golden"
    )
    assert produced == golden.read_bytes()


def test_example_site_has_exactly_the_two_feeds(example_build: Path) -> None:
    assert sorted(p.name for p in example_build.rglob("*") if p.is_file()) == ["en.atom", "ru.atom"]


def test_a_missing_statements_folder_keeps_the_published_feeds(tmp_path: Path) -> None:
    config = _site_with_statements_for_missing_folder(tmp_path)
    first = Publisher(config).build()
    feed = config.paths.output / "feeds" / "en.atom"
    assert first.written == 1 and feed.is_file()
    before = feed.read_bytes()
    config.paths.statements.rename(tmp_path / "moved-away")
    report = Publisher(config).build()
    assert [p.message for p in report.problems] == ["statements folder does not exist"]
    assert report.removed == [] and feed.read_bytes() == before


def test_an_unlistable_subfolder_keeps_the_published_feeds(tmp_path: Path) -> None:
    config = _site_with_statements_for_missing_folder(tmp_path)
    sub = config.paths.statements / "2020"
    sub.mkdir()
    (sub / "b.md").write_text("---\ntitle: B\ndate: 2020-01-02\n---\n\nB.\n", encoding="utf-8")
    Publisher(config).build()
    feed = config.paths.output / "feeds" / "en.atom"
    before = feed.read_bytes()
    assert b"<title>B</title>" in before
    sub.chmod(0)
    try:
        if os.access(sub, os.R_OK):
            pytest.skip("running as root: a folder cannot be made unreadable")
        report = Publisher(config).build()
    finally:
        sub.chmod(0o755)
    assert any("cannot list folder" in p.message for p in report.problems)
    assert feed.read_bytes() == before


def _site_with_statements_for_missing_folder(root: Path) -> Config:
    (root / "statements").mkdir()
    (root / "statements" / "a.md").write_text(
        "---\ntitle: A\ndate: 2020-01-01\n---\n\nA.\n", encoding="utf-8"
    )
    path = root / "statement-feeds.toml"
    path.write_text('[site]\ntitle = "T"\nurl = "https://example.org/"\n', encoding="utf-8")
    return load_config(path)


def test_changing_the_site_timezone_re_renders_date_only_entries(tmp_path: Path) -> None:
    config_path = tmp_path / "statement-feeds.toml"
    _site_with_statements_for_missing_folder(tmp_path)  # a.md dated 2020-01-01, UTC
    first = Publisher(load_config(config_path)).build()
    assert first.written == 1
    text = config_path.read_text(encoding="utf-8")
    config_path.write_text(text.replace("[site]\n", '[site]\ntimezone = "Asia/Tokyo"\n'), "utf-8")
    second = Publisher(load_config(config_path)).build()
    assert second.written == 1
    feed = (tmp_path / "public" / "feeds" / "en.atom").read_text(encoding="utf-8")
    assert "2020-01-01T00:00:00+09:00" in feed


def test_site_id_base_keeps_ids_when_the_site_moves(tmp_path: Path) -> None:
    config_path = tmp_path / "statement-feeds.toml"
    _site_with_statements_for_missing_folder(tmp_path)  # url https://example.org/

    def ids(config_text: str) -> list[str]:
        config_path.write_text(config_text, encoding="utf-8")
        Publisher(load_config(config_path)).build()
        parsed = feedparser.parse(tmp_path / "public" / "feeds" / "en.atom")
        return [parsed.feed.id, *(e.id for e in parsed.entries)]

    original = config_path.read_text(encoding="utf-8")
    before = ids(original)
    moved = original.replace("https://example.org/", "https://new.example.net/")
    assert ids(moved) != before  # the default scope is site.url
    pinned = moved.replace("[site]\n", '[site]\nid_base = "https://example.org/"\n')
    assert ids(pinned) == before


def test_content_of_a_file_gone_since_parsing_falls_back_to_the_summary(tmp_path: Path) -> None:
    from dataclasses import replace

    from statement_feeds.domain.statements import SiteDefaults, parse_statement
    from statement_feeds.feeds.build import _content
    from statement_feeds.feeds.parse import SpoolReader

    site = SiteDefaults("https://example.org/", "en", UTC, "A", 100)
    data = (
        b"---\ntitle: T\ndate: 2020-01-01\nsummary: Short <b>summary</b>\n---\n\n[x](rel/) body\n"
    )
    (tmp_path / "a.md").write_bytes(data)
    parsed = parse_statement("a.md", data, site).statement
    assert parsed is not None
    statement = replace(parsed, body="")  # as kept in memory and in the cache
    reader = SpoolReader(str(tmp_path / "no-spool"))
    assert _content(tmp_path, {}, reader, statement) == (
        '<p><a href="https://example.org/en/a/rel/" rel="noopener noreferrer">x</a> body</p>'
    )
    (tmp_path / "a.md").unlink()
    assert _content(tmp_path, {}, reader, statement) == "<p>Short &lt;b&gt;summary&lt;/b&gt;</p>"
    # A spool reference that cannot be read (the spool is gone) falls back the same way.
    refs = {"a.md": ("1.html", 0, 10)}
    assert _content(tmp_path, refs, reader, statement) == "<p>Short &lt;b&gt;summary&lt;/b&gt;</p>"


def test_a_renamed_or_moved_file_keeps_its_id_also_after_a_later_edit(tmp_path: Path) -> None:
    config = _site_with_statements_for_missing_folder(tmp_path)  # statements/a.md
    folder = config.paths.statements

    def ids() -> list[str]:
        Publisher(config).build()
        parsed = feedparser.parse(config.paths.output / "feeds" / "en.atom")
        return sorted(e.id for e in parsed.entries)

    [original] = ids()
    (folder / "2020").mkdir()
    (folder / "a.md").rename(folder / "2020" / "belarus-statement.md")  # renamed and moved
    assert ids() == [original]
    moved = folder / "2020" / "belarus-statement.md"
    moved.write_text(moved.read_text().replace("A.", "A, fixed."))
    assert ids() == [original]  # the identity stays with the path after an edit
    shutil.copy(moved, folder / "copy.md")  # a copy is a new statement: its own id
    both = ids()
    assert len(both) == 2 and original in both


def test_one_publisher_building_again_and_again_follows_every_change(tmp_path: Path) -> None:
    config = _site_with_statements_for_missing_folder(tmp_path)  # as the daemon does
    publisher = Publisher(config)
    folder = config.paths.statements

    def titles() -> list[str]:
        publisher.build()
        parsed = feedparser.parse(config.paths.output / "feeds" / "en.atom")
        return sorted(e.title for e in parsed.entries)

    assert titles() == ["A"]
    (folder / "b.md").write_text("---\ntitle: B\ndate: 2020-01-02\n---\n\nB.\n", "utf-8")
    assert titles() == ["A", "B"]
    (folder / "b.md").write_text("---\ntitle: B2\ndate: 2020-01-02\n---\n\nB.\n", "utf-8")
    assert titles() == ["A", "B2"]
    (folder / "a.md").unlink()
    assert titles() == ["B2"]
    (folder / "a.md").write_text("---\ntitle: A again\ndate: 2020-01-01\n---\n\nA.\n", "utf-8")
    assert titles() == ["A again", "B2"]


def test_a_build_beside_a_long_lived_publisher_leaves_no_stale_file_hints(tmp_path: Path) -> None:
    from statement_feeds.feeds.cache import BuildCache

    config = write_config(tmp_path)
    add_numbered(tmp_path, range(1, 4))
    daemon = Publisher(config, clock=lambda: NOW)
    daemon.build()  # keeps its parse results in memory from now on
    add(tmp_path, "extra.md", md("Extra", "2024-02-01"))
    build(config)  # another process (`statement-feeds build`) records extra.md
    (tmp_path / "statements" / "extra.md").unlink()
    add(tmp_path, "s01.md", md("Statement 1, edited", "2024-01-01"))
    daemon.build()
    with BuildCache(config.paths.state / "cache.sqlite") as cache:
        assert set(cache.file_hints()) == {"s01.md", "s02.md", "s03.md"}
