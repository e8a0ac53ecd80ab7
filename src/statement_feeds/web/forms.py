"""Pure helpers of the web pages: language negotiation and form validation."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..domain.addresses import Address, AddressError, NotAsciiError, parse_address
from ..domain.langtags import canonical_tag
from ..domain.subscribers import FREQUENCIES

__all__ = [
    "SubscribeForm",
    "choose_language",
    "client_address",
    "language_choices",
    "parse_accept_language",
    "parse_preferences",
    "parse_subscribe",
]

_Q = re.compile(r"^q=([01](?:\.\d{0,3})?)$")


@dataclass(frozen=True, slots=True)
class SubscribeForm:
    address: Address  # checked; an internationalised domain as its A-label
    languages: tuple[str, ...]
    frequency: str

    @property
    def email(self) -> str:
        return self.address.email


def parse_accept_language(header: str) -> list[str]:
    """Language ranges by descending preference (RFC 9110 12.5.4); q=0 and junk dropped."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:32]):  # bounded: it is client input
        fields = [f.strip() for f in part.split(";")]
        tag = fields[0]
        if not tag:
            continue
        quality = 1.0
        for param in fields[1:]:
            match = _Q.match(param.replace(" ", ""))
            if match:
                quality = float(match.group(1))
        if quality > 0:
            ranked.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(
    explicit: str | None, accept_language: str, available: Sequence[str], default: str
) -> str:
    """The page language: ``?lang=`` if offered, else the best Accept-Language match.

    Matching is by exact tag first, then by primary subtag both ways (``de-AT``
    matches ``de``; ``pt`` matches ``pt-BR``), as browsers send regional tags.
    """
    offered = {tag.lower(): tag for tag in available}
    if explicit:
        chosen = offered.get(explicit.strip().lower())
        if chosen:
            return chosen
    for wanted in parse_accept_language(accept_language):
        if wanted == "*":
            break
        lowered = wanted.lower()
        if lowered in offered:
            return offered[lowered]
        primary = lowered.split("-")[0]
        for tag_lower, tag in offered.items():
            if tag_lower.split("-")[0] == primary:
                return tag
    return default if default in available or not available else available[0]


def _languages(values: Sequence[str], available: Sequence[str]) -> tuple[str, ...] | None:
    chosen: list[str] = []
    for value in values[:16]:
        tag = canonical_tag(value.strip())
        if tag is None or tag not in available:
            return None
        if tag not in chosen:
            chosen.append(tag)
    return tuple(chosen) or None


def _frequency(value: str) -> str | None:
    value = value.strip().lower()
    return value if value in FREQUENCIES else None


def parse_subscribe(
    email: str, languages: Sequence[str], frequency: str, available: Sequence[str]
) -> SubscribeForm | dict[str, str]:
    """The validated sign-up, or field name → what is wrong (shown next to the field).

    The address is checked by ``core.addresses``: an internationalised domain is
    accepted (and kept as its A-label), a local part that is not ASCII is not.
    """
    errors: dict[str, str] = {}
    address: Address | None = None
    try:
        # Checked as what it is, not as what a header parser would decode it into.
        address = parse_address(email)
    except NotAsciiError:
        errors["email"] = "email-ascii"  # its own message: why, and what to do instead
    except AddressError:
        errors["email"] = "email"
    langs = _languages(languages, available)
    if langs is None:
        errors["languages"] = "languages"
    freq = _frequency(frequency)
    if freq is None:
        errors["frequency"] = "frequency"
    if errors or address is None or langs is None or freq is None:
        return errors
    return SubscribeForm(address, langs, freq)


def parse_preferences(
    languages: Sequence[str], frequency: str, available: Sequence[str]
) -> tuple[tuple[str, ...], str] | None:
    langs, freq = _languages(languages, available), _frequency(frequency)
    return None if langs is None or freq is None else (langs, freq)


def language_choices(available: Sequence[str], chosen: Sequence[str]) -> list[str]:
    """The preferences page's languages: the chosen ones first, in preference order,
    then the rest of ``available``.

    A browser submits checked boxes in page order, so this order is what keeps a
    subscriber's preference order when they save without changing anything. A chosen
    language the site has no feed for (yet) is offered too: saving must not drop it.
    """
    return list(dict.fromkeys([*chosen, *available]))


def client_address(peer: str | None, headers: Mapping[str, str], trusted_proxies: int) -> str:
    """The client IP for rate limiting.

    ``X-Forwarded-For`` is only believed for the number of proxy hops the admin
    configured; otherwise anyone could pick a fresh address per request and dodge
    the per-client limit.
    """
    if trusted_proxies > 0:
        hops = [h.strip() for h in headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        if len(hops) >= trusted_proxies:
            return hops[-trusted_proxies]
    return peer or "unknown"
