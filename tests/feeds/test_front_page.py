"""The front page index on disk: written only on change, read only when it is ours."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from event_log import capture_events
from statement_feeds.feeds import front_page
from statement_feeds.feeds.front_page import INDEX_NAME, FrontPageFile, write_front_page
from statement_feeds.feeds.front_page_index import FrontEntry, FrontLanguage, FrontPage, dumps

PAGE = FrontPage(
    (FrontLanguage("en", 1, (FrontEntry("T", "2024-01-01T00:00:00+00:00", "S", "https://x/"),)),)
)


def test_written_when_changed_and_read_again_only_when_replaced(tmp_path: Path) -> None:
    index = FrontPageFile(tmp_path)
    assert index.current() is None and index.problem == ""  # no build yet
    assert write_front_page(tmp_path, PAGE)
    assert not write_front_page(tmp_path, PAGE)  # same bytes: not rewritten
    first = index.current()
    assert first == PAGE
    assert index.current() is first  # unchanged file: not read again
    assert write_front_page(tmp_path, FrontPage(()))
    assert index.current() == FrontPage(())


@pytest.mark.parametrize("kind", ["fifo", "symlink", "garbage", "folder", "huge"])
def test_what_the_build_did_not_write_is_not_used(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / INDEX_NAME
    if kind == "fifo":
        os.mkfifo(path)  # opening it would block: it must not be opened
    elif kind == "symlink":
        (tmp_path / "elsewhere.json").write_bytes(dumps(PAGE))
        path.symlink_to(tmp_path / "elsewhere.json")
    elif kind == "garbage":
        path.write_bytes(b'{"format": 1, "languages": [{"lang": "en"')
    elif kind == "folder":
        path.mkdir()
    else:
        monkeypatch.setattr(front_page, "MAX_BYTES", 100)
        path.write_bytes(dumps(PAGE))
    index = FrontPageFile(tmp_path)
    with capture_events() as events:
        assert index.current() is None
        assert index.current() is None
    assert index.problem
    assert events.text().count("web.front_page_unusable") == 1  # once per version of the file
