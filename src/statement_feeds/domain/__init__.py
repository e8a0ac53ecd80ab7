"""The pure domain: statements, markup and sanitising, catalog, selection, digest
composition, schedule, tokens, i18n, language tags, problems.

Nothing here performs I/O, uses asyncio or talks to a database;
``tests/test_architecture.py`` enforces it.
"""
