"""``statement-feeds status``: feeds, the last build, the daemon, editions, the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

import click

from ..clock import iso_time
from ..config import Config
from ..feeds.build import Publisher
from ..state.coordination_api import MISSED_HEARTBEATS, Coordinator
from .common import Context, handles_errors

__all__ = ["status"]


@click.command(short_help="Feeds, daemon, editions and deliveries now.")
@click.pass_obj
@handles_errors
def status(ctx: Context) -> None:
    """Feeds, daemon, last editions, pending / deferred / failed deliveries."""
    from ..digests.service import Digests

    config = ctx.config
    zone = config.site.timezone
    feeds = sorted((config.paths.output / "feeds").glob("*.atom"))
    for feed in feeds:
        stamp = iso_time(datetime.fromtimestamp(feed.stat().st_mtime, UTC), zone)
        click.echo(f"feed     {feed.name:<12} {feed.stat().st_size:>9} bytes  written {stamp}")
    last = Publisher(config).last_build()
    if last:
        click.echo(
            f"build    last {_stored_time(last['at'], zone)}: {last['statements']} statements, "
            f"{last['problems']} problems, {last['written']} files written"
        )
    for line in _websub_lines(config):
        click.echo(line)
    report = Digests(config).status()
    if config.state.url:  # several daemons on one database, on any hosts
        for line in _daemon_lines(config):
            click.echo(line)
    else:
        daemon = f"running (pid {report.daemon_pid})" if report.daemon_pid else "not running"
        click.echo(f"daemon   {daemon}")
    for frequency, due in _next_editions(config):
        click.echo(f"next     {frequency:<7} edition due {iso_time(due, zone)}")
    for item in report.editions:
        e, c = item.edition, item.counts
        click.echo(
            f"edition  {e.id:>4} {e.frequency:<7} due {iso_time(e.due_at, zone)}  "
            f"messages {e.deliveries}: sent {c.sent}, pending {c.pending}, "
            f"sending {c.sending}, deferred {c.deferred}, failed {c.failed}, "
            f"cancelled {c.cancelled}"
        )
    c = report.counts
    retry = f", next retry {iso_time(report.next_retry_at, zone)}" if report.next_retry_at else ""
    click.echo(
        f"ledger   sent {c.sent}, pending {c.pending}, deferred {c.deferred}, "
        f"failed {c.failed}{retry}"
    )
    if c.failed or c.deferred:  # where to see which addresses and what their servers said
        click.echo("see      statement-feeds deliveries --state failed (or --state deferred)")
    # Not "pending": these may have reached the server already (outcome unknown).
    click.echo(
        f"sending  {c.sending} handed to SMTP with no reply recorded yet"
        + (" (re-sent with the same Message-ID if their sender died)" if c.sending else "")
    )


def _websub_lines(config: Config) -> list[str]:
    """One line per WebSub hub: what the daemon's publish pings did (``websub.json``)."""
    from ..feeds.hub_record import load_records

    zone = config.site.timezone
    lines = []
    for hub, r in load_records(config.paths.state, config.feeds.websub_hubs).items():
        ok = iso_time(r.last_ok, zone) if r.last_ok else "never"
        failed = iso_time(r.last_failure, zone) if r.last_failure else "never"
        due = min((p.next_at for p in r.pending.values()), default=None)
        retry = f", next try {iso_time(due, zone)}" if due else ""
        lines.append(
            f"websub   {hub} last ok {ok}, last failure {failed}, "
            f"last status {r.last_status or 'none'}, pending {len(r.pending)}{retry}, "
            f"given up {r.given_up}"
        )
    return lines


def _daemon_lines(config: Config) -> list[str]:
    """One line per live daemon sharing the database, the leader first."""
    from ..state.coordination import open_coordinator

    coordinator = open_coordinator(config)
    if coordinator is None:
        return []
    try:
        live = coordinator.live_daemons()
    finally:
        coordinator.close()
    if not live:
        return [f"daemon   none running (no heartbeat in the last {_stale(coordinator)} s)"]
    zone = config.site.timezone
    return [
        f"daemon   {d.host} pid {d.pid} {'leader' if d.leader else 'follower'}, "
        f"last heartbeat {iso_time(d.heartbeat_at, zone)}, "
        f"started {iso_time(d.started_at, zone)}"
        for d in live
    ]


def _stale(coordinator: Coordinator) -> str:
    return f"{coordinator.interval * MISSED_HEARTBEATS:g}"


def _stored_time(text: str, zone: tzinfo) -> str:
    """A time the build cache stored as ISO 8601 text, shown like every other."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:  # written by some other version: show it as it is
        return text
    return iso_time(moment, zone) if moment.tzinfo is not None else text


def _next_editions(config: Config) -> list[tuple[str, datetime]]:
    """When the daily and weekly editions are next due, in the site's time zone."""
    from ..clock import system_clock
    from ..daemon.triggers import WallClockCronTrigger

    now = system_clock()
    due = []
    for frequency, expr in (("daily", config.digest.daily), ("weekly", config.digest.weekly)):
        fire = WallClockCronTrigger(expr, config.site.timezone).next_due(None, now)
        if fire is not None:
            due.append((frequency, fire.astimezone(config.site.timezone)))
    return due
