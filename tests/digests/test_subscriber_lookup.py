"""One subscriber's row from the CSV files, as planning would use it (preferences page)."""

from __future__ import annotations

from pathlib import Path

from statement_feeds.digests.subscriber_files import BLOCK, find_subscriber, read_subscribers
from statement_feeds.domain.subscribers import Subscriber

HEADER = "email,name,languages,frequency\n"


def write(folder: Path, name: str, rows: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(HEADER + rows, encoding="utf-8")


def planned_row(folder: Path, address: str) -> Subscriber | None:
    """What read_subscribers (planning's reader) yields for the address."""
    found = [
        item
        for item in read_subscribers(folder, "en")
        if isinstance(item, Subscriber) and item.email.lower() == address.lower()
    ]
    return found[0] if found else None


def first(folder: Path, address: str) -> Subscriber | None:
    """With no state (no sightings), planning keeps the first file's row."""
    rows = find_subscriber(folder, "en", address)
    return rows[0] if rows else None


def test_finds_the_row_planning_uses(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    write(
        folder, "a.csv", 'x@example.org,X,en,daily\nboris@example.org,"Boris, B.","ru, en",weekly\n'
    )
    write(folder, "b.csv", "Boris@Example.org,Again,de,daily\nonly@example.org,,,\n")
    for address in ("boris@example.org", "BORIS@example.org", "only@example.org"):
        assert first(folder, address) == planned_row(folder, address)
    boris = first(folder, "boris@example.org")
    assert boris is not None and boris.languages == ("ru", "en") and boris.frequency == "weekly"
    only = first(folder, "only@example.org")
    assert only is not None and (only.languages, only.frequency) == (("en",), "daily")


def test_an_invalid_row_is_passed_over_for_a_valid_one(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    write(folder, "a.csv", "anna@example.org,Anna,xx-!!,daily\n")
    write(folder, "b.csv", "anna@example.org,Anna,ru,weekly\n")
    anna = first(folder, "anna@example.org")
    assert anna == planned_row(folder, "anna@example.org")
    assert anna is not None and anna.languages == ("ru",)


def test_absent_unreadable_or_not_utf8(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    assert find_subscriber(folder, "en", "a@example.org") == []  # no folder
    write(folder, "a.csv", "someone@example.org,,en,daily\n")
    (folder / "b.csv").write_bytes(HEADER.encode() + b"a@example.org,\xff\xfe,en,daily\n")
    assert find_subscriber(folder, "en", "a@example.org") == []  # as planning: file skipped
    assert planned_row(folder, "a@example.org") is None
    assert find_subscriber(folder, "en", "nobody@example.org") == []


def test_an_address_split_across_read_blocks_is_found(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    before = len(HEADER)
    # Pad so that the address starts 5 bytes before the end of the first block.
    filler = "f@example.org,,en,daily,"
    pad = filler + "x" * (BLOCK - 5 - before - len(filler) - 1) + "\n"
    write(folder, "a.csv", pad + "Needle@example.org,,ru,weekly\n")
    assert (folder / "a.csv").read_bytes().index(b"Needle") == BLOCK - 5
    found = first(folder, "needle@example.org")
    assert found is not None and found.frequency == "weekly"


def test_every_files_row_is_a_candidate_in_file_order(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    write(folder, "a.csv", "boris@example.org,A,en,daily\n")
    write(folder, "b.csv", "x@example.org,,en,daily\nBoris@example.org,B,ru,weekly\n")
    rows = find_subscriber(folder, "en", "boris@example.org")
    assert [(r.source, r.name) for r in rows] == [("a.csv", "A"), ("b.csv", "B")]
