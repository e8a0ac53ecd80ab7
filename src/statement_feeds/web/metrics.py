"""The Prometheus text exposition (format 0.0.4) of ``GET /metrics``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

__all__ = ["render_metrics"]


def render_metrics(
    *,
    statements: Mapping[str, int],
    feeds: int,
    subscribers: Mapping[str, int],
    editions: int,
    deliveries: Mapping[str, int],
    last_build: datetime | None,
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
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    # Prometheus parses any float; full precision keeps timestamps exact to the ms.
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"
