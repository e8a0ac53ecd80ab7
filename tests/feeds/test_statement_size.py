"""``feeds.max_statement_bytes``: a statement file larger than the limit is reported
(path, its size and the limit, how to fix it) and skipped like any bad file; every other
statement is still published. Checked on every path a file is read by: a cold build
(in worker processes too), ``check``, a warm cache, the daemon's rebuild after an edit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import feedparser
import pytest
from test_build import NOW

from statement_feeds.config import load_config
from statement_feeds.errors import ConfigError
from statement_feeds.feeds import files
from statement_feeds.feeds import parse as parsing
from statement_feeds.feeds.build import Publisher

MakeSite = Callable[..., Path]
LIMIT = 4096


def sized(title: str, size: int) -> str:
    """A valid statement file of exactly ``size`` bytes (ASCII)."""
    head = f"---\ntitle: {title}\ndate: 2024-03-01\n---\n\n"
    filler = ("word " * size)[: size - len(head) - 1]
    return head + filler + "\n"


def limited_site(root: Path, make_site: MakeSite, limit: int | None = LIMIT) -> Path:
    config = make_site(root)
    if limit is not None:
        text = config.read_text(encoding="utf-8")
        text = text.replace("[feeds]\n", f"[feeds]\nmax_statement_bytes = {limit}\n")
        config.write_text(text, encoding="utf-8")
    return config


def write(config: Path, name: str, text: str) -> None:
    path = config.parent / "statements" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def titles(config: Path, lang: str = "en") -> list[str]:
    parsed = feedparser.parse((config.parent / "public" / "feeds" / f"{lang}.atom").read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return sorted(entry.title for entry in parsed.entries)


def problems(config: Path) -> list[str]:
    report = Publisher(load_config(config), clock=lambda: NOW).build()
    return [str(problem) for problem in report.problems]


def cli(config: Path, command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEMENT_FEEDS_")}
    return subprocess.run(
        [sys.executable, "-m", "statement_feeds", "--config", str(config), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("value", ["0", "-1", '"2MB"', "true", "1.5"])
def test_a_bad_limit_is_a_configuration_error_naming_the_key(
    tmp_path: Path, make_site: MakeSite, value: str
) -> None:
    config = limited_site(tmp_path, make_site, limit=None)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[feeds]\n", f"[feeds]\nmax_statement_bytes = {value}\n"))
    with pytest.raises(ConfigError, match=r"feeds\.max_statement_bytes: must be a whole number"):
        load_config(config)
    done = cli(config, "build")
    assert done.returncode == 2
    assert "feeds.max_statement_bytes" in done.stderr + done.stdout


def test_build_reports_and_skips_a_statement_over_the_limit(
    tmp_path: Path, make_site: MakeSite
) -> None:
    config = limited_site(tmp_path, make_site)
    write(config, "fits.md", sized("Fits exactly", LIMIT))
    write(config, "big/huge.md", sized("Too big", LIMIT + 1))
    write(config, "small.md", sized("Small", 200))
    done = cli(config, "build")
    assert done.returncode == 1, done.stderr
    output = done.stdout + done.stderr
    assert f"big/huge.md: is {LIMIT + 1} bytes, more than feeds.max_statement_bytes" in output
    assert f"({LIMIT})" in output
    assert "split the statement" in output
    assert "raise feeds.max_statement_bytes" in output
    assert titles(config) == ["Fits exactly", "Small"]
    checked = cli(config, "check")
    assert checked.returncode == 1
    assert "big/huge.md" in checked.stdout + checked.stderr


def test_the_default_limit_is_two_mebibytes(tmp_path: Path, make_site: MakeSite) -> None:
    config = limited_site(tmp_path, make_site, limit=None)
    assert load_config(config).feeds.max_statement_bytes == 2 * 1024 * 1024
    write(config, "a.md", sized("Two MiB", 2 * 1024 * 1024))
    write(config, "b.md", sized("One byte more", 2 * 1024 * 1024 + 1))
    assert [p.split(":")[0] for p in problems(config)] == ["b.md"]
    assert titles(config) == ["Two MiB"]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: never forks")
def test_a_cold_build_in_worker_processes_skips_it_too(
    tmp_path: Path, make_site: MakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parsing, "_PARALLEL_FROM", 2)
    config = limited_site(tmp_path, make_site)
    for n in range(20):
        write(config, f"s{n:02d}.md", sized(f"Statement {n:02d}", 300))
    write(config, "s05.md", sized("Too big", LIMIT + 1))
    found = problems(config)
    assert len(found) == 1 and found[0].startswith("s05.md: is 4097 bytes"), found
    assert titles(config) == [f"Statement {n:02d}" for n in range(20) if n != 5]


def test_a_published_statement_that_grows_past_the_limit_is_dropped(
    tmp_path: Path, make_site: MakeSite
) -> None:
    config = limited_site(tmp_path, make_site)
    write(config, "a.md", sized("Alpha", 300))
    write(config, "b.md", sized("Beta", 300))
    publisher = Publisher(load_config(config), clock=lambda: NOW)  # as the daemon keeps one
    assert publisher.build().problems == []
    write(config, "a.md", sized("Alpha grown", LIMIT + 1))
    fresh = Publisher(load_config(config), clock=lambda: NOW)
    # The warm cache, from memory and from the database; a rescan reading every file.
    for build in (publisher.build, fresh.build, partial(publisher.build, verify=True)):
        report = build()
        assert [p.source for p in report.problems] == ["a.md"]
        assert titles(config) == ["Beta"]
    write(config, "a.md", sized("Alpha again", 300))
    assert publisher.build().problems == []
    assert titles(config) == ["Alpha again", "Beta"]


def test_lowering_the_limit_drops_a_published_statement_not_read_again(
    tmp_path: Path, make_site: MakeSite
) -> None:
    config = limited_site(tmp_path, make_site)
    write(config, "a.md", sized("Alpha", 3000))
    write(config, "b.md", sized("Beta", 300))
    assert problems(config) == []
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(f"= {LIMIT}\n", "= 2048\n"), encoding="utf-8")
    assert [p.split(":")[0] for p in problems(config)] == ["a.md"]
    assert titles(config) == ["Beta"]


def test_a_file_that_grows_while_it_is_read_is_read_no_further_than_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "growing.md"
    path.write_text(sized("Growing", 10 * LIMIT), encoding="utf-8")
    real_fstat, real_read = os.fstat, os.read
    read: list[int] = []

    def stale_fstat(fd: int) -> os.stat_result:
        # As taken just before the file grew: small enough.
        info = real_fstat(fd)
        values = list(info)
        values[6] = 100  # st_size
        return os.stat_result(values, {"st_mtime_ns": info.st_mtime_ns, "st_ctime_ns": 0})

    def counted_read(fd: int, size: int) -> bytes:
        data = real_read(fd, size)
        read.append(len(data))
        return data

    monkeypatch.setattr(files.os, "fstat", stale_fstat)
    monkeypatch.setattr(files.os, "read", counted_read)
    file, found = files.read_source(str(path), "growing.md", max_bytes=LIMIT)
    monkeypatch.undo()
    assert file is None
    assert [(p.source, p.message) for p in found] == [
        ("growing.md", f"grew past feeds.max_statement_bytes ({LIMIT}) while being read")
    ]
    assert sum(read) <= LIMIT + 1
