"""Front-matter values checked one key at a time: a value, or a Problem on its line.

Pure. Messages say what is wrong and how to fix it; a value that is not the
expected type is named by its type, never printed whole (see :func:`shown`).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

from .langtags import canonical_tag
from .problems import Problem

__all__ = ["IRI_CHARS", "Checker", "on_site", "shown"]

# RFC 3987: characters never allowed in an IRI (feed validators flag them in ids and links).
IRI_CHARS = r"[^\s<>\"{}|\\^`]"
_HTTP_IRI = re.compile(rf"https?://[^\s/<>\"{{}}|\\^`]+{IRI_CHARS}*")
_REFUSED = ("Cc", "Cf", "Zl", "Zp")  # character categories a title may not contain
_ORIGIN = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*")


def shown(value: Any) -> str:
    """A value for a message. Never repr() a list or mapping: through YAML aliases
    ("billion laughs") its text form can be exponentially big."""
    if isinstance(value, str | int | float | bool | date):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return f"a {type(value).__name__}"


def on_site(site_url: str, path: str) -> str:
    """``urljoin(site_url, path)`` for a path starting with one "/": the host of
    ``site_url`` with ``path``, its "." and ".." segments resolved. Written out because
    the domain imports no urllib (tests check it against urljoin)."""
    match = _ORIGIN.match(site_url)
    origin = match.group(0) if match else site_url.rstrip("/")
    end = min((i for i in (path.find("?"), path.find("#")) if i >= 0), default=len(path))
    return origin + _without_dot_segments(path[:end]) + path[end:]


def _without_dot_segments(path: str) -> str:
    """ "/a/../b/./c" → "/b/c", step for step as urljoin resolves an absolute path (a
    ".." may take the root's empty segment too: "/..//a" is "/a")."""
    segments = path.split("/")
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):  # "/a/.." is "/": the trailing slash stays
        kept.append("")
    joined = "/".join(kept)
    return joined if joined.startswith("/") else "/" + joined


def _to_datetime(value: Any, tz: tzinfo) -> datetime:
    """A YAML date value as an aware datetime: a date alone is 00:00 in ``tz``, and so
    is a time without offset. Raises ValueError saying what is wrong."""
    if isinstance(value, datetime):  # an explicit "!!timestamp" tag
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tz)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # 20200826: the ISO 8601 basic format, read by YAML as a number
    if not isinstance(value, str):
        raise ValueError(shown(value))  # never str() it: see shown
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.combine(date.fromisoformat(text), time(0), tz)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError as exc:
        raise ValueError(f"{text!r} ({exc})") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


class Checker:
    """Validates front-matter values, recording a Problem per bad key."""

    def __init__(self, source: str, lines: dict[str, int], problems: list[Problem]) -> None:
        self.source = source
        self.lines = lines
        self.problems = problems

    def fail(self, key: str, message: str, hint: str) -> None:
        self.problems.append(Problem(self.source, message, hint, self.lines.get(key)))

    def title(self, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            self.fail("title", "missing or empty 'title'", "add 'title: ...' to the front matter")
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.fail("title", "'title' must be plain text", 'quote it: title: "..."')
            return None
        text = str(value).strip()
        # isprintable() is False for every Cc, Cf, Zl and Zp character (and for some
        # harmless ones, e.g. a no-break space): a quick pass in C before the careful
        # one. Zl/Zp are U+2028/U+2029, line breaks as much as "\n" is.
        bad = None
        if not text.isprintable():
            bad = next(
                (
                    c
                    for c in text
                    if unicodedata.category(c) in _REFUSED and c not in "\u200d\u200c"
                ),
                None,
            )
        if bad is not None:
            what = (
                "a line break"
                if bad in "\n\r\u2028\u2029\x85"
                else f"control character U+{ord(bad):04X}"
            )
            self.fail("title", f"'title' contains {what}", "a title is one line of plain text")
            return None
        return text

    def moment(self, key: str, value: Any, tz: tzinfo, *, required: bool) -> datetime | None:
        if value is None:
            if required:
                self.fail(
                    key, f"missing '{key}'", f"add '{key}: YYYY-MM-DD' (or an ISO 8601 date-time)"
                )
            return None
        hint = "use an ISO 8601 date like 2020-08-26 or 2020-08-26T09:30:00+01:00"
        try:
            moment = _to_datetime(value, tz)
        except ValueError as exc:
            self.fail(key, f"'{key}' is not a valid date: {exc}", hint)
            return None
        try:
            moment.astimezone(UTC)  # feeds and digests work in UTC: year 1 or 9999 may not fit
        except OverflowError:
            self.fail(key, f"'{key}' is out of range: {moment.isoformat()}", hint)
            return None
        return moment

    def language(self, value: Any, default: str) -> str | None:
        if value is None:
            return default
        tag = canonical_tag(str(value)) if isinstance(value, str) else None
        if tag is None:
            self.fail(
                "lang",
                f"'lang' is not a BCP 47 language tag: {shown(value)}",
                "e.g. en, ru, pt-BR",
            )
        return tag

    def text(self, key: str, value: Any, default: str, *, multiline: bool = False) -> str:
        if value is None:
            return default
        if (
            not isinstance(value, str | int | float)
            or isinstance(value, bool)
            or not str(value).strip()
        ):
            self.fail(key, f"'{key}' must be non-empty text", f"remove '{key}' or give it a value")
            return default
        text = str(value).strip()
        if not multiline and "\n" in text:
            self.fail(key, f"'{key}' must be one line", "remove the line break")
        return text

    def url(self, value: Any, site_url: str) -> str:
        """An absolute http(s) URL, or a site-relative path (``/ru/x/``, as Hugo and
        Jekyll front matter has it) joined to ``site_url`` with urljoin's rules (see
        :func:`on_site`): the path is host-absolute, so under ``https://example.org/org/``
        ``/ru/x/`` is ``https://example.org/ru/x/``, as it is in the site's own links."""
        if value is None:
            return ""
        text = value.strip() if isinstance(value, str) else ""
        if text.startswith("//"):  # scheme-relative: another host, by whatever scheme
            self.fail(
                "url",
                f"'url' may not start with '//' (another host), got {shown(value)}",
                "write the full URL, e.g. https://example.org/en/x/, or a path like /en/x/",
            )
            return ""
        if text.startswith("/"):
            text = on_site(site_url, text)
        if not _HTTP_IRI.fullmatch(text):
            self.fail(
                "url",
                "'url' must be an absolute http(s) URL or a path starting with '/',"
                f" got {shown(value)}",
                "e.g. https://example.org/en/x/ or /en/x/ (joined to site.url)",
            )
            return ""
        return text

    def flag(self, key: str, value: Any) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            self.fail(
                key, f"'{key}' must be true or false, got {shown(value)}", f"write '{key}: true'"
            )
            return False
        return value
