"""The bundled gettext catalogs (``<lang>.po``), read from the package at run time.

``.po`` sources are parsed directly (``core.i18n.parse_po``): there is no compile
step that a build or CI could forget, and no ``.mo`` file to get stale.
"""

from __future__ import annotations

from importlib import resources

from ..domain.i18n import Translations

__all__ = ["load_translations", "po_sources"]


def po_sources() -> dict[str, bytes]:
    """``{"ru": b"...", ...}`` for every ``<lang>.po`` shipped with the package."""
    folder = resources.files(__package__)
    return {
        entry.name.removesuffix(".po"): entry.read_bytes()
        for entry in folder.iterdir()
        if entry.name.endswith(".po") and entry.is_file()
    }


def load_translations(default_language: str) -> Translations:
    return Translations.from_po(po_sources(), default_language)
