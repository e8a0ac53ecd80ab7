"""parsing: files read and parsed in worker processes, content spooled per build.

Builds on real folders, once in this process and once with worker processes (the
thresholds lowered), must publish identical bytes and report the same problems.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn, SupportsIndex
from zoneinfo import ZoneInfo

import feedparser
import pytest
from test_build import NOW, add, md, snapshot, write_config

from statement_feeds.config import Config
from statement_feeds.domain.markup import render_html
from statement_feeds.domain.problems import Problem
from statement_feeds.domain.statements import SiteDefaults, parse_statement
from statement_feeds.feeds import parse as parsing
from statement_feeds.feeds import parse_stage, workers
from statement_feeds.feeds import render as rendering
from statement_feeds.feeds.atom import Document
from statement_feeds.feeds.build import Publisher
from statement_feeds.feeds.cache import BuildCache
from statement_feeds.feeds.parse import Parsed, Spool, content_html

multicore = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: never forks")

BODY = "Alpha *beta* [a link](rel/) and [another](https://example.net/x).\n\nSecond paragraph."


def site(root: Path, max_entries: int = 4) -> Config:
    config = write_config(root, max_entries=max_entries)
    for n in range(1, 31):
        lang = ("en", "ru", "de")[n % 3]
        add(root, f"y/s{n:02d}.{lang}.md", md(f"Statement {n}", f"2024-02-{n % 28 + 1:02d}", BODY))
    add(root, "bad.md", "---\ntitle: Broken\ndate: 2024-13-45\n---\n\nBody.\n")
    add(root, "draft.md", "---\ntitle: Draft\ndate: 2024-01-01\ndraft: true\n---\n\nBody.\n")
    return config


def build(config: Config, monkeypatch: pytest.MonkeyPatch, *, parallel: bool) -> list[str]:
    threshold = 2 if parallel else 10_000
    monkeypatch.setattr(parsing, "_PARALLEL_FROM", threshold)
    monkeypatch.setattr(rendering, "_RENDER_PARALLEL_FROM", threshold)
    report = Publisher(config, clock=lambda: NOW).build()
    return [f"{p.source}: {p.message}" for p in report.problems]


@multicore
def test_workers_publish_the_same_bytes_and_problems_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, many = tmp_path / "one", tmp_path / "many"
    problems_one = build(site(one), monkeypatch, parallel=False)
    problems_many = build(site(many), monkeypatch, parallel=True)
    assert problems_one == problems_many
    assert any(p.startswith("bad.md:") for p in problems_many)
    assert snapshot(one) == snapshot(many)
    assert len(snapshot(many)) > 3  # feeds and archive pages, not a trivial site


@multicore
def test_forked_render_workers_are_sent_indices_not_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Forked workers inherit the documents; pickling them (50 statements each) was half
    # a second of a cold build. A Document that cannot be pickled proves none is.
    def refuse(self: Document, protocol: int) -> NoReturn:
        raise AssertionError(f"{self.path} was pickled")

    one, many = tmp_path / "one", tmp_path / "many"
    build(site(one, max_entries=2), monkeypatch, parallel=False)
    monkeypatch.setattr(Document, "__reduce_ex__", refuse, raising=False)
    alive = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    assert workers.start_method() == "fork", f"threads alive, workers would be spawned: {alive}"
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setattr(_Marks, "folder", marks)
    monkeypatch.setattr(rendering, "_render_shared", _marked_render)
    build(site(many, max_entries=2), monkeypatch, parallel=True)
    renderers = {int(mark.name.split("-")[0]) for mark in marks.iterdir()}
    assert len(list(marks.iterdir())) >= 16  # every document went by its index...
    assert os.getpid() not in renderers  # ...to forked workers
    assert snapshot(one) == snapshot(many)


@multicore
def test_spawned_workers_publish_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With another thread alive (the daemon), workers are spawned, not forked: they
    # import afresh and get each document pickled.
    one, many = tmp_path / "one", tmp_path / "many"
    build(site(one, max_entries=2), monkeypatch, parallel=False)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    sent: list[str] = []
    reduce = Document.__reduce_ex__

    def counted(self: Document, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        sent.append(self.path)
        return reduce(self, protocol)

    monkeypatch.setattr(Document, "__reduce_ex__", counted, raising=False)
    try:
        assert workers.start_method() == "spawn"
        build(site(many, max_entries=2), monkeypatch, parallel=True)
    finally:
        release.set()
        other.join()
    assert len(sent) >= 16  # the documents went to the spawned workers, pickled
    assert snapshot(one) == snapshot(many)
    assert len(snapshot(many)) >= 16 + 1  # enough documents for a render pool (2 x 8)


class _Marks:
    folder = Path()
    render = rendering._render_shared


def _marked_render(index: int, token: str = "") -> bool:
    """``_render_shared`` leaving a file ``<pid>-<index>`` in ``_Marks.folder``: workers
    are other processes, a file is how they can tell the test. (Module level: the pool
    pickles the function by name; forked workers see the test's settings.)"""
    (_Marks.folder / f"{os.getpid()}-{index}").touch()
    return _Marks.render(index, token)


@multicore
def test_spooled_content_is_what_the_file_renders_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(site(tmp_path), monkeypatch, parallel=True)
    contents = {
        entry.link: entry.content[0].value
        for path in (tmp_path / "public").rglob("*.atom")
        for entry in feedparser.parse(path.read_bytes()).entries
    }
    expected = content_html("https://example.org/en/s03/", BODY)
    assert 'href="https://example.org/en/s03/rel/"' in expected  # resolved, not relative
    assert contents["https://example.org/en/s03/"] == expected
    assert len(contents) == 30  # every published statement, the draft and bad.md not


def test_the_spool_is_removed_after_the_build_and_after_a_failed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = site(tmp_path)
    build(config, monkeypatch, parallel=False)
    assert not list(config.paths.state.glob("spool-*"))

    def fail(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Publisher, "_publish", fail)
    with pytest.raises(RuntimeError):
        Publisher(config, clock=lambda: NOW).build()
    assert not list(config.paths.state.glob("spool-*"))


def test_spools_of_dead_builds_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    gone = tmp_path / f"spool-{dead.stdout.strip()}-abc"
    live = tmp_path / f"spool-{os.getppid()}-def"  # our parent: alive
    for folder in (gone, live):
        folder.mkdir()
        (folder / "1.html").write_text("<p>x</p>")
    spool = Spool(tmp_path)
    try:
        assert not gone.exists()
        assert live.exists()
        assert Path(spool.path).is_dir()
    finally:
        spool.remove()
    assert not Path(spool.path).exists()


def test_content_html_uses_the_given_rendering_or_renders_itself() -> None:
    url = "https://example.org/en/a/"
    assert content_html(url, "*x*") == render_html("*x*")
    assert content_html(url, "ignored", raw="<p>given</p>") == "<p>given</p>"


def test_a_warm_cache_reads_here_and_starts_no_pool_for_known_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import concurrent.futures

    config = site(tmp_path)
    publisher = Publisher(config, clock=lambda: NOW)
    monkeypatch.setattr(parsing, "_PARALLEL_FROM", 2)
    publisher.build()  # cold: workers (or this process, on one core) read and parse

    def no_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pool was started for files the cache knows")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_pool)
    # 31 files: sent to the parser, they would start a pool; the new ones (bad.md, one
    # edit) stay below this.
    monkeypatch.setattr(parsing, "_PARALLEL_FROM", 5)
    for fresh in (publisher, Publisher(config, clock=lambda: NOW)):  # memo, then the cache
        report = fresh.build(verify=True)  # every file read and hashed again
        assert report.statements == 31  # the draft counts, bad.md not
        assert not any(f.written for f in report.feeds)
    add(tmp_path, "y/s01.de.md", md("Statement 1, edited", "2024-03-30", BODY))
    report = Publisher(config, clock=lambda: NOW).build(verify=True)  # one new: parsed here
    assert any(f.written for f in report.feeds)


def test_a_spool_that_cannot_be_written_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, full = tmp_path / "good", tmp_path / "full"
    build(site(good), monkeypatch, parallel=False)
    real_write = os.write
    calls = {"n": 0}

    def flaky_write(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] % 3 == 0:  # every third spool write: disk full
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(parsing.os, "write", flaky_write)
    build(site(full), monkeypatch, parallel=False)
    monkeypatch.setattr(parsing.os, "write", real_write)
    assert calls["n"] >= 30
    assert snapshot(good) == snapshot(full)  # those entries rendered from their files


def test_a_parse_result_pickles_to_an_equal_one() -> None:
    # Results cross from workers pickled; Parsed has its own compact __reduce__.
    import pickle

    problem = Problem("b.md", "bad date", "use YYYY-MM-DD", 3)
    london = ZoneInfo("Europe/London")
    site = SiteDefaults("https://example.org/", "en", london, "IST", 100)
    # No offset written: the site's zone, at the hour that happens twice (fold).
    text = md("A", "2024-10-27T01:30:00", BODY).encode()
    statement = parse_statement("a.en.md", text, site)
    assert statement.statement is not None
    assert statement.statement.published.tzinfo is london
    for parsed in (
        Parsed("a.en.md", "k|d|a.en.md", "1:2:3:4", statement.statement, (), ("1.html", 0, 10)),
        Parsed("b.md", None, "", None, (problem,), None),
    ):
        back = pickle.loads(pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL))
        assert back == parsed
        if back.statement is not None:
            assert back.statement.published.tzinfo is london  # the zone, not an offset
            assert back.statement.published.fold == statement.statement.published.fold


