"""Atomic output: temp file + fsync + os.replace; never a half-written or missing file."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from statement_feeds.feeds import output
from statement_feeds.feeds import render as rendering
from statement_feeds.feeds.output import (
    publish_staged,
    remove_stale,
    stage_if_changed,
    write_atomic,
    write_if_changed,
)
from statement_feeds.feeds.render import RenderJob


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_the_bytes_with_mode_0644_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "feeds" / "en.atom"
    old = os.umask(0o077)  # even a strict umask must not hide feeds from the web server
    try:
        assert write_if_changed(target, b"<feed/>")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"<feed/>"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert leftovers(target.parent) == []


def test_unchanged_bytes_are_not_rewritten(tmp_path: Path) -> None:
    target = tmp_path / "en.atom"
    write_if_changed(target, b"one")
    inode, mtime = target.stat().st_ino, target.stat().st_mtime_ns
    assert not write_if_changed(target, b"one")
    assert (target.stat().st_ino, target.stat().st_mtime_ns) == (inode, mtime)
    assert write_if_changed(target, b"two")
    assert target.read_bytes() == b"two"
    assert target.stat().st_ino != inode  # replaced, not written in place


def test_same_size_different_bytes_are_rewritten(tmp_path: Path) -> None:
    target = tmp_path / "en.atom"
    write_if_changed(target, b"aaaa")
    assert write_if_changed(target, b"bbbb")
    assert target.read_bytes() == b"bbbb"


def test_failed_replace_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "en.atom"
    write_atomic(target, b"old")

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(output.os, "replace", refuse)
    with pytest.raises(OSError, match="disk on fire"):
        write_if_changed(target, b"new and longer")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_failed_write_mid_file_keeps_the_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "en.atom"
    write_atomic(target, b"old")

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output.os, "fsync", no_space)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_remove_stale_keeps_listed_files_and_ignores_other_kinds(tmp_path: Path) -> None:
    keep = tmp_path / "en.atom"
    stale = tmp_path / "archive" / "en" / "4.atom"
    other = tmp_path / "notes.txt"
    for path in (keep, stale, other):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    link = tmp_path / "link.atom"
    link.symlink_to(keep)
    removed = remove_stale(tmp_path, {keep})
    assert removed == [stale]
    assert keep.exists() and other.exists() and link.is_symlink()
    assert remove_stale(tmp_path / "missing", set()) == []


# A big batch (a cold build's pages): staged next to each file, then published together.


def staged(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def test_staged_files_appear_only_when_published_with_mode_0644(tmp_path: Path) -> None:
    paths = [tmp_path / lang / f"s{n}" / "index.html" for lang in ("en", "ru") for n in range(3)]
    old = os.umask(0o077)
    try:
        assert all(stage_if_changed(p, p.parent.name.encode(), "t1") for p in paths)
    finally:
        os.umask(old)
    assert not any(p.exists() for p in paths)  # nothing visible before publishing
    assert len(staged(tmp_path)) == len(paths)
    publish_staged(paths, "t1")
    assert [p.read_bytes() for p in paths] == [p.parent.name.encode() for p in paths]
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o644}
    assert staged(tmp_path) == []
    # Unchanged bytes are not staged again (mtime and inode stay).
    before = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in paths]
    assert not any(stage_if_changed(p, p.parent.name.encode(), "t2") for p in paths)
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in paths] == before


def test_failed_publish_keeps_the_old_files_and_removes_the_staged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [tmp_path / f"{n}.html" for n in range(4)]
    for path in paths:
        write_atomic(path, b"old")
        stage_if_changed(path, b"new", "t")

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(output.os, "replace", refuse)
    with pytest.raises(OSError, match="disk on fire"):
        publish_staged(paths, "t")
    assert [p.read_bytes() for p in paths] == [b"old"] * 4
    assert staged(tmp_path) == []


def test_a_failed_filesystem_sync_renames_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bytes must be on disk before any rename can make them visible: a failed sync
    # (I/O error) leaves every file as it was.
    paths = [tmp_path / f"{n}.html" for n in range(3)]
    for path in paths:
        write_atomic(path, b"old")
        stage_if_changed(path, b"new", "t")
    monkeypatch.setattr(output, "_syncfs", lambda: lambda fd: -1)
    with pytest.raises(OSError, match="syncfs"):
        publish_staged(paths, "t")
    assert [p.read_bytes() for p in paths] == [b"old"] * 3
    assert staged(tmp_path) == []


def test_without_syncfs_each_staged_file_and_folder_is_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [tmp_path / "a" / "index.html", tmp_path / "b" / "index.html"]
    for path in paths:
        stage_if_changed(path, b"page", "t")
    synced: list[int] = []
    real_fsync = os.fsync

    def counted(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(output, "_syncfs", lambda: None)
    monkeypatch.setattr(output.os, "fsync", counted)
    publish_staged(paths, "t")
    assert len(synced) == 4  # two files, then their two folders
    assert [p.read_bytes() for p in paths] == [b"page", b"page"]
    assert staged(tmp_path) == []


def test_syncfs_is_found_on_linux() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("syncfs is Linux's")
    syncfs = output._syncfs()
    assert syncfs is not None
    fd = os.open(".", os.O_RDONLY)
    try:
        assert syncfs(fd) == 0
    finally:
        os.close(fd)


class _Pages:
    """A renderer (render.Renderer) of numbered pages that fails on one of them."""

    def __init__(self, failing: int) -> None:
        self.failing = failing

    def render(self, document: int, settings: object, html: object) -> bytes:
        if document == self.failing:
            raise RuntimeError(f"page {document} failed")
        return f"<p>page {document}</p>".encode()


def _jobs(root: Path, renderer: _Pages, count: int) -> list[RenderJob]:
    return [
        RenderJob(renderer, n, None, root, {}, "", root / "out" / f"p{n}" / "index.html")
        for n in range(count)
    ]


@pytest.mark.parametrize("parallel", [False, True])
def test_a_big_batch_is_staged_then_published_and_a_failure_leaves_nothing_staged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool
) -> None:
    count = rendering._STAGE_FROM + 20
    monkeypatch.setattr(rendering, "_RENDER_PARALLEL_FROM", 2 if parallel else 10_000)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="page 70 failed"):
        rendering.render_all(_jobs(tmp_path, _Pages(failing=70), count))
    assert staged(tmp_path) == []  # pages 0-69 were staged before page 70 failed
    assert not list(out.rglob("index.html"))  # and none was published
    assert rendering.render_all(_jobs(tmp_path, _Pages(failing=-1), count)) == [True] * count
    assert len(list(out.rglob("index.html"))) == count and staged(tmp_path) == []
    assert (out / "p70" / "index.html").read_bytes() == b"<p>page 70</p>"
    assert rendering.render_all(_jobs(tmp_path, _Pages(failing=-1), count)) == [False] * count
