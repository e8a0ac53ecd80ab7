"""Statement files → parse (worker pool, spool) → catalog → feed documents →
atomic output. ``build.Publisher`` runs the pipeline; ``atom`` is the output format;
the build cache (``cache``) is per host, not shared state.
"""
