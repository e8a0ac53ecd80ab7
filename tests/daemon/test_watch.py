"""The watcher's filtering, grouping of editor saves, and the wait for a settled file."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from statement_feeds.daemon.watch import (
    Change,
    WatchRoots,
    is_relevant,
    wait_stable,
    watch_changes,
)


def roots(tmp: Path) -> WatchRoots:
    for name in ("statements", "subscribers", "templates"):
        (tmp / name).mkdir(exist_ok=True)
    config = tmp / "statement-feeds.toml"
    config.touch()
    return WatchRoots(tmp / "statements", tmp / "subscribers", tmp / "templates", config)


@pytest.mark.parametrize(
    ("relative", "relevant"),
    [
        ("statements/a.md", True),
        ("statements/2020", True),  # a folder: renaming it moves statements
        ("statements/2020/a.ru.md", True),
        ("statements/.a.md.swp", False),
        ("statements/a.md~", False),
        ("statements/.#a.md", False),
        ("statements/a.md.tmp", False),
        ("statements/notes.txt", False),
        ("subscribers/list.csv", True),
        ("templates/digest.html", True),
        ("templates/.digest.html.swp", False),
        ("statement-feeds.toml", True),
    ],
)
def test_relevance(tmp_path: Path, relative: str, relevant: bool) -> None:
    assert is_relevant(roots(tmp_path), tmp_path / relative) is relevant


def test_kind_of(tmp_path: Path) -> None:
    r = roots(tmp_path)
    assert r.kind_of(tmp_path / "statements" / "x" / "a.md") == "statements"
    assert r.kind_of(tmp_path / "templates" / "digest.txt") == "templates"
    assert r.kind_of(tmp_path / "statement-feeds.toml") == "config"
    assert r.kind_of(tmp_path / "public" / "feeds" / "en.atom") is None


async def _first_batch(r: WatchRoots, action: object) -> list[Change]:
    stop = asyncio.Event()
    batches: list[list[Change]] = []

    async def collect() -> None:
        async for batch in watch_changes(r, stop, step_ms=50, debounce_ms=400):
            batches.append(batch)
            stop.set()

    task = asyncio.create_task(collect())
    await asyncio.sleep(0.3)  # let inotify arm its watches
    assert callable(action)
    action()
    await asyncio.wait_for(task, 10)
    return batches[0]


def test_editor_save_by_temp_file_and_rename_is_one_batch(tmp_path: Path) -> None:
    r = roots(tmp_path)
    target = r.statements / "a.md"
    target.write_text("old")

    def save() -> None:
        temp = r.statements / ".a.md.swp"
        temp.write_text("---\ntitle: T\n---\n")
        os.chmod(temp, 0o644)
        os.replace(temp, target)

    batch = asyncio.run(_first_batch(r, save))
    assert {c.path for c in batch} == {target}
    assert {c.kind for c in batch} == {"statements"}


def test_config_change_is_reported_as_config(tmp_path: Path) -> None:
    r = roots(tmp_path)
    batch = asyncio.run(_first_batch(r, lambda: r.config.write_text("[site]\n")))
    assert [c.kind for c in batch] == ["config"]


def test_wait_stable_waits_for_a_slow_writer(tmp_path: Path) -> None:
    path = tmp_path / "slow.md"
    path.write_text("")

    async def scenario() -> tuple[bool, float]:
        async def writer() -> None:
            with path.open("a") as handle:
                for _ in range(6):
                    handle.write("more words\n")
                    handle.flush()
                    await asyncio.sleep(0.03)

        task = asyncio.create_task(writer())
        loop = asyncio.get_running_loop()
        start = loop.time()
        stable = await wait_stable([path], interval=0.06, limit=5)
        await task
        return stable, loop.time() - start

    stable, waited = asyncio.run(scenario())
    assert stable
    assert waited >= 0.15  # not before the writer's last write
    assert path.read_text().count("more words") == 6


def test_wait_stable_gives_up_after_the_limit_and_ignores_missing(tmp_path: Path) -> None:
    assert asyncio.run(wait_stable([tmp_path / "gone.md"], interval=0.01))
    assert asyncio.run(wait_stable([]))
