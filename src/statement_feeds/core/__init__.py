"""The pure core: statements, excerpts, feeds, selection, digests.

Nothing in this package performs I/O, uses asyncio or talks to a database;
``tests/test_architecture.py`` enforces that. The I/O shell lives in
``statement_feeds.adapters`` and the two are joined only in ``service.py``.
"""
