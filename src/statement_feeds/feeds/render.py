"""Planned documents → files: each rendered by its format and written if its bytes changed.

Many documents are rendered in worker processes (``render_all``); each reads its
entries' content from the build's spool, or renders it from the statement's file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from functools import partial
from html import escape as html_escape
from pathlib import Path
from typing import NamedTuple, TypedDict

from ..domain.excerpt_links import has_links, strip_markers, summary_html
from ..domain.statements import Statement, statement_body
from .formats import Document, FeedFormat, FeedSettings
from .output import write_if_changed
from .parse import ContentRef, SpoolReader, content_html
from .workers import process_map, start_method

__all__ = ["RenderJob", "entry_content", "render_all"]

_RENDER_PARALLEL_FROM = 16  # documents to write before worker processes pay off


class RenderJob(NamedTuple):
    """One document to render and write, with what its entries' content comes from."""

    fmt: FeedFormat
    document: Document
    settings: FeedSettings
    root: Path  # the statements folder
    refs: Mapping[str, ContentRef]  # source → its content in the spool
    spool: str  # the spool folder
    path: Path  # where the document goes


class _PoolOptions(TypedDict):
    parallel_from: int
    window: int
    chunksize: int
    per_core: int


def render_all(jobs: list[RenderJob]) -> list[bool]:
    """Run ``_render_job`` for every job, in worker processes when there are many.

    Workers render and write (each file fsynced): twice as many as cores, so that one
    waiting for its fsync leaves the core to another. Forked workers inherit ``jobs``
    and are sent indices: pickling the documents (50 statements each, with their
    translations) to them cost ~0.5 s of CPU in a cold build of 10,000 statements.
    """
    pool = _PoolOptions(parallel_from=_RENDER_PARALLEL_FROM, window=16, chunksize=1, per_core=2)
    if start_method() != "fork":
        return list(process_map(_render_job, iter(jobs), **pool))
    try:
        indices = iter(range(len(jobs)))
        return list(
            process_map(
                _render_shared,
                indices,
                **pool,
                initializer=_share_jobs,
                initargs=(jobs,),
            )
        )
    finally:
        _share_jobs([])  # when they ran here


class _Shared:
    """The render jobs of this build, where forked workers find them by index."""

    def __init__(self) -> None:
        self.jobs: list[RenderJob] = []


_shared = _Shared()


def _share_jobs(jobs: list[RenderJob]) -> None:
    _shared.jobs = jobs


def _render_shared(index: int) -> bool:
    return _render_job(_shared.jobs[index])


def _render_job(job: RenderJob) -> bool:
    """Render one document and write it (atomically, if its bytes changed): written?

    Entries parsed in this build were rendered then (their content is in the spool);
    any other is rendered from its file here: only documents being written pay for
    that, and memory holds one document. The folder's own fsync is left to the
    caller, once per folder.
    """
    reader = SpoolReader(job.spool)
    try:
        html = partial(entry_content, job.root, job.refs, reader)
        data = job.fmt.render(job.document, job.settings, html)
    finally:
        reader.close()
    return write_if_changed(job.path, data, folders=set())


def entry_content(
    root: Path, refs: Mapping[str, ContentRef], spool: SpoolReader, statement: Statement
) -> str:
    """An entry's sanitised HTML, relative URLs made absolute against its own URL.

    A file changed or removed since it was parsed still gives content: the current
    body, or the summary; the next build (its signature changed) brings both in step.
    """
    ref = refs.get(statement.source)
    if ref is not None:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            return spool.read(ref)
    try:
        body = statement_body(statement.source, (root / statement.source).read_bytes())
    except (OSError, ValueError):
        body = None
    if body is None:
        if has_links(statement.summary):
            return summary_html(statement.summary)
        return f"<p>{html_escape(strip_markers(statement.summary))}</p>"
    return content_html(statement.url, body)
