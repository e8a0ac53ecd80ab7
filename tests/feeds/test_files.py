"""The statements folder reader: which files count, which are reported, none blocks."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from statement_feeds.domain.problems import Problem
from statement_feeds.feeds.files import (
    SourceFile,
    Unchanged,
    is_ignored_name,
    iter_sources,
    read_sources,
)

TIMEOUT = 20.0  # seconds; read_sources must never get near it


def read(root: Path) -> tuple[list[SourceFile], list[Problem]]:
    """read_sources in a daemon thread, so that a blocking open fails the test, not hangs it."""
    outcome: list[tuple[list[SourceFile], list[Problem]]] = []
    worker = threading.Thread(target=lambda: outcome.append(read_sources(root)), daemon=True)
    worker.start()
    worker.join(TIMEOUT)
    assert not worker.is_alive(), "read_sources blocked"
    return outcome[0]


def sources(files: list[SourceFile]) -> list[str]:
    return [f.source for f in files]


def write(root: Path, name: str, data: bytes = b"---\ntitle: T\ndate: 2020-01-01\n---\n") -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_reads_markdown_files_recursively_sorted_with_relative_paths(tmp_path: Path) -> None:
    write(tmp_path, "b.en.md", b"B")
    write(tmp_path, "2020/08/belarus.ru.md", b"R")
    write(tmp_path, "a.md", b"A")
    files, problems = read(tmp_path)
    assert sources(files) == ["2020/08/belarus.ru.md", "a.md", "b.en.md"]
    assert [f.data for f in files] == [b"R", b"A", b"B"]
    assert problems == []


def test_bytes_are_returned_exactly(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf---\r\ntitle: T\r\n---\r\n" + b"x" * 200_000 + b"\xff"
    write(tmp_path, "big.md", data)
    files, _ = read(tmp_path)
    assert [(f.source, f.data) for f in files] == [("big.md", data)]
    assert files[0].signature.startswith(f"{len(data)}:")


def test_a_known_signature_is_not_read_again(tmp_path: Path) -> None:
    write(tmp_path, "a.md", b"one")
    write(tmp_path, "b.md", b"two")
    problems: list[Problem] = []
    first = {f.source: f for f in iter_sources(tmp_path, problems)}
    signatures = {source: f.signature for source, f in first.items()}
    again = list(iter_sources(tmp_path, problems, known=lambda s, sig: signatures[s] == sig))
    assert all(isinstance(item, Unchanged) for item in again)
    os.utime(tmp_path / "a.md")  # touched: ctime moves, so it is read again
    (tmp_path / "a.md").write_bytes(b"uno")
    items = {
        i.source: i
        for i in iter_sources(tmp_path, problems, known=lambda s, sig: signatures[s] == sig)
    }
    assert isinstance(items["a.md"], SourceFile) and items["a.md"].data == b"uno"
    assert isinstance(items["b.md"], Unchanged)


@pytest.mark.parametrize(
    "name",
    [
        ".hidden.md",
        ".#belarus.en.md",  # emacs lock file
        "#belarus.en.md#",  # emacs auto-save
        "belarus.en.md~",
        ".belarus.en.md.swp",
        "belarus.en.md.swp",
        "belarus.en.md.tmp",
        "notes.txt",
        "README",
        "image.png",
        ".hidden/inside.md",
        "sub/.git/HEAD.md",
    ],
)
def test_hidden_files_and_editor_droppings_are_ignored_silently(tmp_path: Path, name: str) -> None:
    write(tmp_path, "good.md")
    write(tmp_path, name)
    files, problems = read(tmp_path)
    assert sources(files) == ["good.md"]
    assert problems == []


@pytest.mark.parametrize(
    ("name", "ignored"),
    [
        (".#x", True),
        ("x~", True),
        ("x.swp", True),
        ("x.tmp", True),
        ("x.md.tmp", True),
        (".x.md", True),
        ("x.md", False),
        ("belarus.pt-BR.md", False),
    ],
)
def test_is_ignored_name(name: str, ignored: bool) -> None:
    assert is_ignored_name(name) is ignored


def test_symlinked_file_is_reported_and_not_followed(tmp_path: Path) -> None:
    outside = write(tmp_path / "elsewhere", "secret.md", b"outside the folder")
    root = tmp_path / "statements"
    write(root, "good.md")
    (root / "linked.md").symlink_to(outside)
    files, problems = read(root)
    assert sources(files) == ["good.md"]
    (found,) = problems
    assert found.source == "linked.md"
    assert "symbolic link" in found.message
    assert found.hint


def test_dangling_symlink_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "good.md")
    (tmp_path / "gone.md").symlink_to(tmp_path / "nowhere.md")
    files, problems = read(tmp_path)
    assert sources(files) == ["good.md"]
    assert [(p.source, "symbolic link" in p.message) for p in problems] == [("gone.md", True)]


def test_symlinked_folder_is_reported_not_silently_dropped(tmp_path: Path) -> None:
    write(tmp_path / "archive", "old.md")
    root = tmp_path / "statements"
    write(root, "good.md")
    (root / "2019").symlink_to(tmp_path / "archive", target_is_directory=True)
    files, problems = read(root)
    assert sources(files) == ["good.md"]
    assert [p.source for p in problems] == ["2019"]
    assert "symbolic link" in problems[0].message


def test_hidden_symlink_is_ignored_silently(tmp_path: Path) -> None:
    # emacs lock files (.#name.md) are dangling symlinks: they must stay silent
    write(tmp_path, "good.md")
    (tmp_path / ".#good.md").symlink_to("user@host.1234:1600000000")
    files, problems = read(tmp_path)
    assert (sources(files), problems) == (["good.md"], [])


def test_fifo_is_reported_and_does_not_block(tmp_path: Path) -> None:
    write(tmp_path, "good.md")
    os.mkfifo(tmp_path / "pipe.md")
    os.mkfifo(tmp_path / "sub-pipe.md")
    files, problems = read(tmp_path)
    assert sources(files) == ["good.md"]
    assert [p.source for p in problems] == ["pipe.md", "sub-pipe.md"]
    assert all("FIFO" in p.message and "remove it" in p.hint for p in problems)


def test_socket_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "good.md")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(tmp_path / "s.md"))
        files, problems = read(tmp_path)
    finally:
        server.close()
    assert sources(files) == ["good.md"]
    (found,) = problems
    assert found.source == "s.md"
    assert "not a regular file (a socket)" in found.message


def test_device_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "good.md")
    try:
        os.mknod(tmp_path / "null.md", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot create a device file here: {exc}")
    files, problems = read(tmp_path)
    assert sources(files) == ["good.md"]
    assert [(p.source, "a device" in p.message) for p in problems] == [("null.md", True)]


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can read any file")
    write(tmp_path, "good.md")
    locked = write(tmp_path, "locked.md")
    locked.chmod(0)
    files, problems = read(tmp_path)
    assert sources(files) == ["good.md"]
    assert [p.source for p in problems] == ["locked.md"]
    assert "cannot open" in problems[0].message


def test_missing_folder_is_a_problem_with_a_hint(tmp_path: Path) -> None:
    files, problems = read(tmp_path / "missing")
    assert files == []
    (found,) = problems
    assert found.source.endswith("missing")
    assert "does not exist" in found.message
    assert "paths.statements" in found.hint
