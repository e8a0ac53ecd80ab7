"""The daemon's reload (SIGHUP, a changed config or template): all parts or none.

The digest side (the edition runner) and the web side each use templates. Each new
set is checked first; only when all of them are valid does any part switch, so an
invalid template is reported and every part keeps its old ones, as for the config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..config import Config

if TYPE_CHECKING:
    from ..web.service import WebService

__all__ = ["Reloadable", "reload_templates"]


class Reloadable(Protocol):
    def reload(self, config: Config) -> None:
        """Check and take ``config``'s templates, or raise StatementFeedsError and keep
        the old ones."""


def reload_templates(config: Config, runner: Reloadable | None, web: WebService | None) -> None:
    """Switch every part to ``config``'s templates, or raise and switch none."""
    pages = web.check_templates(config) if web is not None else None  # raises, changes nothing
    if runner is not None:
        runner.reload(config)  # checks, then switches the digest side
    if web is not None and pages is not None:
        web.use_templates(pages)  # cannot fail: checked above
