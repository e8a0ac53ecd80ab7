"""Which sections and keys ``statement-feeds.toml`` may hold, checked before any value.

:data:`SECTIONS` is the one list of what the code reads: ``config_reader.Reader`` refuses to read
a key that is not declared here, so a new key cannot be added to the code and forgotten
here (every test that loads a configuration would fail). Anything else in the file is a
:class:`ConfigError` naming the file, the line, the dotted key and the nearest known key:
a typo silently ignored would leave the default in force without anyone noticing.

The check runs before the values are read so that a key in the wrong section is named as
such, not reported as a confusing "required" error for the section it was meant for.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["LANGUAGE_KEYS", "NOT_YET_SUPPORTED", "SECTIONS", "check_keys", "line_of"]

SECTIONS: Mapping[str, frozenset[str]] = {
    "site": frozenset(
        {"title", "url", "feeds_url", "author", "default_language", "timezone", "id_base"}
    ),
    "paths": frozenset({"statements", "templates", "subscribers", "output", "state", "outbox"}),
    "feeds": frozenset({"max_entries", "excerpt_words", "max_statement_bytes", "websub_hubs"}),
    "digest": frozenset(
        {
            "from",
            "daily",
            "weekly",
            "max_age",
            "misfire_grace",
            "unsubscribe_mailto",
            "retry_lifetime",
            "bounce_address",
            "bounce_threshold",
            "bounce_mailbox",
            "corrections",
        }
    ),
    # password: known so that config._smtp refuses it with its own message (secrets come
    # from the environment), rather than it being called a typo.
    "smtp": frozenset(
        {"host", "port", "security", "username", "password", "concurrency", "timeout"}
    ),
    "http": frozenset({"listen", "public_url"}),
    "state": frozenset({"url", "lease"}),
    "pages": frozenset({"enabled", "per_page"}),
}

# [languages.<tag>]: one table per language tag (the tags are checked by config.py).
LANGUAGE_KEYS = frozenset({"title"})

# In the December 2026 contract (DESIGN.md) but not implemented by this version. Someone
# who sets them expects the feature: they are refused with that said plainly, neither
# ignored nor called typos. A section name alone stands for every key in it. Move a key
# to SECTIONS when it is built. Every key of the contract is built now.
NOT_YET_SUPPORTED: frozenset[str] = frozenset()
_CONTRACT_ONLY_SECTIONS: dict[str, frozenset[str]] = {}


def check_keys(raw: Mapping[str, Any], text: str, path: str) -> None:
    """Raise :class:`ConfigError` for the first section or key (by line) the code does not
    know; tomllib's tables come in first-mention order, not quite the file's."""
    found = [(line_of(text, dotted.split(".")), dotted, why) for dotted, why in _problems(raw)]
    if found:
        line, dotted, why = min(found, key=lambda p: (p[0] is None, p[0] or 0))
        raise ConfigError(why, path=path, key=dotted, line=line)


def _problems(raw: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(dotted key, message) for every unknown or unsupported name."""
    for section, table in raw.items():
        if section in NOT_YET_SUPPORTED:
            yield section, _not_yet(f"the [{section}] section")
        elif section == "languages":
            yield from _language_problems(table)
        elif section in SECTIONS or section in _CONTRACT_ONLY_SECTIONS:
            if isinstance(table, dict):  # not a table: config.py says so
                yield from _key_problems(section, table)
        elif isinstance(table, dict):
            yield section, _unknown_section(section)
        else:  # `key = value` above every section header
            yield section, f"a key outside every section{_hint(_suggest('', section))}"


