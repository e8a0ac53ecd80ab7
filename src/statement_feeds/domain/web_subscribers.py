"""Web subscribers and preference overrides merged into the CSV list (pure, streaming).

The CSV files are the admin's list and are never edited. Two things from the state
database sit on top of them, both choices the subscriber made themselves:

* a *web subscriber* (confirmed through the form) replaces a CSV row for the same
  address, and is added at the end when no file lists it;
* a *preference override* (set on the preferences page) replaces the languages and
  frequency of a CSV row.

Memory stays proportional to the web side, not to the (possibly huge) CSV list.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from .problems import Problem
from .subscribers import Subscriber, email_key

__all__ = ["WEB_SOURCE", "Preferences", "merge_subscribers"]

WEB_SOURCE = "web"  # Subscriber.source of a web subscriber


@dataclass(frozen=True, slots=True)
class Preferences:
    languages: tuple[str, ...]  # canonical tags, most preferred first, never empty
    frequency: str  # "daily" | "weekly"


def merge_subscribers(
    items: Iterable[Subscriber | Problem],
    web: Mapping[str, Subscriber],
    overrides: Mapping[str, Preferences],
) -> Iterator[Subscriber | Problem]:
    """CSV items with web rows and overrides applied, then the web-only subscribers.

    ``web`` and ``overrides`` are keyed by :func:`email_key`. Problems pass through.
    """
    placed: set[str] = set()
    for item in items:
        if isinstance(item, Problem) or not (web or overrides):
            yield item
            continue
        key = email_key(item.email)
        own = web.get(key)
        if own is not None:
            placed.add(key)
            yield own
            continue
        preferences = overrides.get(key)
        if preferences is None:
            yield item
        else:
            yield replace(item, languages=preferences.languages, frequency=preferences.frequency)
    for key, subscriber in web.items():
        if key not in placed:
            yield subscriber
