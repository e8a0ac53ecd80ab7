"""The Prometheus text exposition (format 0.0.4) of ``GET /metrics``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from ..feeds.hub_record import HubRecord

__all__ = ["render_metrics"]


def render_metrics(
    *,
    statements: Mapping[str, int],
    feeds: int,
    subscribers: Mapping[str, int],
    editions: int,
    deliveries: Mapping[str, int],
    last_build: datetime | None,
    hubs: Sequence[HubRecord] = (),
) -> str:
    """Prometheus text exposition format 0.0.4."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP statement_feeds_{name} {help_text}")
        lines.append(f"# TYPE statement_feeds_{name} {kind}")
        lines.extend(
            f"statement_feeds_{name}{labels} {_number(value)}" for labels, value in samples
        )

    metric(
        "statements",
        "gauge",
        "Published statements in the feeds and archives.",
        [(f'{{lang="{lang}"}}', n) for lang, n in sorted(statements.items())],
    )
    metric("feeds", "gauge", "Language feeds published.", [("", feeds)])
    metric(
        "subscribers",
        "gauge",
        "Addresses in the state database, by state.",
        [(f'{{state="{k}"}}', v) for k, v in sorted(subscribers.items())],
    )
    metric("editions", "gauge", "Digest editions planned.", [("", editions)])
    metric(
        "deliveries",
        "gauge",
        "Digest deliveries in the ledger, by state.",
        [(f'{{state="{k}"}}', v) for k, v in deliveries.items()],
    )
    stamp = last_build.timestamp() if last_build else 0
    metric(
        "last_build_timestamp_seconds",
        "gauge",
        "When a language feed was last written (Unix time; 0: never).",
        [("", stamp)],
    )
    if hubs:
        _websub(metric, hubs)
    return "\n".join(lines) + "\n"


def _websub(
    metric: Callable[[str, str, str, list[tuple[str, float]]], None], hubs: Sequence[HubRecord]
) -> None:
    """Per hub of ``feeds.websub_hubs``: what the daemon's publish pings did."""

    def per_hub(value: Callable[[HubRecord], float]) -> list[tuple[str, float]]:
        return [(f'{{hub="{_label(r.hub)}"}}', value(r)) for r in hubs]

    metric(
        "websub_pending",
        "gauge",
        "WebSub publish pings queued or waiting to be retried, by hub.",
        per_hub(lambda r: len(r.pending)),
    )
    metric(
        "websub_given_up_total",
        "counter",
        "WebSub publish pings dropped (refused with a 4xx, or out of retries), by hub.",
        per_hub(lambda r: r.given_up),
    )
    metric(
        "websub_last_success_timestamp_seconds",
        "gauge",
        "When the hub last answered a ping with 2xx (Unix time; 0: never).",
        per_hub(lambda r: r.last_ok.timestamp() if r.last_ok else 0),
    )
    metric(
        "websub_last_failure_timestamp_seconds",
        "gauge",
        "When a ping to the hub last failed (Unix time; 0: never).",
        per_hub(lambda r: r.last_failure.timestamp() if r.last_failure else 0),
    )
    metric(
        "websub_last_status",
        "gauge",
        "The hub's last HTTP status (0: no answer: timeout or connection error).",
        per_hub(lambda r: int(r.last_status) if r.last_status.isdigit() else 0),
    )


def _label(value: str) -> str:
    """A Prometheus label value: backslash, double quote and line feed escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    # Prometheus parses any float; full precision keeps timestamps exact to the ms.
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"
