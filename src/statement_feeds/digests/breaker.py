"""The sending loop's circuit breaker: many permanent refusals in a row with one reply.

"554 5.7.1 relaying denied" for everyone means the SMTP settings are wrong, not the
addresses: after ``limit`` deliveries in a row refused with the same reply code and
enhanced status code, the run stops with :class:`DeliveryHalted` instead of failing
the whole list. A success, a deferral or another reply ends the streak.
"""

from __future__ import annotations

import logging

from ..errors import DeliveryError, DeliveryHalted
from .mailer import reply_status

__all__ = ["SAME_REFUSAL_LIMIT", "RefusalStreak"]

log = logging.getLogger(__name__)

# Consecutive permanent failures with the same reply that mean "the server refuses
# everyone" (relay denied, authentication missing) rather than bad addresses.
SAME_REFUSAL_LIMIT = 20


class RefusalStreak:
    """The current streak of permanent failures sharing one reply."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit  # None: the breaker is off
        self.status: tuple[int, str | None] | None = None
        self.refusals: list[tuple[str, bool]] = []  # (address, bounced) in the streak

    def end(self) -> None:
        self.status = None
        self.refusals.clear()

    def refused(self, email: str, exc: DeliveryError, *, bounced: bool) -> DeliveryHalted | None:
        """Count one permanent failure; the error that stops the run once there are too many."""
        status = reply_status(exc)
        if status is None or self.limit is None:
            self.end()
            return None
        if status != self.status:
            self.end()
            self.status = status
        self.refusals.append((email, bounced))
        if len(self.refusals) < max(1, self.limit):
            return None
        return self._halt(status, exc)

    def _halt(self, status: tuple[int, str | None], exc: DeliveryError) -> DeliveryHalted:
        code, enhanced = status
        reply = f"{code} {enhanced}" if enhanced else str(code)
        bounced_now = [email for email, was_bounced in self.refusals if was_bounced]
        log.error(
            "%d deliveries in a row were refused with %s (last: %s): stopping this run. "
            "They stay failed and the unsent rest is released; once the SMTP settings "
            "are fixed, 'digest send --resend-failed' queues the failed ones again.",
            len(self.refusals),
            reply,
            exc,
        )
        if bounced_now:
            log.error(
                "%d of them were recorded as bounces and their addresses are blocked "
                "(resend-failed skips them); check them: %s",
                len(bounced_now),
                ", ".join(bounced_now),
            )
        return DeliveryHalted(
            # "smtp: " as the ConfigError this used to be put it: the same message.
            f"smtp: the server refuses every recipient: {exc} "
            f"({len(self.refusals)} in a row with {reply}); check smtp settings",
            code=code,
            enhanced=enhanced,
            refusals=len(self.refusals),
        )
