"""The state store: the only code that knows a database exists.

``api`` holds the protocols the rest depends on, ``open.open_store`` opens the
configured backend: ``sqlite`` (the embedded one) or ``postgres`` (``[state] url``),
each with its own migrations, both built on the shared SQL of the ``sql_*`` mixins.
Only ``state/`` (and the tests) name a backend.
``coordination_api`` and ``coordination.open_coordinator``: several daemons on one
PostgreSQL database.
"""
