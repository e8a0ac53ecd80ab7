"""Group commit of a sender's ledger writes: once per turn of the event loop.

Every SMTP reply must be in the ledger before its worker hands the next message
over, or a kill -9 leaves more than the messages in flight with an unknown fate.
One transaction per message would be simple but slow; instead the replies and
hand-overs that arrive during one turn of the loop are written together at its
end (``call_soon``), in one transaction (``Ledger.record``). A worker waits for
its hand-over to be committed before it sends, so at any moment the ledger's
``sending`` rows are at most one per worker.

WAL with ``synchronous=NORMAL`` makes such a commit cheap (no fsync) and still
durable across kill -9 of the process: only the OS crashing can lose it.
"""

from __future__ import annotations

import asyncio
import logging

from .clock import Clock
from .errors import StateError
from .ledger import Delivery, Ledger, Outcome

__all__ = ["GroupCommit"]

log = logging.getLogger(__name__)


class GroupCommit:
    """Collects outcomes and hand-overs; writes them at the end of the loop's turn."""

    def __init__(self, ledger: Ledger, clock: Clock) -> None:
        self._ledger = ledger
        self._clock = clock
        self._outcomes: list[Outcome] = []
        self._starts: list[tuple[Delivery, asyncio.Future[bool]]] = []
        self._scheduled = False
        # Set when a write failed: no further hand-over is allowed in this run.
        self.error: StateError | None = None

    def add(self, outcome: Outcome) -> None:
        """Record ``outcome`` at the end of this turn (or at ``flush``)."""
        self._outcomes.append(outcome)
        self._schedule()

    async def start(self, delivery: Delivery) -> bool:
        """Mark ``delivery`` as handed over; True when it may be sent now.

        Raises :class:`StateError` when the ledger cannot be written: nothing may
        leave that cannot be recorded.
        """
        if self.error is not None:
            raise self.error
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._starts.append((delivery, done))
        self._schedule()
        return await done

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write what was collected, now. Safe to call at any time, also after an error."""
        self._scheduled = False
        if not self._outcomes and not self._starts:
            return
        outcomes, self._outcomes = self._outcomes, []
        starts, self._starts = self._starts, []
        try:
            allowed = self._ledger.record(outcomes, [d for d, _ in starts], self._clock())
        except Exception as exc:  # a callback of the loop: it must never raise
            error = exc if isinstance(exc, StateError) else StateError(f"cannot record: {exc}")
            if self.error is None:
                log.error("the ledger cannot be written: %s; stopping hand-overs", error)
            self.error = error
            # Kept for a later flush (the end of the run tries once more); what never
            # gets recorded stays 'sending' and is re-sent by the next run.
            self._outcomes[:0] = outcomes
            for _, done in starts:
                if not done.done():
                    done.set_exception(error)
            return
        for (_, done), ok in zip(starts, allowed, strict=True):
            if not done.done():
                done.set_result(ok)

    @property
    def unrecorded(self) -> int:
        """Outcomes still waiting to be written (after a failed write)."""
        return len(self._outcomes)
