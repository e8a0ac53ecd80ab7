"""Reading and parsing statement files, on every core, and spooling their content.

The data path of a build that parses many files (a cold build)::

    main process: adapters.files.iter_sources(read=False) → paths and signatures
    workers:      read_source → content key → parse_statement → content_html → spool
    main process: ← (key, statement without body, problems, spool reference)

Workers read the files themselves, so the corpus's bytes never pass through the
main process (which also runs the cache and decides what to write). The rendered,
sanitised content of each statement is appended to a spool file (one per worker,
in a per-build folder of the state folder): writing a
document then reads its entries' content back instead of reading, parsing and
rendering every file a second time. Statements not parsed in this build (cache
hits) are rendered from their files when a document that holds them is written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple, NewType
from urllib.parse import urljoin

from ..domain.markup import render_html, render_raw
from ..domain.problems import Problem
from ..domain.sanitizing import sanitize_rendered
from ..domain.statements import SiteDefaults, Statement, content_digest, parse_statement
from .files import Listed, SourceFile, read_source
from .urls import resolve_urls
from .workers import process_map

__all__ = [
    "ContentRef",
    "KeyText",
    "ParseContext",
    "ParseKey",
    "Parsed",
    "Spool",
    "SpoolReader",
    "cache_key",
    "content_html",
    "parse_files",
]

_PARALLEL_FROM = 256  # below this, starting worker processes costs more than it saves
_WINDOW = 512  # files handed to the workers at a time: bounds what is in flight
_SPOOL_PREFIX = "spool-"

ContentRef = tuple[str, int, int]
"""Where a statement's rendered content lies in the spool: (file name, offset, length)."""


@dataclass(frozen=True, slots=True)
class ParseContext:
    defaults: SiteDefaults
    defaults_key: str  # names the defaults in content keys: a config change re-parses
    spool: str | None  # the build's spool folder; None: no content is rendered here
    max_bytes: int | None = None  # feeds.max_statement_bytes: larger files are not read


@dataclass(frozen=True, slots=True)
class Parsed:
    """One file's outcome. ``key`` None: it could not be read (or is gone).

    ``statement`` has no body; it is None when the file is invalid (``problems`` says
    why). Only files the caller does not hold parsed are sent (see ``parse_stage``).
    """

    source: str
    key: KeyText | None
    signature: str
    statement: Statement | None
    problems: tuple[Problem, ...]
    content: ContentRef | None

    def __reduce__(self) -> tuple[type[Parsed], tuple[Any, ...]]:
        # Every result crosses from a worker: a call of the class with the values pickles
        # in half the time of dataclasses' slotted __getstate__/__setstate__ (Python loops).
        return (Parsed, _parsed_values(self))


_parsed_values = attrgetter(*(f.name for f in fields(Parsed)))


KeyText = NewType("KeyText", str)
"""A :class:`ParseKey` as the build cache stores it, and as builds compare keys: one
string, cheap to hash (statements are looked up by it once per file per build)."""


class ParseKey(NamedTuple):
    """What a parsed statement follows from: the file's bytes, the parser with its
    settings, and the file's path. Kept as :class:`KeyText` (``cache_key`` writes it);
    read back with :meth:`from_text` where a part is needed."""

    digest: str  # content_digest of the file's bytes
    parsed_with: str  # names the parser version and the site defaults (a config change)
    source: str

    @classmethod
    def from_text(cls, text: KeyText) -> ParseKey:
        digest, _, rest = text.partition("|")  # the digest and parsed_with are hex
        parsed_with, _, source = rest.partition("|")
        return cls(digest, parsed_with, source)


def cache_key(data: bytes, defaults_key: str, source: str, digest: str | None = None) -> KeyText:
    """The key of a file's parse: what ``ParseKey.from_text`` reads. Written directly,
    not through a ParseKey: a NamedTuple's __new__ runs in Python, once per file."""
    return KeyText(f"{digest or content_digest(data)}|{defaults_key}|{source}")


def content_html(url: str, body: str, raw: str | None = None) -> str:
    """An entry's sanitised HTML, relative URLs made absolute against its own URL.

    ``raw``: the body's CommonMark rendering, when the caller has it already.
    """
    html = sanitize_rendered(body, raw) if raw is not None else render_html(body)
    return resolve_urls(html, partial(urljoin, url))


