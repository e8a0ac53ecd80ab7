"""``statement-feeds init DIR``: start a new site in one command (as ``hugo new site``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from ..new_site import SiteAnswers, create_site
from .common import handles_errors

__all__ = ["init"]

_DEFAULTS = SiteAnswers()


@click.command(short_help="Write a new site: config, statements/, subscribers/.")
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--title", default=_DEFAULTS.title, show_default=True, help="The site's name (site.title)."
)
@click.option("--url", default=_DEFAULTS.url, show_default=True, help="The public site (site.url).")
@click.option(
    "--language",
    default=_DEFAULTS.language,
    show_default=True,
    help="Default language, a BCP 47 tag (site.default_language).",
)
@click.option(
    "--timezone",
    default=_DEFAULTS.timezone,
    show_default=True,
    help="IANA time zone of dates and schedules (site.timezone).",
)
@handles_errors
def init(folder: Path, title: str, url: str, language: str, timezone: str) -> None:
    """Write a new site into DIR (made if missing): a commented statement-feeds.toml with
    every key, its default and its meaning; statements/ with one example statement;
    subscribers/ with a header-only CSV. Never overwrites a file: if one is there,
    nothing is written (exit 2)."""
    answers = SiteAnswers(title=title, url=url, language=language, timezone=timezone)
    for path in create_site(folder, answers, datetime.now(UTC)):
        click.echo(f"wrote {path}")
    config = folder / "statement-feeds.toml"
    click.echo(
        f"next: edit {config} (site.url, digest.from, smtp.host), then\n"
        f"  statement-feeds --config {config} check\n"
        f"  statement-feeds --config {config} build"
    )