def _key_problems(section: str, table: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    known = SECTIONS.get(section) or _CONTRACT_ONLY_SECTIONS[section]
    for key in table:
        dotted = f"{section}.{key}"
        if dotted in NOT_YET_SUPPORTED:
            yield dotted, _not_yet(f"`{dotted}`")
        elif key not in known:
            yield dotted, f"unknown key in [{section}]{_hint(_suggest(section, key))}"


def _language_problems(languages: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(languages, dict):
        return  # config.py reports it
    for tag, table in languages.items():
        if not isinstance(table, dict):
            continue  # config.py: "must be a table named by a BCP 47 language tag"
        for key in table:
            if key not in LANGUAGE_KEYS:
                close = difflib.get_close_matches(key, sorted(LANGUAGE_KEYS), n=1)
                hint = _hint(f"languages.{tag}.{close[0]}" if close else None)
                yield f"languages.{tag}.{key}", f"unknown key in [languages.{tag}]{hint}"


def _suggest(section: str, key: str) -> str | None:
    """The nearest known dotted key: the same name in another section first (a key put in
    the wrong section), then a close name in this section, then anywhere."""
    for other, keys in SECTIONS.items():
        if key in keys and other != section:
            return f"{other}.{key}"
    own = SECTIONS.get(section) or _CONTRACT_ONLY_SECTIONS.get(section, frozenset())
    close = difflib.get_close_matches(key, sorted(own), n=1)
    if close:
        return f"{section}.{close[0]}"
    everywhere = sorted(f"{s}.{k}" for s, keys in SECTIONS.items() for k in keys)
    close = difflib.get_close_matches(f"{section}.{key}", everywhere, n=1)
    return close[0] if close else None


def _unknown_section(section: str) -> str:
    names = sorted([*SECTIONS, "languages", *_CONTRACT_ONLY_SECTIONS])
    close = difflib.get_close_matches(section, names, n=1)
    if close:
        return f"unknown section; did you mean `[{close[0]}]`?"
    return "unknown section; the sections are " + ", ".join(f"[{n}]" for n in names)


def _hint(suggestion: str | None) -> str:
    return f"; did you mean `{suggestion}`?" if suggestion else ""


def _not_yet(what: str) -> str:
    return (
        f"{what} is part of the statement-feeds contract but not supported by this "
        "version yet; remove it"
    )


# A [table] or [[array]] header, and the key of a `key = value` line (bare, quoted, dotted).
_HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_NAME = r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'"""
_KEY = re.compile(rf"^\s*((?:{_NAME})(?:\s*\.\s*(?:{_NAME}))*)\s*=(.*)$")
_PART = re.compile(_NAME)


def line_of(text: str, target: list[str]) -> int | None:
    """The 1-based line that defines ``target`` (or a key under it), found by scanning
    the text: tomllib gives no positions. Headers, dotted keys and one-line inline tables
    (``feeds = { excerpt_word = 3 }``) are understood; anything else gives None."""
    table: list[str] = []
    for number, line, in_string in _lines(text):
        if in_string:
            continue
        header = _HEADER.match(line)
        if header:
            table = _parts(header.group(1))
            if table[: len(target)] == target:
                return number
            continue
        assignment = _KEY.match(line)
        if assignment is None:
            continue
        full = table + _parts(assignment.group(1))
        if full[: len(target)] == target or _inline(full, target, assignment.group(2)):
            return number
    return None


def _lines(text: str) -> Iterator[tuple[int, str, bool]]:
    """(number, line, inside a multi-line string) so a string's lines are not read as keys."""
    inside = False
    for number, line in enumerate(text.splitlines(), start=1):
        yield number, line, inside
        for quotes in ('"""', "'''"):
            if line.count(quotes) % 2:
                inside = not inside


def _parts(dotted: str) -> list[str]:
    return [part.strip("\"'") for part in _PART.findall(dotted)]


def _inline(full: list[str], target: list[str], value: str) -> bool:
    """Whether ``target`` is a key inside the inline table assigned to ``full``."""
    if len(full) >= len(target) or target[: len(full)] != full or "{" not in value:
        return False
    return (
        re.search(rf"[{{,]\s*[\"']?{re.escape(target[len(full)])}[\"']?\s*[.=]", value) is not None
    )