def _cached(root: Path) -> dict[str, Any]:
    with BuildCache(root / "state" / "cache.sqlite") as cache:
        return dict(cache.parsed())


def test_a_cold_build_stores_its_statements_in_batches_and_loses_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cold build adds statements to the cache while parsing goes on (batches of 3
    # here); the cache ends up holding what one batch at the end would have stored.
    whole, batched = tmp_path / "whole", tmp_path / "batched"
    build(site(whole), monkeypatch, parallel=False)
    added: list[int] = []
    add_parsed = BuildCache.add_parsed

    def counted(self: BuildCache, items: list[Any]) -> None:
        added.append(len(items))
        add_parsed(self, items)

    monkeypatch.setattr(BuildCache, "add_parsed", counted)
    monkeypatch.setattr(parse_stage, "_CACHE_BATCH", 3)
    build(site(batched), monkeypatch, parallel=False)
    assert added and all(n == 3 for n in added)  # batches went in during the parse
    assert _cached(batched) == _cached(whole)
    assert len(_cached(batched)) == 31  # every valid statement, the draft included
    assert snapshot(batched) == snapshot(whole)


def test_a_build_that_fails_after_a_batch_was_stored_is_redone_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean, failed = tmp_path / "clean", tmp_path / "failed"
    build(site(clean), monkeypatch, parallel=False)
    monkeypatch.setattr(parse_stage, "_CACHE_BATCH", 3)

    def broken(*args: object, **kwargs: object) -> NoReturn:
        raise OSError("disk full")

    config = site(failed)
    monkeypatch.setattr(parse_stage, "_save_parsed", broken)  # the last store, after the batches
    with pytest.raises(OSError, match="disk full"):
        build(config, monkeypatch, parallel=False)
    assert 0 < len(_cached(failed)) < 31  # the batches stored before it, not the rest
    monkeypatch.undo()
    build(config, monkeypatch, parallel=False)
    assert snapshot(failed) == snapshot(clean)
    assert _cached(failed) == _cached(clean)
