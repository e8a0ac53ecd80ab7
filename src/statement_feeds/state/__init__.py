"""The state store: the only code that knows a database exists.

``api`` holds the protocols the rest depends on; ``sqlite`` (with its migrations) is
the embedded backend.
"""
