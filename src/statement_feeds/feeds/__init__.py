"""Statement files → parse (worker pool, spool) → catalog → feed documents →
atomic output. ``build.Publisher`` runs the pipeline; an output format meets
``formats.FeedFormat`` (``atom``, the one in ``build.FORMATS``); the build cache
(``cache``) is per host, not shared state.
"""