class _KeepRendered:
    """``render_raw`` that keeps its last result: parsing renders a body for the
    excerpt, and the same HTML, sanitised, is the entry's content."""

    def __init__(self) -> None:
        self.markdown: str | None = None
        self.html = ""

    def __call__(self, markdown: str) -> str:
        self.markdown, self.html = markdown, render_raw(markdown)
        return self.html

    def get(self, markdown: str) -> str | None:
        return self.html if markdown is self.markdown or markdown == self.markdown else None


def parse_files(jobs: Iterator[Listed | SourceFile], context: ParseContext) -> Iterator[Parsed]:
    """Read (a :class:`Listed`) and parse ``jobs``, in order, in worker processes when
    there are many. A :class:`SourceFile` was read by the caller already."""
    try:
        yield from process_map(
            _parse_one,
            jobs,
            parallel_from=_PARALLEL_FROM,
            window=_WINDOW,
            chunksize=32,
            initializer=_start_worker,
            initargs=(context,),
        )
    finally:
        _close_worker()  # when it ran here: do not keep the known keys or an open file


class Spool:
    """The per-build folder of rendered content; removed when the build ends."""

    def __init__(self, state: Path) -> None:
        state.mkdir(parents=True, exist_ok=True)
        _sweep(state)
        self.path = tempfile.mkdtemp(prefix=f"{_SPOOL_PREFIX}{os.getpid()}-", dir=state)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class SpoolReader:
    """Reads content back from a spool folder (in whichever process renders)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._files: dict[str, int] = {}

    def read(self, ref: ContentRef) -> str:
        name, offset, length = ref
        fd = self._files.get(name)
        if fd is None:
            fd = self._files[name] = os.open(os.path.join(self.path, name), os.O_RDONLY)
        return os.pread(fd, length, offset).decode("utf-8")

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()


def _sweep(state: Path) -> None:
    """Remove spool folders left by builds that died (their process is gone)."""
    for folder in state.glob(f"{_SPOOL_PREFIX}*"):
        pid = folder.name.removeprefix(_SPOOL_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Worker:
    """What a worker process holds between jobs: the context and its spool file."""

    def __init__(self, context: ParseContext) -> None:
        self.context = context
        self.name = f"{os.getpid()}.html"
        self.fd: int | None = None
        self.size = 0

    def spool(self, text: str) -> ContentRef | None:
        if self.context.spool is None:
            return None
        data = text.encode("utf-8")
        try:
            if self.fd is None:
                path = os.path.join(self.context.spool, self.name)
                # Unbuffered writes: a pool worker may exit without flushing Python buffers.
                self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                self.size = os.fstat(self.fd).st_size
            offset = self.size
            written = 0
            while written < len(data):
                written += os.write(self.fd, data[written:])
            self.size += len(data)
        except OSError:
            # The state folder is full or gone: no reference, so the document writer
            # renders this entry from its file. A partial write moved the end: follow it.
            if self.fd is not None:
                with contextlib.suppress(OSError):
                    self.size = os.fstat(self.fd).st_size
            return None
        return (self.name, offset, len(data))

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Slot:
    """This process's worker state (a module-level slot, set by the pool initializer)."""

    worker: _Worker | None = None


_slot = _Slot()


def _start_worker(context: ParseContext) -> None:
    _close_worker()
    _slot.worker = _Worker(context)


def _close_worker() -> None:
    if _slot.worker is not None:
        _slot.worker.close()
        _slot.worker = None


def _parse_one(job: Listed | SourceFile) -> Parsed:
    worker = _slot.worker
    assert worker is not None, "parse_files starts every worker"
    context = worker.context
    file: SourceFile | None
    problems: list[Problem]
    if isinstance(job, SourceFile):
        file, problems = job, []
    else:
        file, problems = read_source(job.path, job.source, max_bytes=context.max_bytes)
    if file is None:
        return Parsed(job.source, None, "", None, tuple(problems), None)
    digest = content_digest(file.data)  # hashed once: for the key and the statement
    key = cache_key(file.data, context.defaults_key, file.source, digest)
    rendered = _KeepRendered()
    result = parse_statement(file.source, file.data, context.defaults, rendered, digest=digest)
    problems.extend(result.problems)
    statement = result.statement
    if statement is None:
        return Parsed(file.source, key, file.signature, None, tuple(problems), None)
    content = None
    if not statement.draft:  # never published: not worth rendering
        body = statement.body
        content = worker.spool(content_html(statement.url, body, rendered.get(body)))
    # Bodies stay in the files (and the spool), not in memory or the cache.
    light = replace(statement, body="")
    return Parsed(file.source, key, file.signature, light, tuple(problems), content)
