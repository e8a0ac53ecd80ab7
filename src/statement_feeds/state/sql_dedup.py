"""The state database's side of ``domain.duplicates``: where rows and addresses were seen.

* :class:`SeenTable`, a TEMP table per read of the lists (``seen_addresses`` of a store):
  the place of every row that kept its address, so that memory does not grow with
  the list;
* :class:`SightingsTable`, the ``subscriber_sightings`` table (SQLite's migration 5): when the
  state first saw each address in each file, so that the row that was there first
  keeps an address listed twice (``sightings`` of a store).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .batches import chunks as _chunks
from .sql_connection import Connection
from .sql_dialect import SQLITE, Dialect

__all__ = ["SeenTable", "SightingsTable"]


class SeenTable:
    """:class:`domain.duplicates.SeenAddresses` in a table of the connection."""

    def __init__(self, db: Connection, table: str, dialect: Dialect = SQLITE) -> None:
        self._db = db
        self._table = table
        self._dialect = dialect

    def first_places(self, entries: Sequence[tuple[str, int]]) -> list[int]:
        first: dict[str, int] = {}
        for key, place in entries:
            first.setdefault(key, place)
        # Key order makes the B-tree inserts sequential within the batch. A key already
        # there is skipped, and the count says whether any was: in the usual batch every
        # key is new and nothing is read back (a look-up of 5,000 keys per batch saved).
        inserted = self._dialect.insert_many(
            self._db,
            self._table,
            (("email", "text"), ("place", "int8")),
            sorted(first.items()),
            "ON CONFLICT (email) DO NOTHING",
        )
        if inserted == len(first):
            return [first[key] for key, _ in entries]
        # Some were there: every key's place as stored, the new ones' being theirs.
        places: dict[str, int] = {}
        for chunk in _chunks(list(first)):
            where, params = self._dialect.in_list("email", chunk)
            sql = f"SELECT email, place FROM {self._table} WHERE {where}"
            places.update(self._db.execute(sql, params).fetchall())
        return [places[key] for key, _ in entries]


class SightingsTable:
    """:class:`domain.duplicates.Sightings` in ``subscriber_sightings``.

    ``stamp`` is now, as fixed-width UTC text (text order is time order): the time
    of the pairs seen for the first time, recorded unless ``record`` is false
    (``--dry-run``, ``subscribers list``). Writes join the caller's transaction.
    """

    def __init__(
        self, db: Connection, stamp: str, *, record: bool, dialect: Dialect = SQLITE
    ) -> None:
        self._db = db
        self._stamp = stamp
        self._record = record
        self._dialect = dialect

    def first_seen(self, pairs: Sequence[tuple[str, str]]) -> Mapping[str, Mapping[str, str]]:
        found: dict[str, dict[str, str]] = {}
        for chunk in _chunks(sorted({key for key, _ in pairs})):
            where, params = self._dialect.in_list("email", chunk)
            # fetchall: psycopg's cursor iterates a row at a time in Python (~1.2 us a
            # row more, 5,000 rows a batch, on every row of the lists).
            for key, source, seen_at in self._db.execute(
                f"SELECT email, source, first_seen FROM subscriber_sightings WHERE {where}",
                params,
            ).fetchall():
                found.setdefault(key, {})[source] = seen_at
        new = sorted({pair for pair in pairs if pair[1] not in found.get(pair[0], {})})
        for key, source in new:
            found.setdefault(key, {})[source] = self._stamp
        if self._record:
            self._dialect.insert_many(
                self._db,
                "subscriber_sightings",
                (("email", "text"), ("source", "text"), ("first_seen", "text")),
                [(key, source, self._stamp) for key, source in new],
                "ON CONFLICT (email, source) DO NOTHING",
            )
        return found
