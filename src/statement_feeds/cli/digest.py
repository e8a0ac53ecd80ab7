"""``statement-feeds digest send`` and ``digest preview``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import EXIT_INVALID_INPUT, EXIT_OK, Context, handles_errors, report_problems

if TYPE_CHECKING:
    from ..digests.diagnosis import Diagnosis
    from ..digests.send import Progress
    from ..digests.service import SendOutcome

__all__ = ["digest"]


@click.group(short_help="Plan, send and preview email digests.")
def digest() -> None:
    """Plan, send and preview email digests."""


@digest.command("send", short_help="Plan an edition now and deliver it.")
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
@handles_errors
def digest_send(ctx: Context, frequency: str | None, dry_run: bool, resend_failed: bool) -> None:
    """Plan an edition now and deliver it."""
    from ..digests.service import Digests

    digests = Digests(ctx.config)
    if dry_run:
        shown = digests.dry_run(frequency or "manual")
        report_problems(shown.problems)
        for delivery in shown.planned:
            titles = "; ".join(shown.labels.get(i, i) for i in delivery.statement_ids)
            fixed = "; ".join(shown.labels.get(c.statement_id, "?") for c in delivery.corrections)
            if fixed:
                titles = f"{titles}  corrected: {fixed}" if titles else f"corrected: {fixed}"
            click.echo(f"{delivery.email}  [{delivery.lang}]  {titles}")
        click.echo(
            f"dry run: {len(shown.planned)} messages would be sent; nothing was sent or recorded"
        )
        if not shown.planned:
            _explain(shown.diagnosis)
        sys.exit(EXIT_INVALID_INPUT if shown.problems else EXIT_OK)
    live = _ProgressLine() if sys.stderr.isatty() else None
    import asyncio  # here: the other commands (build, check) start faster without it

    outcome = asyncio.run(digests.send(frequency, resend_failed=resend_failed, progress=live))
    if live is not None:
        live.finish()
    problems = list(outcome.plan.problems) if outcome.plan else []
    report_problems(problems)
    click.echo(_send_summary(outcome))
    plan = outcome.plan
    if plan is not None and plan.created and not plan.edition.deliveries and plan.diagnosis:
        _explain(plan.diagnosis)
    sys.exit(EXIT_INVALID_INPUT if problems else EXIT_OK)


def _explain(diagnosis: Diagnosis) -> None:
    """Why an edition has no message: after the summary, on stdout like it."""
    for line in diagnosis.lines():
        click.echo(line)


def _send_summary(outcome: SendOutcome) -> str:
    plan = ""
    if outcome.plan is not None:
        edition = outcome.plan.edition
        verb = "planned" if outcome.plan.created else "already planned"
        plan = f"edition {edition.id} {verb} ({edition.deliveries} messages); "
    if outcome.summary is None:
        if outcome.daemons:
            many = "s deliver" if outcome.daemons > 1 else " delivers"
            return f"{plan}{outcome.daemons} running daemon{many} it (woken through the database)"
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


@digest.command("preview", short_help="Render a digest to .txt, .html and .eml files.")
@click.option("--lang", help="Language of the digest (default: site.default_language).")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the files (default: <state>/preview).",
)
@click.pass_obj
@handles_errors
def digest_preview(ctx: Context, lang: str | None, out: Path | None) -> None:
    """Render a digest of the latest statements to text, HTML and .eml files."""
    from ..digests.service import Digests

    folder = out or ctx.config.paths.state / "preview"
    for path in Digests(ctx.config).preview(lang, folder):
        click.echo(str(path))
