"""Watching the site's input folders (watchfiles / inotify) — a hint, never the truth.

The daemon rebuilds from the folder's *content*, so the watcher only has to say "something
under statements/ changed, soon". It groups the several events an editor's save produces
(temp file, write, rename, attribute change) into one batch, drops names nobody publishes
(hidden files, editor droppings) and tells which input each change belongs to.

Half-written files: a batch is only handed on once the folder has been quiet for
``step`` ms (watchfiles' grouping), and :func:`wait_stable` then waits until the changed
files' size and mtime stop moving across a short interval. Atomic writers (temp file +
rename, which editors and ``write_atomic`` use) are never seen half-way; a slow in-place
writer is waited for; one that pauses longer than the interval may be read half-way, and
the event its next write causes rebuilds again (the feed is then right again, and the
half file's problem report is replaced by the next result).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from watchfiles import Change as WatchChange
from watchfiles import awatch

from ..feeds.files import is_ignored_name

__all__ = ["Change", "WatchRoots", "is_relevant", "wait_stable", "watch_changes"]


@dataclass(frozen=True, slots=True)
class WatchRoots:
    statements: Path
    subscribers: Path
    templates: Path
    config: Path  # a file: watched by itself, re-armed after every change to it

    def existing(self) -> list[Path]:
        paths = [self.statements, self.subscribers, self.templates, self.config]
        return [p for p in dict.fromkeys(paths) if p.exists()]

    def kind_of(self, path: Path) -> str | None:
        """Which input ``path`` belongs to: statements, subscribers, templates or config."""
        if path == self.config:
            return "config"
        for kind in ("statements", "subscribers", "templates"):
            root: Path = getattr(self, kind)
            if path == root or root in path.parents:
                return kind
        return None


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "statements" | "subscribers" | "templates" | "config"
    path: Path
    action: str  # "added" | "modified" | "deleted"


def is_relevant(roots: WatchRoots, path: Path) -> bool:
    """Hidden names and editor droppings never matter; under statements/ only ``.md``
    files and folders do (a folder's rename moves statements). Vim's ``4913`` probe
    passes, and costs one no-op rebuild."""
    name = path.name
    if path == roots.config:
        return True
    if name.startswith((".", "#")) or name.endswith(("~", ".swp", ".swo", ".swx", ".tmp")):
        return False
    if roots.kind_of(path) == "statements":
        return "." not in name or not is_ignored_name(name)
    return True


async def watch_changes(
    roots: WatchRoots, stop: asyncio.Event, *, step_ms: int = 50, debounce_ms: int = 400
) -> AsyncIterator[list[Change]]:
    """Batches of relevant changes until ``stop`` is set.

    ``step_ms``: quiet time that closes a batch; ``debounce_ms``: a batch is yielded at
    the latest after this long even while events keep coming (a long copy is still
    published in parts, each complete file at a time).
    """

    def keep(change: WatchChange, path: str) -> bool:
        return is_relevant(roots, Path(path))

    async for raw in awatch(
        *roots.existing(),
        watch_filter=keep,
        step=step_ms,
        debounce=debounce_ms,
        stop_event=stop,
        ignore_permission_denied=True,
    ):
        batch = [
            Change(kind, Path(path), change.name)
            for change, path in sorted(raw, key=lambda c: c[1])
            if (kind := roots.kind_of(Path(path))) is not None
        ]
        if batch:
            yield batch


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None  # gone: nothing to wait for
    return info.st_size, info.st_mtime_ns


async def wait_stable(paths: Iterable[Path], *, interval: float = 0.05, limit: float = 2.0) -> bool:
    """Wait until none of ``paths`` changes size or mtime across ``interval`` seconds.

    Returns False if they were still changing after ``limit`` seconds (the caller builds
    anyway: the next event will trigger another build).
    """
    files = [p for p in paths if p.suffix]  # folders' own mtimes are not a writer's
    if not files:
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    before = [_signature(p) for p in files]
    while True:
        await asyncio.sleep(interval)
        after = [_signature(p) for p in files]
        if after == before:
            return True
        if loop.time() >= deadline:
            return False
        before = after
