"""The ``statement-feeds`` command line.

Exit codes (contract): 0 success, 1 some input was invalid (the rest was still
processed), 2 usage or configuration error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .config import Config, find_config, load_config
from .errors import ConfigError, StatementFeedsError
from .logs import configure_logging
from .service import BuildReport, Publisher

__all__ = ["main"]

EXIT_OK, EXIT_INVALID_INPUT, EXIT_USAGE = 0, 1, 2
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    config_option: str | None
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(find_config(self.config_option))
        return self._config


def _handles_errors(func: F) -> F:
    """Turn configuration and state errors into a message and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except StatementFeedsError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)

    return wrapper  # type: ignore[return-value]


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


def _report_problems(problems: list[Any]) -> None:
    for problem in problems:
        click.echo(f"invalid: {problem}", err=True)


@cli.command()
@click.pass_obj
@_handles_errors
def check(ctx: Context) -> None:
    """Validate config, statements, subscribers and templates; write nothing."""
    report = Publisher(ctx.config).check()
    _report_problems(report.problems)
    click.echo(f"checked {report.statements} statements, {len(report.problems)} problems")
    sys.exit(EXIT_INVALID_INPUT if report.problems else EXIT_OK)


@cli.command()
@click.pass_obj
@_handles_errors
def build(ctx: Context) -> None:
    """Write every language's feed once."""
    report = Publisher(ctx.config).build()
    _report_problems(report.problems)
    _print_build(report, ctx.config.paths.output)
    sys.exit(EXIT_INVALID_INPUT if report.problems else EXIT_OK)


def _print_build(report: BuildReport, output: Path) -> None:
    for feed in report.feeds:
        state = "written" if feed.written else "unchanged"
        click.echo(f"{feed.lang:<8} {feed.entries:>6} entries  {state:<9}  {output / feed.path}")
    for removed in report.removed:
        click.echo(f"removed  {output / removed}")
    click.echo(
        f"{report.statements} statements, {len(report.feeds)} feeds "
        f"({report.written} written), {len(report.problems)} problems"
    )


def main() -> None:
    cli(prog_name="statement-feeds")


@cli.command()
@click.option(
    "--rescan",
    "rescan",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Safety-net rescan interval (the watcher is a hint; this catches what it missed).",
)
@click.pass_obj
@_handles_errors
def run(ctx: Context, rescan: float) -> None:
    """The daemon: build, watch, schedule and send until SIGTERM/SIGINT."""
    from .daemon import DaemonOptions, build_runner, run_daemon
    from .scheduling import clock_from_env

    config = ctx.config
    clock = clock_from_env()
    runner = build_runner(config, clock)  # None: digests not wired, feeds only (logged)
    run_daemon(config.path, config, clock, runner, DaemonOptions(rescan_interval=rescan))
    sys.exit(EXIT_OK)
