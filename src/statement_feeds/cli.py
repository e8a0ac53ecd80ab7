"""The ``statement-feeds`` command line.

Exit codes (contract): 0 success, 1 some input was invalid (the rest was still
processed), 2 usage or configuration error.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__
from .config import Config, find_config, load_config
from .errors import StatementFeedsError
from .feeds.build import BuildReport, Publisher
from .logs import configure_logging

if TYPE_CHECKING:
    from .digests.send import Progress
    from .digests.service import SendOutcome

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
        except StatementFeedsError as exc:  # ConfigError, LockHeldError, StateError, StoreError
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        except OSError as exc:
            # An unwritable output or state folder is a setup problem, not invalid input.
            where = f" {exc.filename}" if exc.filename else ""
            click.echo(
                f"error: cannot use{where}: {exc.strerror or exc}; check the paths in "
                "the configuration and their permissions",
                err=True,
            )
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
    from .digests.subscriber_files import read_subscribers
    from .domain.problems import Problem

    config = ctx.config
    report = Publisher(config).check()
    items = list(read_subscribers(config.paths.subscribers, config.site.default_language))
    problems = [*report.problems, *(i for i in items if isinstance(i, Problem))]
    subscribers = len(items) - (len(problems) - len(report.problems))
    _report_problems(problems)
    if subscribers:
        from .digests.service import Digests

        digests = Digests(config)
        digests.require_public_url()  # ConfigError: exit 2
        digests.check_templates()
    if config.http.listen:  # the web pages' templates, as `run` would load them
        from .web.templates import load_pages

        load_pages(config)  # ConfigError naming file and line: exit 2
    click.echo(
        f"checked {report.statements} statements, {subscribers} subscribers, "
        f"{len(problems)} problems"
    )
    sys.exit(EXIT_INVALID_INPUT if problems else EXIT_OK)


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


@cli.group()
def digest() -> None:
    """Plan, send and preview email digests."""


@digest.command("send")
@click.option(
    "--frequency",
    type=click.Choice(["daily", "weekly"]),
    help="Only subscribers with this frequency (default: everyone).",
)
@click.option("--dry-run", is_flag=True, help="Print who would get what; send and record nothing.")
@click.option(
    "--resend-failed", is_flag=True, help="Plan nothing new: queue the failed deliveries again."
)
@click.pass_obj
@_handles_errors
def digest_send(ctx: Context, frequency: str | None, dry_run: bool, resend_failed: bool) -> None:
    """Plan an edition now and deliver it."""
    from .digests.service import Digests

    digests = Digests(ctx.config)
    if dry_run:
        planned, problems = digests.dry_run(frequency or "manual")
        _report_problems(problems)
        for delivery in planned:
            click.echo(f"{delivery.email}  [{delivery.lang}]  {', '.join(delivery.statement_ids)}")
        click.echo(f"dry run: {len(planned)} messages would be sent; nothing was sent or recorded")
        sys.exit(EXIT_INVALID_INPUT if problems else EXIT_OK)
    live = _ProgressLine() if sys.stderr.isatty() else None
    import asyncio  # here: the other commands (build, check) start faster without it

    outcome = asyncio.run(digests.send(frequency, resend_failed=resend_failed, progress=live))
    if live is not None:
        live.finish()
    problems = list(outcome.plan.problems) if outcome.plan else []
    _report_problems(problems)
    click.echo(_send_summary(outcome))
    sys.exit(EXIT_INVALID_INPUT if problems else EXIT_OK)


def _send_summary(outcome: SendOutcome) -> str:
    plan = ""
    if outcome.plan is not None:
        edition = outcome.plan.edition
        verb = "planned" if outcome.plan.created else "already planned"
        plan = f"edition {edition.id} {verb} ({edition.deliveries} messages); "
    if outcome.summary is None:
        if not outcome.woken:
            return (
                f"{plan}the running daemon (pid {outcome.delegated_to}) could not be woken "
                "(another user?): it delivers at its next rescan"
            )
        return f"{plan}the running daemon (pid {outcome.delegated_to}) delivers it"
    s = outcome.summary
    return (
        f"{plan}sent {s.sent}, deferred {s.deferred}, failed {s.failed} "
        f"(bounced {s.bounced}), resumed after a crash {s.recovered}"
    )


class _ProgressLine:
    """A live "sent / total, rate, ETA" line on a terminal."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, progress: Progress) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = progress.sent / elapsed
        left = max(progress.total - progress.sent - progress.failed, 0)
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        line = (
            f"\rsent {progress.sent}/{progress.total}  {rate:.0f} msg/s  ETA {eta}  "
            f"deferred {progress.deferred}  failed {progress.failed}   "
        )
        click.echo(line, nl=False, err=True)
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            click.echo("", err=True)


