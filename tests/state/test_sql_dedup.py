"""The state database's side of duplicate detection (``state/sql_dedup.py``), both backends.

A place is file number << 32 | line: the rows of every file after the first need more
than 32 bits (on PostgreSQL the TEMP table's INTEGER column refused them, so a site with
two subscriber files could not plan). ``first_places`` skips the read-back when every
key of a batch is new: the answers must be the same either way.
"""

from __future__ import annotations

from pg_helpers import AnyStore


def place(file: int, line: int) -> int:
    return file << 32 | line


def test_places_of_any_file_and_line_are_kept(backend: AnyStore) -> None:
    last = place(7, 0xFFFFFFFF)
    with backend.transaction(), backend.seen_addresses() as seen:
        entries = [("a@x.org", place(0, 2)), ("b@x.org", place(1, 2)), ("c@x.org", last)]
        assert seen.first_places(entries) == [place(0, 2), place(1, 2), last]
        # Seen again from a later file: the first place stands.
        assert seen.first_places([("c@x.org", place(9, 1))]) == [last]


def test_new_known_and_repeated_keys_in_one_batch(backend: AnyStore) -> None:
    with backend.transaction(), backend.seen_addresses() as seen:
        assert seen.first_places([("a@x.org", 2), ("b@x.org", 3)]) == [2, 3]
        batch = [("c@x.org", 10), ("a@x.org", 11), ("c@x.org", 12), ("d@x.org", 13)]
        # c twice in the batch: its first entry wins; a was kept by the first batch.
        assert seen.first_places(batch) == [10, 2, 10, 13]
        # A batch of only repeats of one new key.
        assert seen.first_places([("e@x.org", 20), ("e@x.org", 21)]) == [20, 20]
        assert seen.first_places([("e@x.org", 22), ("b@x.org", 23)]) == [20, 3]


def test_each_read_starts_empty(backend: AnyStore) -> None:
    with backend.transaction():
        with backend.seen_addresses() as seen:
            assert seen.first_places([("a@x.org", place(1, 5))]) == [place(1, 5)]
        with backend.seen_addresses() as seen:
            assert seen.first_places([("a@x.org", place(2, 6))]) == [place(2, 6)]
