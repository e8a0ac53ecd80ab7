"""``statement-feeds bounces process``: classify the mail returned to the bounce address.

The mailbox is a Maildir (the argument), an IMAP folder (``--imap``), or else the one
``digest.bounce_mailbox`` names (either). See ``digests.bounces`` for what is done with
each message.
Exit 0 when every message was understood, 1 when some were kept as unrecognised
(listed), 2 for a configuration problem (no mailbox, an unreadable Maildir, a login
refused).
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..clock import system_clock
from ..config import Config
from ..errors import ConfigError
from .common import EXIT_INVALID_INPUT, EXIT_OK, Context, handles_errors

if TYPE_CHECKING:
    from ..digests.bounces import Mailbox

__all__ = ["bounces"]


@click.group(short_help="Process the bounces that come back after sending.")
def bounces() -> None:
    """Bounces that arrive after the SMTP conversation (DSNs, feedback-loop reports)."""


@bounces.command("process", short_help="Read returned mail: score bounces, unsubscribe complaints.")
@click.argument("maildir", required=False, type=click.Path(path_type=Path))
@click.option(
    "--imap",
    "imap_url",
    metavar="URL",
    help="Read an IMAP folder instead: imaps://USER@HOST[:PORT][/FOLDER] (imap:// uses "
    "STARTTLS); the password is $STATEMENT_FEEDS_IMAP_PASSWORD.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="A summary in text, or one JSON object.",
)
@click.pass_obj
@handles_errors
def process(ctx: Context, maildir: Path | None, imap_url: str | None, output_format: str) -> None:
    """Classify returned mail in MAILDIR, --imap, or else digest.bounce_mailbox.

    Permanent failures add to the address's bounce score (bounced at
    digest.bounce_threshold), temporary ones are counted, complaints unsubscribe;
    handled mail moves to the .processed folder, the rest to .unrecognised (listed).
    """
    from ..digests.bounce_service import process_mailbox
    from .bounce_report import json_report, text_report

    config = ctx.config
    with ExitStack() as stack:
        mailbox = _mailbox(config, maildir, imap_url, stack)
        # The clock honours $STATEMENT_FEEDS_FAKE_NOW (tests).
        report = process_mailbox(config, mailbox, system_clock)
    if output_format == "json":
        click.echo(json.dumps(json_report(report), ensure_ascii=False))
    else:
        for line in text_report(report):
            click.echo(line)
    sys.exit(EXIT_INVALID_INPUT if report.unrecognised else EXIT_OK)


def _mailbox(
    config: Config, maildir: Path | None, imap_url: str | None, stack: ExitStack
) -> Mailbox:
    from ..digests.bounce_mailbox import MaildirMailbox, open_imap
    from ..digests.bounce_service import configured_mailbox
    from ..environment import imap_password

    if maildir is not None and imap_url:
        raise click.UsageError("give a MAILDIR or --imap, not both")
    if imap_url:
        return stack.enter_context(open_imap(imap_url, imap_password()))
    if maildir is not None:
        return MaildirMailbox(maildir.resolve())
    configured = configured_mailbox(config, stack)
    if configured is None:
        raise ConfigError(
            "no mailbox: give a MAILDIR or --imap URL, or set bounce_mailbox under [digest]",
            path=str(config.path),
            key="digest.bounce_mailbox",
        )
    return configured
