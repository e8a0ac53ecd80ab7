"""One planned page (``domain.pages.Page``) → HTML bytes, with the jinja2 templates.

The templates are ``pages/base.html``, ``pages/chooser.html``, ``pages/index.html`` and
``pages/statement.html``: the package's, each replaceable by a file of the same name in
the site's ``paths.templates`` (``template_files``). :class:`PageRenderer` is what the
build's render jobs call (in worker processes too): it holds only picklable settings,
and each process compiles the templates once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from babel.core import get_global
from markupsafe import Markup

from .. import __version__
from ..domain.i18n import Messages, Translations, native_name
from ..domain.pages import CHOOSER, INDEX, STATEMENT, Page, PageSettings
from ..domain.statements import Statement
from ..domain.template_env import template_environment
from ..locales import load_translations, po_sources
from ..template_files import template_loader

__all__ = [
    "TEMPLATES",
    "PageRenderer",
    "TemplateFailure",
    "demote_headings",
    "og_locale",
    "page_context",
    "page_environment",
    "templates_version",
]

TEMPLATES = {
    CHOOSER: "pages/chooser.html",
    INDEX: "pages/index.html",
    STATEMENT: "pages/statement.html",
}
_BASE = "pages/base.html"
_DESCRIPTION = 300  # characters of the excerpt in description and card tags


class TemplateFailure(Exception):
    """A page template failed: the message names the template (picklable, so that a
    worker process can send it back)."""

    def __init__(self, message: str, name: str = "") -> None:
        super().__init__(message, name)
        self.message = message
        self.name = name

    def __str__(self) -> str:
        return self.message


def templates_version(folder: Path) -> str:
    """The package version, its catalogs and the bytes of the site's own page templates:
    any change to these changes every page's fingerprint."""
    digest = hashlib.blake2b(__version__.encode(), digest_size=16)
    for lang, source in sorted(po_sources().items()):  # the pages' labels
        digest.update(lang.encode() + b"\0" + source + b"\0")
    for name in [_BASE, *TEMPLATES.values()]:
        path = folder / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class PageRenderer:
    """Renders pages of one site; meets ``render.Renderer``."""

    folder: Path  # the site's templates folder (over the package's defaults)

    def render(
        self, document: Page, settings: PageSettings, html: Callable[[Statement], str]
    ) -> bytes:
        name = TEMPLATES[document.kind]
        try:
            template = page_environment(self.folder, settings.version).get_template(name)
            text = template.render(**page_context(document, settings, html))
        except Exception as exc:  # a template can raise anything when rendered
            raise TemplateFailure(_describe(exc), name) from exc
        return text.encode("utf-8")


@lru_cache(maxsize=4)
def page_environment(folder: Path, version: str) -> jinja2.Environment:
    """The templates of ``folder`` as they were at ``version`` (``templates_version``):
    a daemon's next build after a template was saved compiles it anew."""
    env = template_environment(template_loader(folder))
    env.auto_reload = False  # one build, one version of each template
    return env


@lru_cache(maxsize=4)
def _translations(default_language: str) -> Translations:
    return load_translations(default_language)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, jinja2.TemplateError):
        return exc.message or str(exc)
    return f"{type(exc).__name__}: {exc}"


def page_context(
    page: Page, settings: PageSettings, html: Callable[[Statement], str]
) -> dict[str, Any]:
    messages = _translations(settings.default_language).for_language(page.lang)
    languages = page.languages
    context: dict[str, Any] = {
        "page": page,
        "_": messages.text,
        "site_title": settings.site_title,
        "site_url": settings.site_url,
        "home_url": settings.site_url
        if page.kind == CHOOSER
        else f"{settings.site_url}{page.lang}/",
        "description": _cut(" ".join(page.description.split()), _DESCRIPTION),
        "og_locale": og_locale(page.lang),
        "og_alternates": sorted(
            {og_locale(link.lang) for link in page.alternates} - {og_locale(page.lang)}
        ),
        "language_links": [_link(link.lang, link.url, link.title) for link in languages],
        "feeds": [
            {"lang": link.lang, "url": f"{settings.feeds_url}{link.lang}.atom", "title": link.title}
            for link in (languages if page.kind == CHOOSER else ())
        ]
        or [{"lang": page.lang, "url": page.feed_url, "title": _title(settings, page.lang)}],
        "subscribe_url": _subscribe(settings.subscribe_url, page.lang),
    }
    if page.kind == INDEX:
        context["entries"] = [_entry(s, messages) for s in page.entries]
    elif page.kind == STATEMENT and page.statement is not None:
        context.update(_statement(page, page.statement, messages, html, settings))
    return context


def _statement(
    page: Page,
    statement: Statement,
    messages: Messages,
    html: Callable[[Statement], str],
    settings: PageSettings,
) -> dict[str, Any]:
    corrected = statement.updated.date() > statement.published.date()
    return {
        "statement": {
            "title": statement.title,
            "author": statement.author,
            "date": _date(messages, statement.published.date()),
            "iso_published": statement.published.isoformat(),
            "iso_updated": statement.updated.isoformat(),
            "corrected": _date(messages, statement.updated.date()) if corrected else "",
            # Sanitised when it was rendered for the feed (domain.sanitizing).
            "content": Markup(demote_headings(html(statement))),
        },
        "translations": [
            _link(link.lang, link.url, link.title)
            for link in page.alternates
            if link.lang != statement.lang
        ],
        "list_url": f"{settings.site_url}{statement.lang}/",
    }


_HEADING = re.compile(r"<(/?)h([1-6])(?=[\s>])")


def demote_headings(html: str) -> str:
    """The content's headings one level down (``h1`` → ``h2``, ``h6`` stays): the page's
    ``h1`` is the statement's title, so its body's ``# Heading`` is a section of it."""
    return _HEADING.sub(lambda m: f"<{m[1]}h{min(int(m[2]) + 1, 6)}", html)


def _entry(statement: Statement, messages: Messages) -> dict[str, Any]:
    return {
        "title": statement.title,
        "url": statement.url,
        "date": _date(messages, statement.published.date()),
        "iso_date": statement.published.date().isoformat(),
        "paragraphs": [p.strip() for p in re.split(r"\n\s*\n", statement.summary) if p.strip()],
    }


def _link(lang: str, url: str, title: str) -> dict[str, str]:
    return {"lang": lang, "url": url, "title": title, "name": _native_name(lang)}


@lru_cache(maxsize=256)
def _native_name(lang: str) -> str:
    return native_name(lang)  # babel parses the locale each time: once per tag here


@lru_cache(maxsize=4096)
def _date(messages: Messages, day: date) -> str:
    return messages.date(day)


def _title(settings: PageSettings, lang: str) -> str:
    return settings.language_titles.get(lang, settings.site_title)


def _subscribe(url: str, lang: str) -> str:
    return f"{url}?lang={lang}" if url else ""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@lru_cache(maxsize=256)
def og_locale(tag: str) -> str:
    """OpenGraph's ``language_TERRITORY`` for a tag: ``ru`` → ``ru_RU``, ``en`` → ``en_US``."""
    parts = tag.replace("-", "_").split("_")
    likely = get_global("likely_subtags").get(parts[0], "")
    territory = next((p for p in parts[1:] if len(p) == 2 and p.isalpha()), None)
    if territory is None:
        territory = next((p for p in likely.split("_")[1:] if len(p) == 2 and p.isupper()), "")
    return f"{parts[0].lower()}_{territory.upper()}" if territory else parts[0].lower()
