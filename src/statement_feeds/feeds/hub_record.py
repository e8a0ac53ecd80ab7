"""What the WebSub pings did, per hub: ``<state>/websub.json``.

Written by the daemon (``daemon.websub``) whenever a ping is queued or answered,
atomically; read by ``status`` and ``/metrics``. A file, not a table: it is a small
note of the daemon's recent work (and its queue of pings still to send, so that a
restart sends them), not part of the ledger. An unreadable or foreign file is treated
as empty: the worst outcome is a ping not repeated after a restart.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..logs import event
from .output import write_atomic

__all__ = ["RECORD_NAME", "HubRecord", "Pending", "load_records", "save_records"]

log = logging.getLogger(__name__)

RECORD_NAME = "websub.json"
_MAX_BYTES = 4 << 20  # a real record is a few kB; a bigger file is not ours


@dataclass(slots=True)
class Pending:
    """A ping still to send to one hub about one feed (``topic``, its self URL)."""

    attempts: int  # failed so far
    next_at: datetime


@dataclass(slots=True)
class HubRecord:
    hub: str
    last_ok: datetime | None = None  # the last 2xx answer
    last_failure: datetime | None = None  # the last non-2xx answer, timeout or error
    last_status: str = ""  # "204", "503", "timeout", "error: <what>"
    given_up: int = 0  # pings dropped: refused (4xx) or out of retries
    pending: dict[str, Pending] = field(default_factory=dict)  # topic → when next


def load_records(state: Path, hubs: Iterable[str] | None = None) -> dict[str, HubRecord]:
    """The records on file, keyed by hub; with ``hubs``, exactly those hubs (a hub no
    longer configured is forgotten, a new one starts empty)."""
    found = _read(state / RECORD_NAME)
    if hubs is None:
        return found
    return {hub: found.get(hub) or HubRecord(hub) for hub in hubs}


def save_records(state: Path, records: Iterable[HubRecord]) -> None:
    document = {"version": 1, "hubs": [_dump(r) for r in records]}
    data = json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"
    write_atomic(state / RECORD_NAME, data, sync_folder=False)


def _dump(record: HubRecord) -> dict[str, Any]:
    return {
        "hub": record.hub,
        "last_ok": _time(record.last_ok),
        "last_failure": _time(record.last_failure),
        "last_status": record.last_status,
        "given_up": record.given_up,
        "pending": {
            topic: {"attempts": p.attempts, "next_at": p.next_at.isoformat()}
            for topic, p in sorted(record.pending.items())
        },
    }


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _read(path: Path) -> dict[str, HubRecord]:
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise ValueError("too big")
        document = json.loads(path.read_bytes())
        return {r.hub: r for r in (_load(item) for item in document["hubs"])}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        event(log, logging.WARNING, "websub record unreadable", path=str(path), error=repr(exc))
        return {}


def _load(item: dict[str, Any]) -> HubRecord:
    return HubRecord(
        hub=str(item["hub"]),
        last_ok=_parse(item.get("last_ok")),
        last_failure=_parse(item.get("last_failure")),
        last_status=str(item.get("last_status", "")),
        given_up=int(item.get("given_up", 0)),
        pending={
            str(topic): Pending(int(p["attempts"]), datetime.fromisoformat(p["next_at"]))
            for topic, p in dict(item.get("pending", {})).items()
        },
    )


def _parse(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None
