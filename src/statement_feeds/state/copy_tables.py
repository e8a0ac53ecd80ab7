"""What `state copy` moves from one backend to another: every table, its columns, and how
each value is converted. Backend-neutral: no database module is imported here.

Every table of the SQLite schema (``sqlite_migrations``) is in exactly one of three sets,
and ``tests/state/test_copy_tables.py`` checks that a new table or column cannot be
forgotten:

* :data:`TABLES` — copied row by row, in this order (editions before the deliveries and
  assignments that reference them). The target must have none of their rows.
* :data:`REPLACED` — copied too, but the target's migration already filled them (the
  subscriber-id key in ``settings``): the target's rows with the same keys are replaced
  by the source's, so ids in mail already sent keep resolving.
* :data:`SKIPPED` — never copied: ``schema_migrations`` is each backend's own numbering.

Timestamps are stored by SQLite as fixed-width ISO 8601 UTC text (``state.timestamps``);
they are parsed here (a value that does not parse stops the copy) and become aware
datetimes for a ``timestamptz`` column, or the same canonical text for a text column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from ..errors import StateError
from .timestamps import to_ts

__all__ = [
    "REPLACED",
    "SKIPPED",
    "TABLES",
    "Kind",
    "Table",
    "convert_rows",
]


class Kind(Enum):
    TEXT = "text"
    INTEGER = "integer"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, Kind], ...]
    key: tuple[str, ...]  # the primary key: the copy's order, and what REPLACED matches on
    serial: str | None = None  # a column the target fills from a sequence (set after)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def timestamps(self) -> frozenset[str]:
        return frozenset(name for name, kind in self.columns if kind is Kind.TIMESTAMP)


def _table(name: str, spec: str, key: str, serial: str | None = None) -> Table:
    """``spec``: the columns in order, ``name`` (text), ``name:int`` or ``name:ts``."""
    kinds = {"": Kind.TEXT, "int": Kind.INTEGER, "ts": Kind.TIMESTAMP}
    columns = tuple(
        (column, kinds[kind]) for column, _, kind in (c.partition(":") for c in spec.split())
    )
    return Table(name, columns, key=tuple(key.split()), serial=serial)


TABLES: tuple[Table, ...] = (
    _table(
        "subscribers",
        "email joined_at:ts unsubscribed_at:ts bounced_at:ts bounce_reason",
        key="email",
    ),
    _table(
        "editions",
        "id:int frequency due_at:ts planned_at:ts deliveries:int",
        key="id",
        serial="id",
    ),
    _table(
        "deliveries",
        "edition_id:int email_key email name lang statement_ids message_id state attempts:int"
        " first_attempt_at:ts next_attempt_at:ts last_code:int last_error updated_at:ts"
        " claimed_by claim_until:ts corrected_ids",
        key="edition_id email_key",
    ),
    _table(
        "assigned",
        "email_key translation_key edition_id:int statement_id statement_updated_at:ts",
        key="email_key translation_key",
    ),
    _table("assigned_keys", "translation_key", key="translation_key"),
    _table(
        "corrections",
        "email_key translation_key statement_updated_at:ts statement_id edition_id:int",
        key="email_key translation_key statement_updated_at",
    ),
    _table(
        "web_subscribers",
        "email address name languages frequency confirmed_at:ts updated_at:ts",
        key="email",
    ),
    _table("preference_overrides", "email languages frequency updated_at:ts", key="email"),
    _table(
        "pending_confirmations",
        "id email address languages frequency created_at:ts expires_at:ts consumed_at:ts",
        key="id",
    ),
    _table("rate_events", "id:int bucket at:ts", key="id", serial="id"),
    _table("subscriber_ids", "id email", key="id"),
    _table(
        "bounce_scores",
        "email score:int temporary:int last_edition:int last_permanent_at:ts marked_at:ts"
        " last_reason updated_at:ts",
        key="email",
    ),
    _table("subscriber_sightings", "email source first_seen:ts", key="email source"),
)

# Made by the target's own migration (a random subscriber-id key): the source's wins.
REPLACED: tuple[Table, ...] = (_table("settings", "name value", key="name"),)

# Each backend numbers its own migrations: never copied.
SKIPPED: frozenset[str] = frozenset({"schema_migrations"})


def _timestamp(value: Any) -> datetime:
    """SQLite's fixed-width UTC text (``2024-05-01T07:00:00.000000Z``) → an aware datetime.

    An offset other than Z is honoured; a naive text is UTC (as ``timestamps.to_ts`` wrote).
    """
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    moment = datetime.fromisoformat(value)  # Python 3.11 reads the Z itself
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _canonical(value: Any) -> str:
    """The fixed-width UTC text of ``timestamps.to_ts`` for a timestamp's text."""
    moment = _timestamp(value)  # parses (and so checks) every value
    if len(value) == _CANONICAL_LENGTH and (value[10], value[19], value[-1]) == ("T", ".", "Z"):
        return str(value)  # what the store writes: already canonical, kept as it is
    return to_ts(moment)


_CANONICAL_LENGTH = len("2024-05-01T07:00:00.000000Z")


def convert_rows(
    table: Table, rows: Sequence[Sequence[Any]], as_text: frozenset[str] = frozenset()
) -> list[Sequence[Any]]:
    """The rows of ``table`` as the target stores them; a value that does not fit its
    column is a StateError naming the table, column and row key (the copy stops).

    Only timestamps change: to aware datetimes (for a ``timestamptz`` column), or, for the
    columns named in ``as_text`` (a target that keeps timestamps as text, as SQLite does),
    to the canonical fixed-width text of ``timestamps.to_ts``, so that text order stays
    time order. Text and integers go as they are: SQLite's column affinity already made
    them text and integers on the way in (a text that is not a number in an integer
    column stays text, and the target refuses it: the copy is rolled back).
    """
    stamps = [
        (i, _canonical if name in as_text else None)
        for i, (name, kind) in enumerate(table.columns)
        if kind is Kind.TIMESTAMP
    ]
    if not stamps:
        return list(rows)
    out: list[Sequence[Any]] = []
    for row in rows:
        values = list(row)
        try:
            for i, text in stamps:
                if values[i] is not None:
                    values[i] = text(values[i]) if text else _timestamp(values[i])
        except ValueError as exc:
            raise StateError(_bad_value(table, row, i, exc)) from exc
        out.append(values)
    return out


def _bad_value(table: Table, row: Sequence[Any], at: int, exc: Exception) -> str:
    key = ", ".join(f"{name}={row[table.names.index(name)]!r}" for name in table.key)
    return (
        f"cannot copy table {table.name}, row {key}: column {table.names[at]} holds "
        f"{row[at]!r}, which is not a valid timestamp ({exc}); fix that row in the source "
        "and copy again"
    )
