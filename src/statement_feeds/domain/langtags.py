"""BCP 47 language tags: well-formedness check and canonical case (RFC 5646 section 2.1.1)."""

from __future__ import annotations

import re

__all__ = ["canonical_tag", "is_language_suffix"]

# Well-formed tag grammar (RFC 5646 2.1), without the irregular grandfathered tags,
# which are deprecated and never needed for a new publication. Primary language
# subtags of 4 letters (reserved) and 5-8 letters (none registered) are refused:
# they are well-formed but never valid, and "english" or "russian" is a typo to report.
_TAG = re.compile(
    r"""^
    (?:(?P<lang>[a-z]{2,3}(?:-[a-z]{3}){0,3})
       (?:-(?P<script>[a-z]{4}))?
       (?:-(?P<region>[a-z]{2}|[0-9]{3}))?
       (?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*
       (?:-[0-9a-wy-z](?:-[a-z0-9]{2,8})+)*
       (?:-x(?:-[a-z0-9]{1,8})+)?
     |x(?:-[a-z0-9]{1,8})+)
    $""",
    re.VERBOSE,
)
# A file-name suffix is taken as a language only when it looks like a common tag
# ("ru", "pt-br", "zh-hant"), so that "report.final.md" is not read as language "final".
_SUFFIX = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")


def canonical_tag(tag: str) -> str | None:
    """Return ``tag`` in canonical case (``pt-BR``, ``zh-Hant``) or None if malformed."""
    lowered = tag.strip().lower().replace("_", "-")
    match = _TAG.match(lowered)
    if match is None:
        return None
    parts = lowered.split("-")
    script = _script_index(parts)
    out = [parts[0]]
    # Everything after the first singleton (extensions, "x-" private use) stays lower
    # case, even "-x-ab" where "ab" looks like a region (RFC 5646 2.1.1).
    in_extension = len(parts[0]) == 1
    for index, part in enumerate(parts[1:], start=1):
        in_extension = in_extension or len(part) == 1
        if in_extension:
            out.append(part)
        elif len(part) == 2 and part.isalpha():
            out.append(part.upper())  # region
        else:
            out.append(part.title() if index == script else part)
    return "-".join(out)


def _script_index(parts: list[str]) -> int:
    for index, part in enumerate(parts[1:], start=1):
        if len(part) == 4 and part.isalpha():
            return index
        if len(part) != 3:
            break
    return -1


def is_language_suffix(suffix: str) -> bool:
    """True when a file-name suffix such as ``ru`` or ``pt-BR`` should be read as a language."""
    return bool(_SUFFIX.match(suffix.lower())) and canonical_tag(suffix) is not None
