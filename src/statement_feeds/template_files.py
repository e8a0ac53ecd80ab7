"""Where templates come from: the site's ``paths.templates`` folder, file by file over the
defaults shipped inside the package.

A new site needs no templates folder at all: every template (digest, confirmation email,
web pages) has a default in ``statement_feeds/templates/``, installed with the package.
A file of the same name in the site's folder (``digest.html``, ``web/home.html``) is used
instead of that one default alone; the others stay the package's, so a site that changes
one page does not have to copy, and then keep in step, all the rest. ``{% extends %}``
and ``{% include %}`` resolve the same way.

Errors name the real file: the site's override, or the package's default (which a broken
override it extends can make fail), never just "the templates folder".
"""

from __future__ import annotations

import traceback
from pathlib import Path

import jinja2

from .errors import ConfigError

__all__ = ["DEFAULTS", "overridden", "template_error", "template_loader", "template_path"]

# A plain folder: setuptools installs package data as files, never zipped (wheels are
# unpacked), so jinja2 can report real paths in its errors and tracebacks.
DEFAULTS = Path(__file__).resolve().parent / "templates"


def template_loader(site_folder: Path) -> jinja2.BaseLoader:
    """The site's folder first, then the package's defaults. A folder that does not
    exist is simply empty: every template comes from the defaults."""
    return jinja2.ChoiceLoader(
        [jinja2.FileSystemLoader(str(site_folder)), jinja2.FileSystemLoader(str(DEFAULTS))]
    )


def template_path(site_folder: Path, name: str) -> Path:
    """The file that ``name`` (``"web/home.html"``) is loaded from for this site."""
    override = site_folder / name
    return override if override.is_file() else DEFAULTS / name


def overridden(site_folder: Path) -> list[str]:
    """The default templates (``"web/home.html"``) this site replaces with its own file."""
    names = sorted(p.relative_to(DEFAULTS).as_posix() for p in DEFAULTS.rglob("*") if p.is_file())
    return [name for name in names if (site_folder / name).is_file()]


def template_error(
    exc: BaseException, name: str | None, site_folder: Path, config_path: Path
) -> ConfigError:
    """A :class:`ConfigError` naming the file and line where ``exc`` (raised while
    loading or rendering the template ``name``, when known) came from, and what to do."""
    filename, line = _where(exc, site_folder)
    path = Path(filename) if filename else template_path(site_folder, name or "")
    if isinstance(exc, jinja2.TemplateError):
        message = exc.message or str(exc)
    else:  # from an expression in the template: "KeyError: 'name'" says more than "'name'"
        message = f"{type(exc).__name__}: {exc}"
    place = f"{path}:{line}" if line else str(path)
    if not filename and not name:
        place = f"a template in {site_folder} or the defaults"
    return ConfigError(
        f"{place}: {message}; {_advice(path, site_folder)}",
        path=str(config_path),
        key="paths.templates",
    )


def _where(exc: BaseException, site_folder: Path) -> tuple[str | None, int | None]:
    """jinja2 gives file and line for syntax errors; for render-time errors the
    template's own frame (its compiled code keeps the file name) is in the traceback."""
    filename = getattr(exc, "filename", None)
    line = getattr(exc, "lineno", None)
    if filename and line:
        return filename, line
    found: tuple[str | None, int | None] = (filename, line)
    for frame in traceback.extract_tb(exc.__traceback__):
        if _is_template_file(frame.filename, site_folder):
            found = (frame.filename, frame.lineno)
    return found


def _is_template_file(filename: str, site_folder: Path) -> bool:
    return any(filename.startswith(f"{folder}/") for folder in (site_folder, DEFAULTS))


def _advice(path: Path, site_folder: Path) -> str:
    if DEFAULTS in path.parents:
        return (
            "this is statement-feeds' own default template: a template of the site's "
            f"that it extends or includes (in {site_folder}) is the likely cause"
        )
    return "fix that file, or delete it to use statement-feeds' default"
