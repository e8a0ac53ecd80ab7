"""``statement-feeds deliveries``: the ledger's deliveries, one line each.

Text is one aligned line per delivery (edition, address, state, attempts, reply code,
enhanced code, next attempt, reply text); JSON is JSON Lines (one object per line),
so a large edition streams from the database to the pipe without being held whole.
A failed delivery whose address is marked bounced shows the state ``bounced`` in the
text; JSON keeps the ledger's state and says ``"address_bounced": true``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

import click

from ..clock import iso_time
from ..state.delivery_states import DELIVERY_FILTERS
from .common import Context, handles_errors

if TYPE_CHECKING:  # the store's protocols: imported by the command that uses them
    from ..state.api import DeliveryRow

__all__ = ["deliveries", "reply_parts"]

# An RFC 3463 enhanced status code standing on its own in a reply text.
_ENHANCED = re.compile(r"(?<![\d.])([245])\.\d{1,3}\.\d{1,3}(?![\d.])")


@click.command(short_help="One line per delivery: state, SMTP reply, retry.")
@click.option(
    "--edition",
    "edition_id",
    type=click.IntRange(min=1),
    metavar="N",
    help="Only this edition (its number as `status` shows it).",
)
@click.option(
    "--state",
    type=click.Choice(DELIVERY_FILTERS),
    help="Only this state: failed, deferred, bounced (failed, address marked bounced), "
    "sending (outcome unknown), or pending, sent, cancelled.",
)
@click.option("--address", metavar="EMAIL", help="Only this address (any spelling of it).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Aligned text, or JSON Lines (one object per delivery).",
)
@click.pass_obj
@handles_errors
def deliveries(
    ctx: Context,
    edition_id: int | None,
    state: str | None,
    address: str | None,
    output_format: str,
) -> None:
    """One line per delivery: address, state, attempts, last SMTP reply, next attempt.

    Text columns: edition, address, state, attempts, reply code, enhanced code, next
    attempt (pending and deferred only; ISO 8601 in the site's time zone), reply text;
    "-" where there is none. Nothing matching: no output, exit 0.
    """
    from ..state.open import open_store

    config = ctx.config
    zone = config.site.timezone
    shown = 0
    with open_store(config) as store:
        for row in store.deliveries(edition_id, state, address):
            click.echo(_json_line(row, zone) if output_format == "json" else _text_line(row, zone))
            shown += 1
    if not shown:  # not an error: a query that matches nothing has an empty answer
        click.echo("no deliveries match", err=True)


def reply_parts(row: DeliveryRow) -> tuple[int | None, str | None, str | None]:
    """(reply code, enhanced code such as "5.1.1", text) of the last recorded reply.

    The enhanced code is not stored on its own: it is read back from the text. Its
    place there varies ("recipient refused: 550 5.1.1 ...", "451 recipient deferred:
    4.3.0 ..."), so the first code of the reply's class (RFC 3463: 5.x.x for 5xx) wins.
    """
    from ..digests.smtp_errors import enhanced_status

    code, text = row.last_code, row.last_error
    if code is None or text is None:
        return code, None, text
    for match in _ENHANCED.finditer(text):
        if match.group(1) == str(code)[0]:
            return code, enhanced_status(match.group(0)), text
    return code, None, text


def _local(moment: datetime | None, zone: tzinfo) -> str | None:
    """ISO 8601 with the offset, in the site's time zone (as the admin reads the site)."""
    return None if moment is None else iso_time(moment, zone)


def _shown_state(row: DeliveryRow) -> str:
    # Why `digest send --resend-failed` skips it: worth seeing without a second query.
    return "bounced" if row.state == "failed" and row.address_bounced else row.state


def _text_line(row: DeliveryRow, zone: tzinfo) -> str:
    code, enhanced, text = reply_parts(row)
    return (
        f"{row.edition_id:>5} {row.email:40} {_shown_state(row):9} {row.attempts:>3} "
        f"{code or '-':>3} {enhanced or '-':7} {_local(row.next_attempt_at, zone) or '-':25} "
        f"{text or '-'}"
    ).rstrip()


def _json_line(row: DeliveryRow, zone: tzinfo) -> str:
    code, enhanced, text = reply_parts(row)
    reply: dict[str, Any] | None = None
    if code is not None or text is not None:
        reply = {"code": code, "enhanced_code": enhanced, "text": text}
    return json.dumps(
        {
            "edition": row.edition_id,
            "address": row.email,
            "state": row.state,
            "address_bounced": row.address_bounced,
            "attempts": row.attempts,
            "last_reply": reply,
            "next_attempt": _local(row.next_attempt_at, zone),
            "updated": _local(row.updated_at, zone),
        },
        ensure_ascii=False,
    )
