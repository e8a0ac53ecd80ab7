"""Subscriber lists: one CSV text → subscribers and problems (pure, streaming).

Contract (DESIGN.md): UTF-8 with a header row; columns ``email`` (required),
``name``, ``languages`` (preference order, spaces or commas), ``frequency``
(``daily`` | ``weekly``). A bad row is reported with file and line and skipped.

Parsing is a generator over the lines of a file so that a million-row list never
exists in memory at once (neither as text nor as objects). Duplicates across rows
and files are resolved by ``core.duplicates``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .addresses import AddressError, address_problem, canonical_email, email_key
from .langtags import canonical_tag
from .problems import Problem

__all__ = [
    "FREQUENCIES",
    "Subscriber",
    "email_key",
    "email_problem",
    "parse_subscribers",
]

FREQUENCIES = ("daily", "weekly")
KNOWN_COLUMNS = ("email", "name", "languages", "frequency")

_SPLIT_LANGUAGES = re.compile(r"[\s,]+")
# A line as a file opened with newline="" yields it: ended by CRLF, CR or LF only.
_CSV_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
# C0 and C1 controls and Unicode's line and paragraph separators: all of them end a
# line for str.splitlines, mail clients or JavaScript, so none may be in a name.
_NAME_BREAK = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, slots=True)
class Subscriber:
    # Canonical (core.addresses): as written, but an internationalised domain as its
    # A-label; compare with :func:`email_key`.
    email: str
    name: str
    languages: tuple[str, ...]  # canonical BCP 47 tags, most preferred first, never empty
    frequency: str  # "daily" | "weekly"
    source: str = field(default="", compare=False)  # file it came from
    line: int = field(default=0, compare=False)  # 1-based line of its row


def email_problem(email: str) -> str | None:
    """Why ``email`` is not a usable single recipient address, or None if it is."""
    return address_problem(email)


class _Row:
    """Column positions resolved once per file from its header."""

    def __init__(self, header: list[str]) -> None:
        names = [h.strip().lower() for h in header]
        self.width = len(names)
        self.email = names.index("email")
        self.name = names.index("name") if "name" in names else None
        self.languages = names.index("languages") if "languages" in names else None
        self.frequency = names.index("frequency") if "frequency" in names else None

    @staticmethod
    def cell(row: list[str], index: int | None) -> str:
        return row[index].strip() if index is not None and index < len(row) else ""


def parse_subscribers(
    source: str, text: str | Iterable[str], default_language: str
) -> Iterator[Subscriber | Problem]:
    """Each valid row as a :class:`Subscriber`, each bad one as a :class:`Problem`, in order.

    ``text`` is the whole file, or its lines with their line ends as the ``csv``
    module wants them (a file opened with ``newline=""``), so that a big file is
    streamed. Only CR, LF and CRLF end a line: never ``str.splitlines``, which also
    splits at U+2028, U+0085 and five more, so a name holding one became a row.
    Line numbers are physical lines: a quoted field spanning lines counts them all.
    """
    lines = (m.group() for m in _CSV_LINE.finditer(text)) if isinstance(text, str) else text
    reader = csv.reader(_without_bom(lines), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        yield Problem(source, f"the header row is not valid CSV: {exc}", "fix the quoting", 1)
        return
    if header is None or "email" not in [h.strip().lower() for h in header]:
        yield Problem(
            source,
            "no 'email' column: the whole file was skipped",
            "the first row must name the columns, e.g. email,name,languages,frequency",
            1,
        )
        return
    parser = _RowParser(source, _Row(header), default_language)
    end = reader.line_num
    while True:
        start = end + 1
        try:
            row = next(reader, None)
        except csv.Error as exc:
            end = reader.line_num
            yield Problem(source, f"not valid CSV: {exc}", "fix the quoting of this row", start)
            continue
        end = reader.line_num
        if row is None:
            return
        if any(cell.strip() for cell in row):  # blank lines are harmless
            yield parser.parse(start, row)


def _without_bom(lines: Iterable[str]) -> Iterator[str]:
    """The lines with a BOM (from spreadsheet exports) removed from the first one."""
    iterator = iter(lines)
    first = next(iterator, None)
    if first is None:
        return
    yield first.removeprefix("\ufeff")
    yield from iterator


class _RowParser:
    def __init__(self, source: str, columns: _Row, default_language: str) -> None:
        self.source = source
        self.columns = columns
        self.default_language = default_language
        # Interned so that a million subscribers share a few dozen tuples (and
        # selection can precompute per distinct preference list).
        self.languages_cache: dict[str, tuple[str, ...] | str] = {}

    def problem(self, line: int, message: str, hint: str) -> Problem:
        return Problem(self.source, message, hint, line)

    def parse(self, line: int, row: list[str]) -> Subscriber | Problem:
        if len(row) > self.columns.width:
            # Usually an unquoted comma: every value after it moved one column on.
            return self.problem(
                line,
                f"{len(row)} columns, but the header names {self.columns.width}: "
                "the row was skipped",
                'quote values holding commas ("Smith, Ann") or remove the extra cells',
            )
        email = _Row.cell(row, self.columns.email)
        try:
            email = canonical_email(email)
        except AddressError as why:
            return self.problem(
                line, f"invalid address {email!r}: {why}", "correct or remove the row"
            )
        raw_languages = _Row.cell(row, self.columns.languages)
        languages = self.languages_cache.get(raw_languages)
        if languages is None:
            languages = _languages(raw_languages, self.default_language)
            self.languages_cache[raw_languages] = languages
        if isinstance(languages, str):
            return self.problem(line, languages, "use BCP 47 tags such as en, ru, pt-BR")
        frequency = _Row.cell(row, self.columns.frequency).lower() or "daily"
        if frequency not in FREQUENCIES:
            return self.problem(
                line, f"unknown frequency {frequency!r}", "use daily or weekly (or leave it empty)"
            )
        name = _Row.cell(row, self.columns.name)
        bad = _NAME_BREAK.search(name)
        if bad:
            return self.problem(
                line,
                f"a line break or control character (U+{ord(bad.group()):04X}) in the name",
                "write the name on one line, without control characters",
            )
        return Subscriber(email, name, languages, frequency, self.source, line)


def _languages(raw: str, default_language: str) -> tuple[str, ...] | str:
    """The canonical preference tuple, or the reason it is invalid."""
    tags: list[str] = []
    for part in _SPLIT_LANGUAGES.split(raw.strip()):
        if not part:
            continue
        tag = canonical_tag(part)
        if tag is None:
            return f"unknown language tag {part!r}"
        if tag not in tags:
            tags.append(tag)
    return tuple(tags) or (default_language,)