@digest.command("preview")
@click.option("--lang", help="Language of the digest (default: site.default_language).")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the files (default: <state>/preview).",
)
@click.pass_obj
@_handles_errors
def digest_preview(ctx: Context, lang: str | None, out: Path | None) -> None:
    """Render a digest of the latest statements to text, HTML and .eml files."""
    from .digests.service import Digests

    folder = out or ctx.config.paths.state / "preview"
    for path in Digests(ctx.config).preview(lang, folder):
        click.echo(str(path))


@cli.command()
@click.pass_obj
@_handles_errors
def status(ctx: Context) -> None:
    """Feeds, daemon, last editions, pending / deferred / failed deliveries."""
    from .digests.service import Digests

    config = ctx.config
    feeds = sorted((config.paths.output / "feeds").glob("*.atom"))
    for feed in feeds:
        stamp = datetime.fromtimestamp(feed.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        click.echo(f"feed     {feed.name:<12} {feed.stat().st_size:>9} bytes  written {stamp}")
    last = Publisher(config).last_build()
    if last:
        click.echo(
            f"build    last {last['at']}: {last['statements']} statements, "
            f"{last['problems']} problems, {last['written']} files written"
        )
    report = Digests(config).status()
    daemon = f"running (pid {report.daemon_pid})" if report.daemon_pid else "not running"
    click.echo(f"daemon   {daemon}")
    for frequency, due in _next_editions(config):
        click.echo(f"next     {frequency:<7} edition due {due:%Y-%m-%d %H:%M %Z}")
    for item in report.editions:
        e, c = item.edition, item.counts
        click.echo(
            f"edition  {e.id:>4} {e.frequency:<7} due {e.due_at:%Y-%m-%d %H:%M}  "
            f"messages {e.deliveries}: sent {c.sent}, pending {c.pending}, "
            f"sending {c.sending}, deferred {c.deferred}, failed {c.failed}, "
            f"cancelled {c.cancelled}"
        )
    c = report.counts
    retry = f", next retry {report.next_retry_at:%Y-%m-%d %H:%M}Z" if report.next_retry_at else ""
    click.echo(
        f"ledger   sent {c.sent}, pending {c.pending}, deferred {c.deferred}, "
        f"failed {c.failed}{retry}"
    )
    # Not "pending": these may have reached the server already (outcome unknown).
    click.echo(
        f"sending  {c.sending} handed to SMTP with no reply recorded yet"
        + (" (re-sent with the same Message-ID if their sender died)" if c.sending else "")
    )


@cli.group()
def subscribers() -> None:
    """Subscribers from the CSV files and the web sign-up, as planning sees them."""


def _merged_subscribers(config: Config) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """(merged subscribers, CSV problems, email key → (joined, state)) in list order."""
    from .clock import system_clock
    from .digests.subscriber_files import read_subscribers
    from .domain.problems import Problem
    from .domain.subscribers import email_key
    from .domain.web_subscribers import merge_subscribers
    from .state.open import open_store

    with open_store(config) as store:
        web, overrides = store.web_subscribers(include_blocked=True), store.preference_overrides()
        # Who keeps an address two files list, as planning decides it (read only).
        sightings = store.sightings(system_clock(), record=False)
        items = read_subscribers(
            config.paths.subscribers, config.site.default_language, sightings=sightings
        )
        merged = list(merge_subscribers(items, web, overrides))
        people = [m for m in merged if not isinstance(m, Problem)]
        states = store.subscriber_status([p.email for p in people])
    problems = [m for m in merged if isinstance(m, Problem)]
    return (
        people,
        problems,
        {key: states.get(key) for key in map(email_key, (p.email for p in people))},
    )


@subscribers.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include unsubscribed and bounced addresses.")
@click.pass_obj
@_handles_errors
def subscribers_list(ctx: Context, show_all: bool) -> None:
    """One line per subscriber: address, source, languages, frequency, state, joined."""
    from .domain.subscribers import email_key

    people, problems, states = _merged_subscribers(ctx.config)
    shown = 0
    for person in people:
        joined, state = states.get(email_key(person.email)) or (None, "new")
        if state in ("unsubscribed", "bounced") and not show_all:
            continue
        shown += 1
        since = f"{joined:%Y-%m-%d}" if joined else "-"
        source = person.source.rsplit("/", 1)[-1] or "-"
        click.echo(
            f"{person.email:40} {source:16} {','.join(person.languages):10} "
            f"{person.frequency:7} {state:12} {since}"
        )
    click.echo(f"{shown} subscribers", err=True)
    _report_problems(problems)
    sys.exit(EXIT_INVALID_INPUT if problems else EXIT_OK)


@subscribers.command("export")
@click.option("--all", "show_all", is_flag=True, help="Include unsubscribed and bounced addresses.")
@click.pass_obj
@_handles_errors
def subscribers_export(ctx: Context, show_all: bool) -> None:
    """CSV on stdout in the subscribers file format (plus source and state columns)."""
    import csv

    from .domain.subscribers import email_key

    people, problems, states = _merged_subscribers(ctx.config)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["email", "name", "languages", "frequency", "source", "state"])
    for person in people:
        _, state = states.get(email_key(person.email)) or (None, "new")
        if state in ("unsubscribed", "bounced") and not show_all:
            continue
        source = person.source.rsplit("/", 1)[-1]
        writer.writerow(
            [person.email, person.name, " ".join(person.languages), person.frequency, source, state]
        )
    _report_problems(problems)
    sys.exit(EXIT_INVALID_INPUT if problems else EXIT_OK)


