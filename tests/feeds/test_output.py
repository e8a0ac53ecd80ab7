"""Atomic output: temp file + fsync + os.replace; never a half-written or missing file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from statement_feeds.feeds import output
from statement_feeds.feeds.output import remove_stale, write_atomic, write_if_changed


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
