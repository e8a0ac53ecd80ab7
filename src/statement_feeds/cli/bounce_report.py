"""The summary ``bounces process`` prints: text lines, or one JSON object."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..digests.bounces import BounceOutcome, BounceReport

__all__ = ["json_report", "text_report"]

_KINDS = ("permanent", "temporary", "complaint", "ignored", "unrecognised")


def text_report(report: BounceReport) -> Iterator[str]:
    """A line per address marked or unsubscribed and per message kept, then the counts."""
    for outcome in report.outcomes:
        if outcome.action in ("marked bounced", "unsubscribed"):
            yield f"{outcome.action:<15} {outcome.address}  ({outcome.detail})"
    for outcome in report.unrecognised:
        yield f"unrecognised    {outcome.name}  ({outcome.detail})"
    counts = ", ".join(f"{report.count(kind)} {kind}" for kind in _KINDS)
    yield (
        f"{len(report.outcomes)} messages: {counts}; {len(report.marked)} addresses marked "
        f"bounced, {len(report.unsubscribed)} unsubscribed"
    )


def json_report(report: BounceReport) -> dict[str, Any]:
    return {
        "messages": len(report.outcomes),
        "counts": {kind: report.count(kind) for kind in _KINDS},
        "marked_bounced": report.marked,
        "unsubscribed": report.unsubscribed,
        "outcomes": [_outcome(o) for o in report.outcomes],
    }


def _outcome(outcome: BounceOutcome) -> dict[str, Any]:
    return {
        "message": outcome.name,
        "kind": outcome.kind,
        "address": outcome.address,
        "edition": outcome.edition,
        "action": outcome.action,
        "score": outcome.score,
        "detail": outcome.detail,
    }
