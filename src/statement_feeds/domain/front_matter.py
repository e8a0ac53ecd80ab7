"""Front matter: a statement file's bytes → its header fields (with line numbers) and body.

Pure, like the rest of the domain. Most headers are plain "key: text" lines, read by a
fast path; anything else goes to the YAML safe loader. Both read the same values.
An unreadable file raises :class:`Invalid` with the one problem that stops it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from .problems import Problem

__all__ = [
    "KNOWN_KEYS",
    "Invalid",
    "decode",
    "load_yaml",
    "simple_front_matter",
    "split_front_matter",
]

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FrontMatterLoader(_Loader):  # type: ignore[misc]
    """Safe loader that leaves dates as strings: we parse them with better errors."""


class _Resolver(yaml.resolver.Resolver):
    """Types of plain values, as the loader resolves them (for the fast path)."""


_FrontMatterLoader.yaml_implicit_resolvers = _Resolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}
_resolve: Callable[..., str] = _Resolver().resolve  # (kind, value, implicit) -> tag

KNOWN_KEYS = frozenset(
    {
        "title",
        "date",
        "lang",
        "url",
        "translation_key",
        "id",
        "updated",
        "summary",
        "author",
        "draft",
    }
)


class Invalid(Exception):
    """The file cannot be read as a statement at all (one problem says why)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def decode(source: str, data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise Invalid(
            Problem(
                source,
                f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                "save the file as UTF-8",
                line,
            )
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_front_matter(source: str, text: str) -> tuple[str, str]:
    opening = re.match(r"---[ \t]*\n", text)
    if opening is None:
        raise Invalid(
            Problem(
                source,
                "no front matter",
                "start the file with a line '---', then 'title:' and 'date:', then '---'",
                1,
            )
        )
    start = opening.end()
    closing = re.search(r"^---[ \t]*$", text[start:], re.MULTILINE)
    if closing is None:
        raise Invalid(
            Problem(source, "front matter is not closed", "add a line '---' after the last key", 1)
        )
    return text[start : start + closing.start()], text[start + closing.end() :].lstrip("\n")


# The front matter nearly every statement has: lines "key: value" with a known key at
# the start of the line, and a value YAML reads as a string: double- or single-quoted
# without escapes, or plain (no indicator first, no " #", no ": ", nothing YAML would
# take as a comment, a flow or block structure, or a line break). Anything else, even
# a blank line, goes to the YAML loader; so does a plain value YAML resolves to another
# type (true, 12, null). Building a YAML parser and its nodes was a third of parsing a
# statement; these lines read the same either way (tests/domain/test_front_matter.py).
_SIMPLE_LINE = re.compile(
    rf"({'|'.join(sorted(KNOWN_KEYS))}): +"
    r"""(?:"([^"\\]*)"|'([^']*)'"""
    r"""|([^\s\-?:,\[\]{}#&*!|>'"%@`](?:[^\s:#]|:(?=\S)| +(?=[^\s#]))*)) *"""
)
# Characters the fast path leaves to YAML: line breaks other than "\n" (YAML 1.1 has
# four more), tabs, byte order marks, and what YAML refuses to read (C0 and C1
# controls, U+FFFE, U+FFFF, surrogates). Listed rather than the allowed ranges
# negated, which took 3 ms to compile at every process start.
_NOT_FAST = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
_STR_TAG = "tag:yaml.org,2002:str"
_IMPLICIT = (True, False)  # a plain scalar: its type is resolved from its text


def simple_front_matter(header: str) -> tuple[dict[str, Any], dict[str, int]] | None:
    """The front matter when every line is a plain "key: text" line; None otherwise."""
    if not header.endswith("\n") or _NOT_FAST.search(header):
        return None
    fields: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(header[:-1].split("\n"), start=2):  # after "---"
        match = _SIMPLE_LINE.fullmatch(line)
        if match is None:
            return None
        key, double, single, plain = match.groups()
        if plain is not None and _resolve(yaml.ScalarNode, plain, _IMPLICIT) != _STR_TAG:
            return None  # true, 12, null...: YAML's own types and messages
        fields[key] = double if double is not None else single if single is not None else plain
        lines[key] = number
    return fields, lines


def load_yaml(source: str, header: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Load the front matter; also return each top-level key's line in the file."""
    try:
        loader = _FrontMatterLoader(header)
        try:
            node = loader.get_single_node()
            value = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as exc:  # a raw control character: no mark, a position
        raise Invalid(
            Problem(
                source,
                f"invalid YAML in front matter: control character U+{exc.character:04X}",
                "remove the invisible character from that line",
                header[: exc.position].count("\n") + 2,
            )
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise Invalid(
            Problem(
                source,
                f"invalid YAML in front matter: {reason}",
                "check quoting and indentation",
                line,
            )
        ) from None
    except (ValueError, TypeError) as exc:  # constructor errors outside YAMLError
        raise Invalid(
            Problem(source, f"invalid front matter: {exc}", "check the values", None)
        ) from None
    if not isinstance(value, dict):
        raise Invalid(
            Problem(
                source, "front matter must be 'key: value' lines", "e.g. 'title: My statement'", 2
            )
        )
    lines = {}
    if node is not None:
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):  # +1 for "---", +1 for 1-based
                lines[str(key_node.value)] = key_node.start_mark.line + 2
    return {str(k): v for k, v in value.items()}, lines
