"""``statement-feeds state backup|copy``: back up the SQLite state; move it to PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import StateError
from .common import Context, handles_errors

__all__ = ["state"]


@click.group(short_help="Back up the SQLite state, or move it into PostgreSQL.")
def state() -> None:
    """Back up the SQLite state (while the daemon runs), or move it into PostgreSQL."""


@state.command("backup", short_help="Copy the SQLite state into FILE, safely while running.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.pass_obj
@handles_errors
def state_backup(ctx: Context, file: Path, force: bool) -> None:
    """Copy the SQLite state database into FILE, also while the daemon runs.

    SQLite's online backup API takes a consistent snapshot; the copy is checked with
    PRAGMA integrity_check and then renamed into place. Keep secret.key, the config and
    the statements too. With [state] url set, use pg_dump instead.
    """
    from ..state.backup import backup_state
    from ..state.postgres_errors import describe_url
    from ..state.secrets import KEY_FILE

    config = ctx.config
    if config.state.url:
        raise StateError(
            f"the state is in PostgreSQL ({describe_url(config.state.url)}), not in "
            "SQLite: back it up with pg_dump (e.g. pg_dump -Fc -f statements.dump "
            "<database>) and keep secret.key, the config and the statements with it"
        )
    report = backup_state(config.paths.state, file, force=force)
    click.echo(
        f"backed up {report.source} to {report.target} ({report.bytes} bytes, "
        f"integrity ok) in {report.seconds:.2f} s"
    )
    # What a restore needs besides the database (README: "Backup and restore").
    key = config.paths.state / KEY_FILE
    others = [str(p) for p in (key, config.path, config.paths.statements) if p.exists()]
    click.echo(f"keep with it: {', '.join(others)}")


@state.command("copy", short_help="Move the SQLite state into an empty PostgreSQL database.")
@click.option(
    "--to",
    "url",
    required=True,
    metavar="URL",
    help="The empty PostgreSQL database: postgresql://user@host:5432/database (no "
    "password: set $STATEMENT_FEEDS_STATE_PASSWORD, PGPASSWORD or ~/.pgpass).",
)
@click.pass_obj
@handles_errors
def state_copy(ctx: Context, url: str) -> None:
    """Move the SQLite state in paths.state into an empty PostgreSQL database.

    Every table (subscribers, unsubscribes, bounces, web sign-ups, preferences,
    editions, the delivery ledger and the rest) in one transaction, row counts checked
    before the commit. Refused while a daemon or `digest send` uses the state, and when
    the target holds data. Then set [state] url to the same URL.
    """
    from ..state.postgres_copy import copy_state

    report = copy_state(ctx.config.paths.state, url)
    for table, rows in report.rows.items():
        click.echo(f"copied   {table:<22} {rows:>9} rows")
    rate = report.total / report.seconds if report.seconds else 0.0
    click.echo(
        f"copied {report.total} rows into {report.target} in {report.seconds:.2f} s "
        f'({rate:,.0f} rows/s); now set [state] url = "{url}" in the config'
    )
    if report.analyse_error is None:
        click.echo(f"gathered the tables' statistics in {report.analyse_seconds:.2f} s")
    else:  # the copy stands: autovacuum gathers them later
        click.echo(
            f"warning: could not gather the tables' statistics ({report.analyse_error}); "
            "the copy is complete. Run ANALYZE on the database before the first "
            "digest on a big list, or let autovacuum do it.",
            err=True,
        )
