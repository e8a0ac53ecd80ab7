"""The one place that joins the pure core to the I/O adapters.

``Publisher.build`` is the data path of a feed build::

    adapters.files.iter_sources → core.statements.parse_statement (cached by content)
    → core.catalog.build_catalog → core.feeds.plan_feeds → core.feeds.render_document
    → adapters.output.write_if_changed
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from html import escape as html_escape
from pathlib import Path
from typing import TypeVar
from urllib.parse import urljoin

from . import __version__
from .adapters.cache import BuildCache
from .adapters.files import SourceFile, Unchanged, iter_sources
from .adapters.output import remove_stale, sync_folders, write_if_changed
from .clock import Clock, system_clock
from .config import Config
from .core.catalog import Catalog, build_catalog
from .core.feeds import Document, FeedSettings, plan_feeds, render_document, resolve_urls
from .core.markup import render_html
from .core.problems import Problem
from .core.statements import (
    PARSER_VERSION,
    ParseResult,
    SiteDefaults,
    Statement,
    inherit_identity,
    parse_statement,
    split_name,
    statement_body,
    statement_id,
)

__all__ = ["BuildReport", "FeedReport", "Publisher", "feed_settings", "site_defaults"]


@dataclass(frozen=True, slots=True)
class FeedReport:
    lang: str
    path: str
    entries: int
    written: bool


@dataclass(slots=True)
class BuildReport:
    problems: list[Problem] = field(default_factory=list)
    feeds: list[FeedReport] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    statements: int = 0
    next_embargo: datetime | None = None

    @property
    def written(self) -> int:
        return sum(1 for f in self.feeds if f.written)


def site_defaults(config: Config) -> SiteDefaults:
    site = config.site
    return SiteDefaults(
        site.url,
        site.default_language,
        site.timezone,
        site.author,
        config.feeds.excerpt_words,
        site.id_base,
    )


def feed_settings(config: Config) -> FeedSettings:
    site = config.site
    return FeedSettings(
        site_title=site.title,
        site_url=site.url,
        id_base=site.id_base,
        feeds_url=site.feeds_url,
        author=site.author,
        language_titles=dict(sorted(site.language_titles.items())),
        max_entries=config.feeds.max_entries,
        generator_version=__version__,
    )


class Publisher:
    """Builds the feeds of one site. Safe to call repeatedly (the daemon does)."""

    def __init__(self, config: Config, clock: Clock = system_clock) -> None:
        self.config = config
        self.clock = clock
        self.defaults = site_defaults(config)
        self.settings = feed_settings(config)
        # Parsed results depend on the site defaults too (url, language, excerpt length).
        key = repr((PARSER_VERSION, __version__, self.defaults)).encode()
        self._defaults_key = hashlib.blake2b(key, digest_size=8).hexdigest()
        # What the last build of this Publisher left in the cache, kept in memory: a
        # long-lived process (the daemon) need not unpickle every statement per build.
        # Content-keyed, so never wrong, even if another process updated the cache.
        self._memo: tuple[dict[str, Statement], dict[str, tuple[str, str]]] | None = None

    def load(self, cache: BuildCache | None, *, verify: bool = False) -> Catalog:
        """Read and parse every statement; the catalog as of now. No output is written.

        With a cache, a file whose signature (size, mtime, ctime, inode) is the one
        recorded with its content key is not read again; ``verify`` reads and hashes
        every file anyway (the daemon does so now and then).
        """
        problems: list[Problem] = []
        statements = self._parse(problems, cache, verify=verify)
        return build_catalog(statements, problems, self.clock())

    def last_build(self) -> dict[str, str]:
        """What the last build recorded, for ``status`` (empty if there was none)."""
        path = self.config.paths.state / "cache.sqlite"
        if not path.exists():
            return {}
        with BuildCache(path) as cache:
            return cache.last_build()

    def check(self) -> BuildReport:
        catalog = self.load(cache=None)
        return BuildReport(problems=list(catalog.problems), statements=len(catalog.statements))

    def build(self, *, verify: bool = False) -> BuildReport:
        with BuildCache(self.config.paths.state / "cache.sqlite") as cache:
            catalog = self.load(cache, verify=verify)
            report = BuildReport(
                problems=list(catalog.problems),
                statements=len(catalog.statements),
                next_embargo=catalog.next_embargo(),
            )
            if any(p.incomplete for p in catalog.problems):
                # Part of the folder could not be read: publishing would drop (and the
                # stale-file sweep delete) statements that still exist. Keep the last
                # good feeds instead.
                return report
            documents = plan_feeds(catalog, self.settings)
            self._publish(documents, cache, report)
            cache.store_last_build(
                {
                    "at": catalog.now.isoformat(),
                    "statements": str(report.statements),
                    "problems": str(len(report.problems)),
                    "written": str(report.written),
                }
            )
        return report

    def _parse(
        self, problems: list[Problem], cache: BuildCache | None, *, verify: bool
    ) -> list[Statement]:
        """Parse what the cache does not already hold; keep bodies out of memory.

        Files stream through: a cache hit keeps only its (body-less) statement, a
        miss goes to the parser. Statements are kept (and cached) without their body,
        so memory does not grow with the corpus: a document being written renders its
        entries' bodies from the files again (see ``_render_job``).
        """
        known: dict[str, Statement]
        hints: dict[str, tuple[str, str]]
        if cache is None:
            known, hints = {}, {}
        elif self._memo is not None:
            known, hints = self._memo
        else:
            known, hints = cache.parsed(), cache.file_hints()
        seen: dict[str, tuple[str, str]] = {}  # the hints this build leaves behind
        statements: list[Statement] = []

        def unchanged(source: str, signature: str) -> bool:
            hint = hints.get(source)
            # The key also names the site defaults: a config change must re-parse.
            return (
                hint is not None
                and hint[0] == signature
                and hint[1].split("|")[1] == self._defaults_key
                and hint[1] in known
            )

        def misses() -> Iterator[tuple[str, SourceFile]]:
            check = None if verify or cache is None else unchanged
            for item in iter_sources(self.config.paths.statements, problems, known=check):
                key = (
                    hints[item.source][1] if isinstance(item, Unchanged) else self._cache_key(item)
                )
                statement = known.get(key)
                if statement is not None:
                    seen[item.source] = (item.signature, key)
                    statements.append(statement)
                elif isinstance(item, SourceFile):
                    yield key, item

        fresh: list[tuple[str, Statement]] = []
        for key, result, signature in parse_many(misses(), self.defaults):
            problems.extend(result.problems)
            if result.statement is None:
                continue
            fresh.append((key, result.statement))
            seen[result.statement.source] = (signature, key)
        if fresh and hints:
            fresh = [(key, self._after_rename(st, key, hints, seen, known)) for key, st in fresh]
        statements.extend(statement for _, statement in fresh)
        if cache is not None:
            _save_parsed(cache, fresh, seen, hints=hints, known=len(known))
            used = {key for _, key in seen.values()}
            memo = {key: known[key] for key in used if key in known}
            memo.update(fresh)
            self._memo = (memo, dict(seen))
        return statements

    def _after_rename(
        self,
        statement: Statement,
        key: str,
        hints: dict[str, tuple[str, str]],
        seen: dict[str, tuple[str, str]],
        known: dict[str, Statement],
    ) -> Statement:
        """A file renamed or moved keeps its identity (id, translation key, url).

        Its default ``translation_key`` comes from the file name, so a rename would
        change its id and readers would see it as new. A new path holding exactly the
        content of a path that is gone inherits the identity recorded for the old
        path; a later edit of that file keeps it too (its predecessor is the same
        path). An edit and a rename at once cannot be told from a new statement: set
        ``translation_key`` to keep the id then. Explicit identities are never touched.
        """
        if not _default_identity(statement, self.defaults):
            return statement
        old = self._predecessor(statement.source, key, hints, seen, known)
        if old is None or old.lang != statement.lang:
            return statement
        return inherit_identity(statement, old, self.defaults)

    @staticmethod
    def _predecessor(
        source: str,
        key: str,
        hints: dict[str, tuple[str, str]],
        seen: dict[str, tuple[str, str]],
        known: dict[str, Statement],
    ) -> Statement | None:
        if source in hints:  # the same path, before this edit
            return known.get(hints[source][1])
        content = key.split("|", 1)[0]
        for old_source, (_, old_key) in hints.items():
            if old_source not in seen and old_key.split("|", 1)[0] == content:
                return known.get(old_key)  # the same content, at a path that is gone
        return None

    def _cache_key(self, file: SourceFile) -> str:
        content = hashlib.blake2b(file.data, digest_size=16).hexdigest()
        return f"{content}|{self._defaults_key}|{file.source}"

    def _publish(self, documents: list[Document], cache: BuildCache, report: BuildReport) -> None:
        output = self.config.paths.output
        previous = cache.fingerprints()
        stale = [
            d
            for d in documents
            if previous.get(d.path) != d.fingerprint or not (output / d.path).is_file()
        ]
        root = self.config.paths.statements
        jobs = ((d, self.settings, root) for d in stale)
        rendered = _process_map(_render_job, jobs, parallel_from=16, window=16, chunksize=1)
        folders: set[Path] = set()
        written = {
            document.path: write_if_changed(output / document.path, data, folders)
            for document, data in zip(stale, rendered, strict=True)
        }
        sync_folders(folders)
        for document in documents:
            if not document.archive:
                report.feeds.append(
                    FeedReport(
                        document.lang,
                        document.path,
                        len(document.entries),
                        written.get(document.path, False),
                    )
                )
        keep = {output / d.path for d in documents}
        report.removed = [str(p.relative_to(output)) for p in remove_stale(output / "feeds", keep)]
        cache.store_fingerprints({d.path: d.fingerprint for d in documents})


def _render_job(job: tuple[Document, FeedSettings, Path]) -> bytes:
    """One document's bytes; its entries' bodies are rendered from their files here.

    Rendering (CommonMark + sanitising) is cheap next to storing every body's HTML in
    a cache: only documents being written pay for it, and memory holds one document.
    """
    document, settings, root = job
    return render_document(document, settings, partial(_content, root))


def _content(root: Path, statement: Statement) -> str:
    """An entry's sanitised HTML, relative URLs made absolute against its own URL.

    A file changed or removed since it was parsed still gives content: the current
    body, or the summary; the next build (its signature changed) brings both in step.
    """
    try:
        body = statement_body(statement.source, (root / statement.source).read_bytes())
    except (OSError, ValueError):
        body = None
    html = render_html(body) if body is not None else f"<p>{html_escape(statement.summary)}</p>"
    return resolve_urls(html, partial(urljoin, statement.url))


def _default_identity(statement: Statement, defaults: SiteDefaults) -> bool:
    name_key, _ = split_name(statement.source, defaults.default_language)
    base = defaults.id_base or defaults.url
    return statement.translation_key == name_key and statement.id == statement_id(
        base, name_key, statement.lang
    )


def _save_parsed(
    cache: BuildCache,
    fresh: list[tuple[str, Statement]],
    seen: dict[str, tuple[str, str]],
    *,
    hints: dict[str, tuple[str, str]],
    known: int,
) -> None:
    """Record new parses, drop unused ones, and keep the file hints for the next build."""
    used = {key for _, key in seen.values()}
    if fresh or known != len(used):
        cache.store_parsed(fresh, used)
    if seen != hints:
        cache.store_file_hints(seen)


_PARALLEL_FROM = 256  # below this, starting worker processes costs more than it saves
_WINDOW = 512  # files handed to the workers at a time: bounds the bytes held in memory


def parse_many(
    todo: Iterator[tuple[str, SourceFile]], defaults: SiteDefaults
) -> Iterator[tuple[str, ParseResult, str]]:
    """Parse files, on every core when there are many; yields ``(key, result, signature)``.

    Statements come back without their body. ``todo`` is consumed lazily, a window
    at a time, so a cold build never holds the whole corpus.
    """
    jobs = ((key, file.source, file.data, file.signature, defaults) for key, file in todo)
    yield from _process_map(
        _parse_job, jobs, parallel_from=_PARALLEL_FROM, window=_WINDOW, chunksize=32
    )


J = TypeVar("J")
R = TypeVar("R")


def _process_map(
    func: Callable[[J], R], jobs: Iterator[J], *, parallel_from: int, window: int, chunksize: int
) -> Iterator[R]:
    """``map(func, jobs)`` in order, on every core once there are ``parallel_from`` jobs.

    ``jobs`` is consumed a window at a time, so memory holds a window of inputs.
    """
    # fork is cheapest, but only safe while this process has no other threads (the
    # daemon has some: watchfiles, asyncio's executor); spawn starts fresh interpreters
    # (~1 s, ~90 MB), worth it only for much more work.
    method = "fork" if threading.active_count() == 1 else "spawn"
    if method == "spawn":
        parallel_from *= 8
    first = list(itertools.islice(jobs, parallel_from))
    workers = min(os.cpu_count() or 1, 4)
    if len(first) < parallel_from or workers < 2:
        yield from map(func, itertools.chain(first, jobs))
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        batch = first
        while batch:
            yield from pool.map(func, batch, chunksize=chunksize)
            batch = list(itertools.islice(jobs, window))


def _parse_job(job: tuple[str, str, bytes, str, SiteDefaults]) -> tuple[str, ParseResult, str]:
    key, source, data, signature, defaults = job
    result = parse_statement(source, data, defaults)
    if result.statement is not None:  # bodies stay in the files, not in memory
        result = ParseResult(replace(result.statement, body=""), result.problems)
    return key, result, signature
