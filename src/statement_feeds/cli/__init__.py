"""The ``statement-feeds`` command line.

Exit codes (contract): 0 success, 1 some input was invalid (the rest was still
processed), 2 usage or configuration error.

This module has the group, ``check``, ``build`` and ``run``; the ``deliveries``,
``digest``, ``init``, ``state``, ``status`` and ``subscribers`` commands are in modules of
their own beside it.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import click

from .. import __version__
from ..feeds.build import BuildReport, Publisher
from ..logs import configure_logging
from .bounces import bounces
from .common import EXIT_INVALID_INPUT, EXIT_OK, Context, handles_errors, report_problems
from .deliveries import deliveries
from .digest import digest
from .init import init
from .state import state
from .status import status
from .subscribers import subscribers

__all__ = ["cli", "main"]


@click.group()
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="Configuration file (default: $STATEMENT_FEEDS_CONFIG or ./statement-feeds.toml).",
)
@click.option("-v", "--verbose", count=True, help="More log output (debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log line format: key=value text or JSON.",
)
@click.version_option(__version__, prog_name="statement-feeds")
@click.pass_context
def cli(
    ctx: click.Context, config_path: str | None, verbose: int, quiet: bool, log_format: str
) -> None:
    """Publish a folder of statements as Atom feeds and email digests."""
    configure_logging(-1 if quiet else min(verbose, 1), log_format)
    ctx.obj = Context(config_path)


cli.add_command(bounces)
cli.add_command(deliveries)
cli.add_command(digest)
cli.add_command(init)
cli.add_command(state)
cli.add_command(status)
cli.add_command(subscribers)


@cli.command(short_help="Validate config, statements, subscribers, templates.")
@click.pass_obj
@handles_errors
def check(ctx: Context) -> None:
    """Validate config, statements, subscribers and templates; write nothing."""
    from ..digests.subscriber_files import read_subscribers
    from ..domain.problems import Problem

    config = ctx.config
    if config.state.url:  # connect and migrate: unreachable, refused or newer is exit 2
        from ..state.open import open_store

        open_store(config).close()
    report = Publisher(config).check()
    items = list(read_subscribers(config.paths.subscribers, config.site.default_language))
    problems = [*report.problems, *(i for i in items if isinstance(i, Problem))]
    subscribers = len(items) - (len(problems) - len(report.problems))
    report_problems(problems)
    if subscribers:
        from ..digests.service import Digests

        digests = Digests(config)
        digests.require_public_url()  # ConfigError: exit 2
        digests.check_templates()
    if config.http.listen:  # the web pages' templates, as `run` would load them
        from ..web.templates import load_pages

        load_pages(config)  # ConfigError naming file and line: exit 2
    _print_overrides(config.paths.templates)
    click.echo(
        f"checked {report.statements} statements, {subscribers} subscribers, "
        f"{len(problems)} problems"
    )
    sys.exit(EXIT_INVALID_INPUT if problems else EXIT_OK)


@cli.command(short_help="Write every language's feed once.")
@click.pass_obj
@handles_errors
def build(ctx: Context) -> None:
    """Write every language's feed once."""
    report = Publisher(ctx.config).build()
    report_problems(report.problems)
    _print_build(report, ctx.config.paths.output)
    sys.exit(EXIT_INVALID_INPUT if report.problems else EXIT_OK)


def _print_overrides(folder: Path) -> None:
    """Which templates are the site's own: the rest are the package's defaults."""
    from ..template_files import overridden

    names = overridden(folder)
    if names:
        click.echo(f"templates: {', '.join(names)} from {folder}; the others are the defaults")


def _print_build(report: BuildReport, output: Path) -> None:
    for feed in report.feeds:
        state = "written" if feed.written else "unchanged"
        click.echo(f"{feed.lang:<8} {feed.entries:>6} entries  {state:<9}  {output / feed.path}")
    for removed in report.removed:
        click.echo(f"removed  {output / removed}")
    pages = report.pages
    if pages.pages or pages.removed:
        click.echo(
            f"pages    {pages.pages} pages, {len(pages.written)} files written, "
            f"{len(pages.removed)} removed  {output}"
        )
    click.echo(
        f"{report.statements} statements, {len(report.feeds)} feeds "
        f"({report.written} written), {len(report.problems)} problems"
    )


def main() -> None:
    # What is imported by now lives as long as the process: out of the collector's scans
    # (they were ~50 ms of a rebuild after one edit), and out of its last collection at
    # exit. Once, here: the daemon's later objects are collected as ever (and tests that
    # call ``cli`` in-process freeze nothing).
    gc.freeze()
    cli(prog_name="statement-feeds")


@cli.command(short_help="The daemon: build, watch, schedule, send.")
@click.option(
    "--rescan",
    "rescan",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Safety-net rescan interval (the watcher is a hint; this catches what it missed).",
)
@click.option(
    "--heartbeat",
    "heartbeat",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="With [state] url: seconds between heartbeats (a dead leader is replaced within one).",
)
@click.pass_obj
@handles_errors
def run(ctx: Context, rescan: float, heartbeat: float) -> None:
    """The daemon: build, watch, schedule and send until SIGTERM/SIGINT."""
    from ..daemon.run import DaemonOptions, build_runner, run_daemon
    from ..daemon.triggers import clock_from_env

    config = ctx.config
    clock = clock_from_env()
    runner = build_runner(config, clock)  # None: digests not wired, feeds only (logged)
    options = DaemonOptions(rescan_interval=rescan, heartbeat=heartbeat)
    run_daemon(config.path, config, clock, runner, options)
    sys.exit(EXIT_OK)
