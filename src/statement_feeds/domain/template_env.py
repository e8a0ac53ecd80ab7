"""The jinja2 Environment every template of the package is rendered with (digests, web
pages, static pages): pure, and in a module of its own so that a build rendering pages
does not import the digest's email machinery with it."""

from __future__ import annotations

import jinja2

__all__ = ["template_environment"]


def template_environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    """The Environment digests expect: autoescape for .html only, tidy block whitespace."""
    return jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
