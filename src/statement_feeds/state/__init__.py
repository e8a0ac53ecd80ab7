"""The state store: the only code that knows a database exists.

``api`` holds the protocols the rest depends on, ``open.open_store`` opens the
configured backend, and ``sqlite`` (with its mixins and migrations) is the embedded
one. Only ``state/`` (and the tests) name a backend. ``coordination_api`` and
``coordination.open_coordinator``: several daemons on one PostgreSQL database.
"""
