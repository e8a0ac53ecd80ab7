"""``bounces process``: returned mail → bounce scores, bounced and unsubscribed addresses.

For each message of the mailbox (``digests.bounce_mailbox``): classify it
(``bounce_classify``), find the delivery it is about, act, then move it away so that
a rerun does nothing twice:

* which delivery: the VERP token of the address the report was sent to
  (``domain.verp``), checked against the edition's addresses; else the returned
  message's Message-ID, looked up in the ledger. A token that verifies for no address
  (forged, or from another site's keys) is refused: the message is kept, unrecognised;
* a permanent failure adds to the address's bounce score, which marks it bounced at
  ``digest.bounce_threshold`` (``state.bounce_api``: one per edition, reset after
  :data:`RESET_AFTER`); a temporary one is counted only;
* a feedback-loop complaint unsubscribes the address at once;
* an automatic reply is ignored; anything else, or a report whose delivery cannot be
  found, is kept in the mailbox's ``unrecognised`` folder and listed.

The state is written before the message is moved: a crash between the two repeats
the message at the next run, which counts it once all the same (one bounce per edition).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Protocol

from ..clock import Clock
from ..domain.verp import CONFIRMATION, BounceAddress, VerpSigner
from ..logs import event
from ..state.api import SubscriberStore
from ..state.bounce_api import BounceLog
from .bounce_classify import Classified, classify

__all__ = [
    "RESET_AFTER",
    "BounceOutcome",
    "BounceReport",
    "BounceStore",
    "Mailbox",
    "process_bounces",
]

log = logging.getLogger(__name__)

# A bounce score starts again when the previous permanent bounce is older than this
# (Mailman's bounce_info_stale_after is 7 days with daily digests; a weekly digest needs
# a window of several weeks for three bounces in a row to add up).
RESET_AFTER = timedelta(days=30)


class Mailbox(Protocol):
    """Where returned mail waits: a Maildir or an IMAP folder."""

    def messages(self) -> Iterable[tuple[str, bytes]]:
        """(name, raw bytes) of every message not yet processed."""

    def done(self, name: str, *, recognised: bool) -> None:
        """Move ``name`` out of the way: to the processed or the unrecognised ones."""


class BounceStore(BounceLog, SubscriberStore, Protocol):
    """What processing needs of the state: scores, and unsubscribing for complaints."""


@dataclass(frozen=True, slots=True)
class BounceOutcome:
    name: str  # the message's name in the mailbox
    kind: str  # as Classified.kind
    detail: str
    address: str | None = None  # the delivery's address, when found
    edition: int | None = None
    action: str = "none"  # "counted" | "marked bounced" | "unsubscribed" | "none"
    score: int | None = None

    @property
    def recognised(self) -> bool:
        return self.kind != "unrecognised"


@dataclass
class BounceReport:
    outcomes: list[BounceOutcome] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for o in self.outcomes if o.kind == kind)

    @property
    def unrecognised(self) -> list[BounceOutcome]:
        return [o for o in self.outcomes if not o.recognised]

    @property
    def marked(self) -> list[str]:
        return [o.address for o in self.outcomes if o.action == "marked bounced" and o.address]

    @property
    def unsubscribed(self) -> list[str]:
        return [o.address for o in self.outcomes if o.action == "unsubscribed" and o.address]


def process_bounces(
    mailbox: Mailbox,
    store: BounceStore,
    signer: VerpSigner,
    bounce: BounceAddress | None,
    clock: Clock,
    *,
    threshold: int,
) -> BounceReport:
    """Process every message waiting in ``mailbox``; see the module docstring."""
    run = _Run(store, signer, bounce, clock, threshold)
    report = BounceReport()
    for name, raw in mailbox.messages():
        outcome = run.handle(name, raw)
        report.outcomes.append(outcome)
        mailbox.done(name, recognised=outcome.recognised)
        event(
            log,
            logging.INFO if outcome.recognised else logging.WARNING,
            "bounce processed" if outcome.recognised else "bounce not recognised",
            message=name,
            kind=outcome.kind,
            to=outcome.address or "",
            action=outcome.action,
            detail=outcome.detail,
        )
    return report


class _Run:
    def __init__(
        self,
        store: BounceStore,
        signer: VerpSigner,
        bounce: BounceAddress | None,
        clock: Clock,
        threshold: int,
    ) -> None:
        self.store, self.signer, self.bounce = store, signer, bounce
        self.clock, self.threshold = clock, threshold
        self._indexes: dict[int, dict[bytes, str]] = {}  # per edition, built once a run

    def handle(self, name: str, raw: bytes) -> BounceOutcome:
        found = classify(raw)
        if found.kind in ("unrecognised", "ignored"):
            return BounceOutcome(name, found.kind, found.detail)
        delivery, why = self._delivery(found)
        if delivery is None:
            hint = f" (the report names {', '.join(found.detected)})" if found.detected else ""
            return BounceOutcome(name, "unrecognised", f"{found.kind}: {why}{hint}")
        edition, address = delivery
        return self._act(name, found, edition, address)

    def _act(self, name: str, found: Classified, edition: int, address: str) -> BounceOutcome:
        now = self.clock()
        outcome = BounceOutcome(name, found.kind, found.detail, address, edition)
        if found.kind == "complaint":
            self.store.unsubscribe(address, now)
            return replace(outcome, action="unsubscribed")
        if edition == CONFIRMATION:  # a sign-up's address that does not work: nothing to score
            return outcome
        score = self.store.record_bounce(
            address,
            edition,
            permanent=found.kind == "permanent",
            reason=f"bounce: {found.detail}",
            now=now,
            threshold=self.threshold,
            reset_after=RESET_AFTER,
        )
        action = "marked bounced" if score.marked else "counted"
        return replace(outcome, action=action, score=score.score)

    def _delivery(self, found: Classified) -> tuple[tuple[int, str] | None, str]:
        """(edition, address) of the delivery a report is about, or None and why not."""
        why = "no VERP token of ours and no Message-ID of ours in it"
        for recipient in found.recipients:
            text = self.bounce.token_in(recipient) if self.bounce else None
            if text is None:
                continue
            token = VerpSigner.parse(text)
            address = None if token is None else self._index(token.edition_id).get(token.mac)
            if token is not None and address is not None:
                return (token.edition_id, address), ""
            why = f"the VERP token {text!r} is forged or unknown: refused"
        for message_id in found.message_ids:
            delivery = self.store.delivery_for_message_id(message_id)
            if delivery is not None:
                return delivery, ""
        return None, why

    def _index(self, edition: int) -> dict[bytes, str]:
        if edition not in self._indexes:
            addresses = self.store.edition_addresses(edition)
            self._indexes[edition] = self.signer.index(edition, addresses)
        return self._indexes[edition]
