"""Which of the wanted keys each address was given, on PostgreSQL: one row per address.

Planning asks, per chunk of 5,000 addresses, which of the translation keys it could
choose each one was already given (``SubscriberTables.subscriber_states``). The shared
SQL returns one row per (address, key): on an edition after one that gave 30 statements
to 1,000,000 addresses, 28 million rows crossed the socket and were looped over in
Python. Here the server folds each address's keys into a bit mask over the wanted keys
(64 per query), and an address's mask becomes its frozenset once per distinct mask:
most addresses share a handful of histories.
"""

from __future__ import annotations

from .batches import chunks
from .sql_dialect import array_arg
from .sql_subscribers import SubscriberTables

__all__ = ["MASK_BITS", "PostgresHistories"]

MASK_BITS = 64  # wanted keys per query: the bits of a bigint

# array_position is 1-based; the 64th bit is the sign bit, which Python's arbitrary-size
# two's complement reads back alike (``mask >> 63 & 1``).
_MASKS = (
    "SELECT email_key, bit_or(1::bigint << (array_position(?b::text[], translation_key) - 1))"
    " FROM assigned WHERE email_key = ANY({emails}) AND translation_key = ANY(?b)"
    " GROUP BY email_key"
)


class PostgresHistories(SubscriberTables):
    """``SubscriberTables`` with the assigned keys read as one bit mask per address."""

    def _whole_histories(self, wanted: int) -> bool:
        return False  # the server filters by key either way: no need to count the keys

    def _assigned(
        self, emails: list[str], wanted: list[str], *, whole: bool
    ) -> dict[str, frozenset[str]]:
        assigned: dict[str, frozenset[str]] = {}
        array, email_arg = array_arg(emails, "text")
        sql = _MASKS.format(emails=array)
        for group in chunks(wanted, MASK_BITS):
            sets: dict[int, frozenset[str]] = {}  # mask → its keys, made once each
            for email, mask in self._db.execute(sql, [group, email_arg, group]).fetchall():
                keys = sets.get(mask)
                if keys is None:
                    keys = sets[mask] = frozenset(k for i, k in enumerate(group) if mask >> i & 1)
                held = assigned.get(email)
                assigned[email] = keys if held is None else held | keys
        return assigned
