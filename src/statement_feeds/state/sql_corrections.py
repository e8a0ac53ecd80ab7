"""Corrections in the ledger: what version of each key went to whom, and re-mailings.

Shared SQL of both stores (called by ``sql_subscribers`` and ``sql_editions``).

* ``assigned.statement_id`` / ``assigned.statement_updated_at``: the version last mailed of
  a translation key and its ``updated`` value then. Rows written before corrections
  were tracked hold NULL: the delivery's statement ids and the edition's planning
  time stand in for them (``domain.corrections.Mailed``).
* ``corrections``: one row per (address, key, ``updated`` value) mailed again, with
  the edition that carried it. Its primary key makes "a correction is mailed once per
  subscriber per ``updated`` value" a hard rule: planning one twice aborts the plan.
* ``deliveries.corrected_ids``: which statements a delivery carries as corrected.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from ..domain.corrections import Mailed
from .api import PlannedDelivery
from .batches import CHUNK, chunks
from .sql_connection import Connection
from .timestamps import from_ts, to_ts

__all__ = ["NOTHING_MAILED", "mailed_versions", "record_corrections"]

NOTHING_MAILED: MappingProxyType[str, Mailed] = MappingProxyType({})


def mailed_versions(
    db: Connection, email_keys: list[str], translation_keys: list[str]
) -> dict[str, MappingProxyType[str, Mailed]]:
    """email key → translation key → what was mailed, for deliveries not failed or
    cancelled (who never got a statement is not sent its correction)."""
    found: dict[str, dict[str, Mailed]] = {}
    for emails in chunks(email_keys, CHUNK):
        for keys in chunks(translation_keys, CHUNK):
            sql = (
                "SELECT a.email_key, a.translation_key, a.statement_id,"
                " COALESCE(a.statement_updated_at, e.planned_at), d.statement_ids"
                " FROM assigned a JOIN editions e ON e.id = a.edition_id"
                " JOIN deliveries d ON d.edition_id = a.edition_id AND d.email_key = a.email_key"
                f" WHERE a.email_key IN ({','.join('?' * len(emails))})"
                f" AND a.translation_key IN ({','.join('?' * len(keys))})"
                " AND d.state NOT IN ('failed', 'cancelled')"
            )
            for email, key, statement_id, updated, ids in db.execute(sql, [*emails, *keys]):
                versions = frozenset([statement_id] if statement_id else json.loads(ids))
                found.setdefault(email, {})[key] = Mailed(versions, from_ts(updated))
    return {email: MappingProxyType(keys) for email, keys in found.items()}


def record_corrections(
    db: Connection, edition_id: int, items: Sequence[tuple[str, PlannedDelivery]]
) -> None:
    """Inside the plan's transaction: each correction (email key, planned delivery) is
    recorded and moves its key's record to the version and ``updated`` value mailed now."""
    versions: list[tuple[Any, ...]] = []
    corrections: list[tuple[Any, ...]] = []
    for key, item in items:
        for c in item.corrections:
            stamp = to_ts(c.updated)
            versions.append((c.statement_id, stamp, key, c.translation_key))
            corrections.append((key, c.translation_key, stamp, c.statement_id, edition_id))
    if not corrections:
        return
    # No ON CONFLICT on purpose: the same correction planned twice is a bug.
    db.executemany(
        "INSERT INTO corrections (email_key, translation_key, statement_updated_at,"
        " statement_id, edition_id) VALUES (?, ?, ?, ?, ?)",
        sorted(corrections),
    )
    db.executemany(
        "UPDATE assigned SET statement_id = ?, statement_updated_at = ?"
        " WHERE email_key = ? AND translation_key = ?",
        versions,
    )