@subscribers.command("unbounce")
@click.argument("email")
@click.pass_obj
@_handles_errors
def subscribers_unbounce(ctx: Context, email: str) -> None:
    """Clear a hard bounce so the address gets digests again (not an unsubscribe)."""
    from .state.open import open_store

    with open_store(ctx.config) as store:
        cleared = store.clear_bounce(email)
    if not cleared:
        click.echo(f"error: {email} is not marked bounced", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"{email}: bounce cleared; it receives the next edition")


def _next_editions(config: Config) -> list[tuple[str, datetime]]:
    """When the daily and weekly editions are next due, in the site's time zone."""
    from .clock import system_clock
    from .daemon.triggers import WallClockCronTrigger

    now = system_clock()
    due = []
    for frequency, expr in (("daily", config.digest.daily), ("weekly", config.digest.weekly)):
        fire = WallClockCronTrigger(expr, config.site.timezone).next_due(None, now)
        if fire is not None:
            due.append((frequency, fire.astimezone(config.site.timezone)))
    return due


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
    from .daemon.run import DaemonOptions, build_runner, run_daemon
    from .daemon.triggers import clock_from_env

    config = ctx.config
    clock = clock_from_env()
    runner = build_runner(config, clock)  # None: digests not wired, feeds only (logged)
    run_daemon(config.path, config, clock, runner, DaemonOptions(rescan_interval=rescan))
    sys.exit(EXIT_OK)
