"""statement-feeds: a folder of multilingual statements → Atom feeds and email digests."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
