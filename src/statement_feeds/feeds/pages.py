"""The HTML pages as another writer of the build: planned, rendered, written like the feeds.

``domain.pages.plan_pages`` says which pages exist and what each shows;
``page_render.PageRenderer`` renders one (in the build's worker processes, through
``render.render_all``, as the feeds are); files are written atomically and only when
their bytes change. Which pages the last build wrote is in the build cache (keys
``page:<path>``, with each page's fingerprint): an unchanged page is not rendered again,
and a page no longer planned (its statement removed, unpublished, or given its own
``url``; ``[pages] enabled = false``) is deleted, with folders left empty. Nothing else
in ``<output>`` is ever deleted. ``sitemap.xml`` (``sitemaps/<n>.xml`` for a big site) and
``robots.txt`` are written with them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ..config import Config
from ..domain.catalog import Catalog
from ..domain.pages import Page, PageSettings, page_fingerprints, plan_pages
from ..domain.sitemap import robots_txt, sitemap_files, sitemap_key
from ..domain.statements import Statement
from ..errors import ConfigError
from ..template_files import template_error
from .output import sync_folders, write_if_changed
from .page_render import (
    TEMPLATES,
    PageRenderer,
    TemplateFailure,
    page_context,
    page_environment,
    templates_version,
)
from .parse import ContentRef, SpoolReader
from .render import RenderJob, entry_content, render_all

__all__ = ["KEY_PREFIX", "PagesReport", "PagesStage", "page_settings"]

KEY_PREFIX = "page:"  # of the build cache's document keys for pages
# The cache entries of the files every site has beside its pages (and sitemaps/<n>.xml).
_EXTRAS = frozenset({KEY_PREFIX + "sitemap.xml", KEY_PREFIX + "robots.txt"})

Refs = Callable[[tuple[Statement, ...]], dict[str, ContentRef]]


@dataclass(slots=True)
class PagesReport:
    pages: int = 0
    written: list[str] = field(default_factory=list)  # relative to the output folder
    removed: list[str] = field(default_factory=list)


def page_settings(config: Config, parsed_with: str = "") -> PageSettings:
    site = config.site
    public = config.http.public_url
    return PageSettings(
        site_title=site.title,
        site_url=site.url,
        feeds_url=site.feeds_url,
        default_language=site.default_language,
        language_titles=dict(sorted(site.language_titles.items())),
        per_page=config.pages.per_page,
        # The sign-up form is the web side's start page: linked when it is served.
        subscribe_url=public if public and config.http.listen else "",
        version=templates_version(config.paths.templates),
        parsed_with=parsed_with,
    )


class PagesStage:
    """Writes the pages of one site (``Publisher`` runs it after the feeds)."""

    def __init__(self, config: Config, parsed_with: str = "") -> None:
        self.config = config
        self.parsed_with = parsed_with  # as FeedSettings.parsed_with
        self.renderer = PageRenderer(config.paths.templates)

    def run(
        self, catalog: Catalog, previous: Mapping[str, str], spool: str, refs: Refs
    ) -> tuple[dict[str, str], PagesReport]:
        """Write what changed, remove what went; the cache entries to keep."""
        output = self.config.paths.output
        report = PagesReport()
        if not self.config.pages.enabled:
            report.removed = _remove(output, _previous_paths(previous))
            return {}, report
        settings = page_settings(self.config, self.parsed_with)
        self._check_templates(settings.version)
        pages = plan_pages(catalog, settings)
        prints = page_fingerprints(pages, settings)
        fingerprints = {KEY_PREFIX + p.path: fp for p, fp in zip(pages, prints, strict=True)}
        root = os.path.join(output, "")  # ends with a separator
        jobs = [
            RenderJob(
                self.renderer,
                page,
                settings,
                self.config.paths.statements,
                refs((page.statement,)) if page.statement is not None else {},
                spool,
                output / page.path,
            )
            for page, fingerprint in zip(pages, prints, strict=True)
            if previous.get(KEY_PREFIX + page.path) != fingerprint
            or not os.access(root + page.path, os.F_OK)  # 10,000 of these: not isfile's stat
        ]
        try:
            written = render_all(jobs)
        except TemplateFailure as failure:
            raise self._template_error(failure, jobs) from None
        folders: set[Path] = set()  # of the extras below (render_all synced the pages')
        report.written = [
            job.document.path for job, done in zip(jobs, written, strict=True) if done
        ]
        fingerprints.update(self._extras(pages, settings, previous, folders=folders, report=report))
        sync_folders(folders)
        report.pages = len(pages)
        report.removed = _remove(output, _previous_paths(previous, keep=fingerprints))
        return fingerprints, report

    def _extras(
        self,
        pages: list[Page],
        settings: PageSettings,
        previous: Mapping[str, str],
        *,
        folders: set[Path],
        report: PagesReport,
    ) -> dict[str, str]:
        """The sitemaps and robots.txt, made again only when what they show changed
        (``sitemap_key``: not a statement's body or title), or a file is missing. Their
        cache entries hold that key: one that does not match (another key, an entry of
        an older version) makes them again."""
        output = self.config.paths.output
        key = sitemap_key(pages, settings.site_url, version=settings.version)
        split = KEY_PREFIX + "sitemaps/"
        before = {
            name: value
            for name, value in previous.items()
            if name in _EXTRAS or name.startswith(split)
        }
        if before.keys() >= _EXTRAS and all(
            value == key and (output / _path(name)).is_file() for name, value in before.items()
        ):
            return before
        files = {
            **sitemap_files(pages, settings.site_url),
            "robots.txt": robots_txt(settings.site_url),
        }
        for path, data in files.items():
            if write_if_changed(output / path, data, folders):
                report.written.append(path)
        return {KEY_PREFIX + path: key for path in files}

    def check(self, catalog: Catalog) -> None:
        """What ``check`` does for the pages: every template compiles, and renders one
        page of each kind from the catalog (nothing is written); ConfigError naming file
        and line otherwise."""
        if not self.config.pages.enabled:
            return
        settings = page_settings(self.config, self.parsed_with)
        self._check_templates(settings.version)
        samples: dict[str, Page] = {}
        for page in plan_pages(catalog, settings):
            samples.setdefault(page.kind, page)
        root = self.config.paths.statements
        for page in samples.values():
            job = RenderJob(self.renderer, page, settings, root, {}, "", Path(page.path))
            try:
                self.renderer.render(page, settings, partial(_content, root))
            except TemplateFailure as failure:
                raise self._template_error(failure, [job]) from None

    def _check_templates(self, version: str) -> None:
        """Every page template compiles (a syntax error names its file and line)."""
        folder = self.config.paths.templates
        env = page_environment(folder, version)
        for name in TEMPLATES.values():
            try:
                env.get_template(name)
            except Exception as exc:
                raise template_error(exc, name, folder, self.config.path) from None

    def _template_error(self, failure: TemplateFailure, jobs: list[RenderJob]) -> ConfigError:
        """The error of a template that failed while rendering, found again here (a worker
        process's traceback does not come back) so that it names file and line."""
        folder = self.config.paths.templates
        for job in jobs:
            if TEMPLATES[job.document.kind] != failure.name:
                continue
            try:
                page_environment(folder, job.settings.version).get_template(failure.name).render(
                    **_context_of(job, self.config.paths.statements)
                )
            except Exception as exc:
                return template_error(exc, failure.name, folder, self.config.path)
        return template_error(failure, failure.name, folder, self.config.path)


def _content(root: Path, statement: Statement) -> str:
    reader = SpoolReader("")  # no refs: never read; the content comes from the file
    return entry_content(root, {}, reader, statement)


def _context_of(job: RenderJob, root: Path) -> dict[str, object]:
    reader = SpoolReader(job.spool)
    try:
        return page_context(
            job.document,
            job.settings,
            lambda s: entry_content(root, job.refs, reader, s),
        )
    finally:
        reader.close()


def _path(key: str) -> str:
    return key.removeprefix(KEY_PREFIX)


def _previous_paths(previous: Mapping[str, str], keep: Container[str] = ()) -> list[str]:
    """The paths of the pages (and extras) the last build wrote, but for ``keep``'s keys."""
    return sorted(
        key.removeprefix(KEY_PREFIX)
        for key in previous
        if key.startswith(KEY_PREFIX) and key not in keep
    )


def _remove(output: Path, paths: list[str]) -> list[str]:
    """Delete the files of ``paths`` (regular files only, never outside ``output``), then
    the folders this leaves empty."""
    removed: list[str] = []
    for relative in paths:
        if not _safe(relative):
            continue
        path = output / relative
        if path.is_symlink() or not path.is_file():
            continue
        path.unlink()
        removed.append(relative)
        folder = path.parent
        while folder != output and folder.is_relative_to(output):
            with contextlib.suppress(OSError):  # not empty: something else lives there
                folder.rmdir()
            if folder.exists():
                break
            folder = folder.parent
    return removed


def _safe(relative: str) -> bool:
    parts = relative.split("/")
    return (
        not relative.startswith("/")
        and all(part not in ("", ".", "..") for part in parts)
        and os.sep not in relative.replace("/", "")
        and "\0" not in relative
    )
