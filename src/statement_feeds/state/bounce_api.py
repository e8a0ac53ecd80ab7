"""The bounce log: a bounce score per address, beside the protocols of ``state.api``.

Kept in a protocol of its own (not in ``state.api.Store``) so that a backend can add it
without the rest of the store changing; :func:`bounce_log` gives the store as one, or
says plainly that this backend keeps no bounce scores.

A permanent failure (a DSN saying the mailbox does not exist) counts once per edition
and address: two DSNs for one message, or a rerun over the same mail, are one bounce.
The score starts again at 1 when the previous permanent bounce is older than the
window (``reset_after``), and after an admin cleared the address's bounce
(``subscribers unbounce``). Reaching ``threshold`` marks the address bounced, as a 5xx
at RCPT does. Temporary failures (4.x.x, "mailbox full") are only counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from ..errors import StateError

__all__ = ["BounceLog", "BounceScore", "bounce_log"]


@dataclass(frozen=True, slots=True)
class BounceScore:
    """An address's bounce record after one bounce was counted."""

    email: str  # the email key
    score: int  # permanent bounces (distinct editions) within the window
    temporary: int  # temporary failures, ever
    marked: bool  # this bounce marked the address bounced (it was not before)


@runtime_checkable
class BounceLog(Protocol):
    def edition_addresses(self, edition_id: int) -> list[str]:
        """The addresses an edition was planned for (0: those with a pending sign-up)."""

    def delivery_for_message_id(self, message_id: str) -> tuple[int, str] | None:
        """(edition, address) of the delivery that carried this Message-ID, if any."""

    def record_bounce(
        self,
        email: str,
        edition_id: int,
        *,
        permanent: bool,
        reason: str,
        now: datetime,
        threshold: int,
        reset_after: timedelta,
    ) -> BounceScore:
        """Count one bounce (see the module docstring); mark the address at ``threshold``."""


def bounce_log(store: object) -> BounceLog:
    """``store`` as a :class:`BounceLog`; :class:`StateError` if its backend has none."""
    if not isinstance(store, BounceLog):
        raise StateError(
            f"this state backend ({type(store).__name__}) keeps no bounce scores; "
            "bounces cannot be processed with it"
        )
    return store
