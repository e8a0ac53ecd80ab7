"""The web side's templates: compiled and checked before use, swapped whole on reload.

jinja2's ``FileSystemLoader`` re-reads a template whose file changed, at the next
render: a broken ``web/home.html`` saved on disk became a 500 on the next visit,
whatever SIGHUP said. Here every template is loaded once, rendered with sample
data (which catches unknown filters and variables as well as syntax errors), and
only then used, from memory, until the next successful :meth:`PageTemplates.load`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2

from ..config import Config
from ..domain.digest import template_environment
from ..domain.i18n import Translations
from ..locales import load_translations
from ..template_files import template_error, template_loader

__all__ = ["PAGES", "PageTemplates", "load_pages"]

PAGES = (
    "web/home.html",
    "web/notice.html",
    "web/confirm.html",
    "web/unsubscribe.html",
    "web/preferences.html",
    "confirm.txt",  # the confirmation email
)

Translate = Callable[..., str]


class PageTemplates:
    """The compiled templates of :data:`PAGES` (and what they extend)."""

    def __init__(self, templates: Mapping[str, jinja2.Template]) -> None:
        self._templates = dict(templates)

    @classmethod
    def load(cls, folder: Path, translate: Translate, config_path: Path) -> PageTemplates:
        """Compile and try every page (the site's ``folder`` over the package's defaults);
        :class:`ConfigError` naming file and line if any fails (``translate`` is the
        default language's ``Messages.text``)."""
        env = template_environment(template_loader(folder))
        # Never look at the files again: a template saved later is used only once a
        # new load() has checked it (base.html, loaded while rendering, stays cached).
        env.auto_reload = False
        name = PAGES[0]
        try:
            templates = {}
            for name in PAGES:
                templates[name] = template = env.get_template(name)
                for context in _samples(name, translate):
                    template.render(**context)
        except Exception as exc:  # a template can raise anything when rendered
            raise template_error(exc, name, folder, config_path) from None
        return cls(templates)

    def render(self, name: str, **context: Any) -> str:
        return self._templates[name].render(**context)


def load_pages(config: Config, translations: Translations | None = None) -> PageTemplates:
    """The pages' templates as ``config`` names them, checked (see :meth:`PageTemplates.load`)."""
    default = config.site.default_language
    translations = translations or load_translations(default)
    translate = translations.for_language(default).text
    return PageTemplates.load(config.paths.templates, translate, config.path)


def _samples(name: str, translate: Translate) -> list[dict[str, Any]]:
    """Contexts like the ones ``web.WebService`` renders ``name`` with (keep in step)."""
    base = {
        "lang": "en",
        "_": translate,
        "site_title": "Sample site",
        "site_url": "https://example.org/",
        "language_names": {"en": "English", "ru": "Русский"},
    }
    token, url = "sample.token", "https://example.org/newsletter/preferences?token=sample"
    pages: dict[str, list[dict[str, Any]]] = {
        "web/home.html": [
            {
                "feeds": [{"lang": "en", "url": "https://example.org/feeds/en.atom", "name": "En"}],
                "entries": [
                    {
                        "title": "A statement",
                        "url": "https://example.org/en/a/",
                        "date": "1 January 2024",
                        "iso_date": "2024-01-01",
                        "paragraphs": ["One.", "Two."],
                        "language_note": note,
                    }
                ],
                "entries_lang": "en",
                "csrf": token,
                "errors": errors,
                "values": {"email": "a@example.org", "languages": ["en"], "frequency": "weekly"},
                "languages": ["en", "ru"],
            }
            for errors, note in (
                ({}, ""),
                (
                    {"csrf": "csrf", "email": "email", "languages": "l", "frequency": "f"},
                    "(English)",
                ),
            )
        ],
        "web/notice.html": [
            {"heading": "Heading", "text": "Text."},
            {"heading": "Heading", "text": "Text.", "preferences_url": url},
        ],
        "web/confirm.html": [{"token": token}],
        "web/unsubscribe.html": [
            {"token": token, "email": "a@example.org", "preferences_url": url}
        ],
        "web/preferences.html": [
            {
                "token": token,
                "email": "a@example.org",
                "languages": ["ru", "en"],
                "chosen": ["ru"],
                "frequency": frequency,
                "csrf": token,
                "saved": saved,
            }
            for frequency, saved in (("daily", False), ("weekly", True))
        ],
        "confirm.txt": [{"confirm_url": "https://example.org/newsletter/confirm", "hours": 48}],
    }
    return [{**base, **context} for context in pages[name]]
