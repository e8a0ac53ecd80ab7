"""A shared ledger's sender claims its next batch ahead (``send._Run._claim_ahead``): in
a thread, on a connection of its own (``Ledger.claimer``), so that its event loop never
stands still for a claim (~25 ms for 500 on PostgreSQL). SQLite's only sender claims in
its loop: a claim there is a local transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..errors import StateError
from ..state.api import Claimer, Delivery, Ledger

__all__ = ["ClaimsAhead"]


class ClaimsAhead:
    """``claim`` from one thread at a time; ``close`` when the run ends."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        # Made on the first claim ahead: a run shorter than half a batch (most of a
        # daemon's runs: retries) opens no connection for it.
        self._claimer: Claimer | None = None

    def claim(self, limit: int, now: datetime) -> Sequence[Delivery]:
        if self._claimer is None:
            self._claimer = self._ledger.claimer()
            if self._claimer is None:
                raise StateError("this shared ledger cannot claim ahead")
        return self._claimer.claim(limit, now)

    def close(self) -> None:
        claimer, self._claimer = self._claimer, None
        if claimer is not None:
            claimer.close()
