"""A problem found in user input: reported, never fatal to the rest of the work."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Problem"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One defect in one input file.

    ``source`` is the path as the user knows it (relative to the folder it was
    found in), ``line`` is 1-based when known, ``hint`` says how to fix it.
    ``incomplete`` marks a problem that hid an unknown part of the input (a folder
    that could not be listed): publishing then would silently drop statements.
    """

    source: str
    message: str
    hint: str = ""
    line: int | None = None
    incomplete: bool = False

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        text = f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text
