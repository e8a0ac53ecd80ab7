"""Confirmation mails carry a VERP envelope sender too (edition 0), and a bounce of one
is recognised and named but scores nothing (the address is no subscriber yet)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from test_app import Site, run_site, smtp  # noqa: F401 (fixture)

from smtp_server import RecordingServer
from statement_feeds.digests.bounce_mailbox import MaildirMailbox
from statement_feeds.digests.bounce_service import process_mailbox
from statement_feeds.domain.verp import VerpSigner, parse_bounce_address
from statement_feeds.state.secrets import load_keys

SAMPLES = Path(__file__).parents[1] / "digests" / "bounce_samples"
# Written where test_app's make_config puts the From address: the key follows it.
SENDER = 'Statements <statements@example.org>"\nbounce_address = "bounces@example.org'


def test_a_confirmation_mail_has_a_verp_sender_and_its_bounce_is_named(
    tmp_path: Path,
    smtp: RecordingServer,  # noqa: F811
) -> None:
    async def scenario(site: Site) -> None:
        status, _ = await site.subscribe("anna@example.com")
        assert status == 200
        await site.mails_to("anna@example.com")
        (received,) = site.smtp.messages_to("anna@example.com")
        bounce = parse_bounce_address("bounces@example.org")
        token = VerpSigner.parse(bounce.token_in(received.sender) or "")
        assert token is not None and token.edition_id == 0
        assert VerpSigner(load_keys(site.config.paths.state)).matches(token, "anna@example.com")
        assert received.parsed()["From"] == "Statements <statements@example.org>"

        maildir = tmp_path / "bounces"
        for folder in ("tmp", "new", "cur"):
            (maildir / folder).mkdir(parents=True)
        raw = (SAMPLES / "postfix.eml").read_bytes()
        raw = raw.replace(b"@@VERP@@", received.sender.encode())
        raw = raw.replace(b"@@RCPT@@", b"anna@example.com").replace(b"@@MESSAGE_ID@@", b"<x@y>")
        (maildir / "new" / "1").write_bytes(raw)
        now = datetime(2024, 5, 2, tzinfo=UTC)
        report = process_mailbox(site.config, MaildirMailbox(maildir), lambda: now)
        (outcome,) = report.outcomes
        assert (outcome.kind, outcome.address, outcome.edition) == (
            "permanent",
            "anna@example.com",
            0,
        )
        assert outcome.action == "none" and report.marked == []

    run_site(tmp_path, smtp, scenario, sender=SENDER)
