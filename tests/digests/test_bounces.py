"""VERP senders and `bounces process` end to end: a real `digest send` through aiosmtpd
on loopback, DSNs built from what the server received, real SQLite, a real Maildir.

The site is ``test_digest_cli``'s; ``digest.bounce_address`` is set before the edition
at T1 (edition 2: en, ru, ruonly and weekly @example.com each get one message).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import Result
from test_digest_cli import T1, Site, server, site  # noqa: F401 (fixtures)

from imap_server import ImapServer
from statement_feeds.config import load_config
from statement_feeds.domain.verp import VerpSigner, parse_bounce_address
from statement_feeds.errors import ConfigError
from statement_feeds.state.secrets import load_keys

SAMPLES = Path(__file__).parent / "bounce_samples"
BOUNCES = parse_bounce_address("bounces@example.org")
FROM_LINE = 'from = "Statements <statements@example.org>"\n'
T2 = T1 + timedelta(days=1)


def enable_verp(where: Site, threshold: int = 1) -> Path:
    """Set the bounce keys; returns the (empty) Maildir that `bounce_mailbox` names."""
    text = where.config.read_text(encoding="utf-8")
    keys = (
        f'bounce_address = "bounces@example.org"\nbounce_threshold = {threshold}\n'
        'bounce_mailbox = "bounces"\n'
    )
    where.config.write_text(text.replace(FROM_LINE, FROM_LINE + keys), encoding="utf-8")
    maildir = where.root / "bounces"
    for folder in ("tmp", "new", "cur"):
        (maildir / folder).mkdir(parents=True, exist_ok=True)
    return maildir


@pytest.fixture
def sent(site: Site) -> Site:  # noqa: F811 (the fixture imported above)
    enable_verp(site)
    result = site.cli("digest", "send", at=T1)
    assert result.exit_code == 0, result.output
    return site


def returned(where: Site, sample: str, address: str, *, verp: str | None = None) -> bytes:
    """``sample`` about the last message ``address`` got, as the MTA would return it."""
    message = where.server.messages_to(address)[-1]
    raw = (SAMPLES / sample).read_bytes()
    message_id = str(message.parsed()["Message-ID"])
    for placeholder, value in (
        (b"@@VERP@@", verp or message.sender),
        (b"@@RCPT@@", address),
        (b"@@MESSAGE_ID@@", message_id),
    ):
        raw = raw.replace(placeholder, value.encode())
    return raw


def deliver_to(maildir: Path, name: str, raw: bytes) -> None:
    (maildir / "tmp" / name).write_bytes(raw)
    (maildir / "tmp" / name).rename(maildir / "new" / name)


def process(where: Site, *args: str) -> Result:
    return where.cli("bounces", "process", *args, at=T1 + timedelta(hours=3))


def subscriber(where: Site, address: str) -> tuple[object, ...] | None:
    with sqlite3.connect(where.root / "state" / "state.sqlite") as db:
        return db.execute(
            "SELECT bounced_at, unsubscribed_at FROM subscribers WHERE email = ?", (address,)
        ).fetchone()


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- the envelope sender -------------------------------------------------------------


def test_every_digest_has_its_own_verp_envelope_sender(sent: Site) -> None:
    signer = VerpSigner(load_keys(sent.root / "state"))
    senders = {}
    for message in sent.server.messages:
        (address,) = message.recipients
        senders[address] = message.sender
        token = VerpSigner.parse(BOUNCES.token_in(message.sender) or "")
        assert token is not None and token.edition_id == 2
        assert signer.matches(token, address)
        assert message.parsed()["From"] == "Statements <statements@example.org>"  # unchanged
    assert len(senders) == 4 and len(set(senders.values())) == 4
    assert all(s.startswith("bounces+2-") and s.endswith("@example.org") for s in senders.values())


def test_without_the_key_the_envelope_sender_is_the_from_address(site: Site) -> None:  # noqa: F811
    assert site.cli("digest", "send", at=T1).exit_code == 0
    assert {m.sender for m in site.server.messages} == {"statements@example.org"}


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ('"bounces"', "not an address"),
        ('"bounces+x@example.org"', "must not contain '\\+'"),
        ('"' + "b" * 40 + '@example.org"', "too long"),
    ],
)
def test_a_bad_bounce_address_is_a_configuration_error(
    site: Site,  # noqa: F811
    value: str,
    why: str,
) -> None:
    text = site.config.read_text(encoding="utf-8")
    site.config.write_text(
        text.replace(FROM_LINE, f"{FROM_LINE}bounce_address = {value}\n"), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=why) as caught:
        load_config(site.config)
    assert caught.value.key == "digest.bounce_address"
    assert site.cli("digest", "send", at=T1).exit_code == 2


# --- the round trip: accepted, then returned -----------------------------------------


def test_a_dsn_for_one_recipient_marks_that_address_and_a_rerun_does_nothing(
    sent: Site,
) -> None:
    maildir = sent.root / "bounces"
    deliver_to(maildir, "1.dsn", returned(sent, "postfix.eml", "ruonly@example.com"))

    first = process(sent)  # the configured Maildir

    assert first.exit_code == 0, first.output
    assert "marked bounced  ruonly@example.com  (550 5.1.1 <ruonly@example.com>" in first.stdout
    assert "1 messages: 1 permanent" in first.stdout
    bounced = subscriber(sent, "ruonly@example.com")
    assert bounced is not None and bounced[0] is not None
    for other in ("en@example.com", "ru@example.com", "weekly@example.com"):
        state = subscriber(sent, other)
        assert state is not None and state[0] is None
    assert files(maildir / "new") == [] and files(maildir / ".processed" / "cur") == ["1.dsn:2,S"]

    again = process(sent, "--format", "json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["messages"] == 0
    status = sent.cli("subscribers", "list", "--all", at=T2)
    assert "ruonly@example.com" in status.stdout and "bounced" in status.stdout


def test_the_score_counts_one_bounce_per_edition_until_the_threshold(site: Site) -> None:  # noqa: F811
    maildir = enable_verp(site, threshold=2)
    assert site.cli("digest", "send", at=T1).exit_code == 0
    dsn = returned(site, "postfix.eml", "en@example.com")
    deliver_to(maildir, "1.dsn", dsn)
    deliver_to(maildir, "2.dsn", returned(site, "gmail.eml", "en@example.com"))

    first = json.loads(process(site, "--format", "json").stdout)

    assert first["counts"]["permanent"] == 2 and first["marked_bounced"] == []
    assert [o["score"] for o in first["outcomes"]] == [1, 1]  # one edition: one bounce
    site.publish("c.en.md", "Charlie", T1 + timedelta(hours=5))
    assert site.cli("digest", "send", at=T2).exit_code == 0
    deliver_to(maildir, "3.dsn", returned(site, "exim.eml", "en@example.com"))

    second = json.loads(site.cli("bounces", "process", "--format", "json", at=T2).stdout)

    assert second["marked_bounced"] == ["en@example.com"]
    assert second["outcomes"][0]["edition"] == 3 and second["outcomes"][0]["score"] == 2


@pytest.mark.parametrize(
    ("sample", "kind", "action"),
    [
        ("gmail.eml", "permanent", "marked bounced"),
        ("exim.eml", "permanent", "marked bounced"),
        ("outlook.eml", "permanent", "marked bounced"),  # no VERP: found by its Message-ID
        ("temporary.eml", "temporary", "counted"),
        ("arf.eml", "complaint", "unsubscribed"),  # to an FBL address: the Return-Path
        ("out_of_office.eml", "ignored", "none"),
    ],
)
def test_samples_in_the_styles_of_real_systems(
    sent: Site, sample: str, kind: str, action: str
) -> None:
    maildir = sent.root / "bounces"
    deliver_to(maildir, "x.eml", returned(sent, sample, "en@example.com"))

    result = process(sent, str(maildir), "--format", "json")

    assert result.exit_code == 0, result.output
    (outcome,) = json.loads(result.stdout)["outcomes"]
    assert (outcome["kind"], outcome["action"]) == (kind, action)
    if kind != "ignored":
        assert (outcome["address"], outcome["edition"]) == ("en@example.com", 2)
    state = subscriber(sent, "en@example.com")
    assert state is not None
    assert (state[0] is not None) == (action == "marked bounced")
    assert (state[1] is not None) == (action == "unsubscribed")
    assert files(maildir / ".processed" / "cur") == ["x.eml:2,S"]


def test_garbage_and_forged_tokens_are_kept_and_listed(sent: Site) -> None:
    maildir = sent.root / "bounces"
    (message,) = sent.server.messages_to("ruonly@example.com")
    token = BOUNCES.token_in(message.sender) or ""
    edition, _, mac = token.partition("-")
    forged_mac = f"bounces+{edition}-{mac[::-1]}@example.org"  # someone else's, guessed
    other_key = VerpSigner([b"k" * 32]).envelope(BOUNCES, 2, "ruonly@example.com")
    for name, verp in (("forged.dsn", forged_mac), ("other-key.dsn", other_key)):
        raw = returned(sent, "postfix.eml", "ruonly@example.com", verp=verp)
        # Without our Message-ID either: the token is all there is to go on.
        message_id = str(message.parsed()["Message-ID"]).encode()
        deliver_to(maildir, name, raw.replace(message_id, b"<x@example.net>"))
    deliver_to(maildir, "garbage", (SAMPLES / "garbage.eml").read_bytes())

    result = process(sent)

    assert result.exit_code == 1, result.output  # some input was not understood
    assert "forged or unknown" in result.stdout
    assert result.stdout.count("unrecognised    ") == 3
    assert "3 unrecognised" in result.stdout
    assert "(the report names ruonly@example.com)" in result.stdout
    state = subscriber(sent, "ruonly@example.com")
    assert state is not None and state[0] is None  # nobody was marked
    assert files(maildir / ".unrecognised" / "cur") == [
        "forged.dsn:2,S",
        "garbage:2,S",
        "other-key.dsn:2,S",
    ]
    assert process(sent).stdout.startswith("0 messages")  # not listed twice


# --- failure paths ---------------------------------------------------------------------


def test_an_unreadable_maildir_is_a_configuration_error(sent: Site, tmp_path: Path) -> None:
    missing = process(sent, str(tmp_path / "nowhere"))
    assert missing.exit_code == 2
    assert "cannot read the Maildir" in missing.stderr and "nowhere" in missing.stderr
    not_a_maildir = tmp_path / "plain"
    (not_a_maildir / "new").mkdir(parents=True)
    (not_a_maildir / "cur").write_text("a file, not a folder", encoding="utf-8")
    result = process(sent, str(not_a_maildir))
    assert result.exit_code == 2 and "cur is missing or not readable" in result.stderr


def test_no_mailbox_configured_is_a_configuration_error(site: Site) -> None:  # noqa: F811
    result = site.cli("bounces", "process", at=T1)
    assert result.exit_code == 2
    assert "digest.bounce_mailbox" in result.stderr and "--imap" in result.stderr


# --- IMAP ------------------------------------------------------------------------------


def test_an_imap_folder_is_processed_and_marked_seen(sent: Site) -> None:
    dsn = returned(sent, "gmail.eml", "ru@example.com")
    with ImapServer("bounces", "s3cret", [dsn, b"garbage\r\n"]) as imap:
        url = f"imap://bounces@127.0.0.1:{imap.port}/INBOX"
        env = {"STATEMENT_FEEDS_IMAP_PASSWORD": "s3cret"}
        first = sent.cli("bounces", "process", "--imap", url, at=T1, env=env)
        again = sent.cli("bounces", "process", "--imap", url, at=T1, env=env)

    assert first.exit_code == 1, first.output  # the garbage is listed
    assert "marked bounced  ru@example.com" in first.stdout
    assert "unrecognised    2 " in first.stdout
    assert imap.flags == {1: {"\\Seen"}, 2: {"\\Seen", "\\Flagged"}}
    assert again.exit_code == 0 and again.stdout.startswith("0 messages")


def test_bad_imap_credentials_are_a_configuration_error(sent: Site) -> None:
    with ImapServer("bounces", "s3cret", []) as imap:
        url = f"imap://bounces@127.0.0.1:{imap.port}/"
        wrong = sent.cli(
            "bounces",
            "process",
            "--imap",
            url,
            at=T1,
            env={"STATEMENT_FEEDS_IMAP_PASSWORD": "guess"},
        )
        missing = sent.cli("bounces", "process", "--imap", url, at=T1)
        folder = sent.cli(
            "bounces",
            "process",
            "--imap",
            url + "Nope",
            at=T1,
            env={"STATEMENT_FEEDS_IMAP_PASSWORD": "s3cret"},
        )

    assert wrong.exit_code == 2
    assert "refused the login of 'bounces'" in wrong.stderr
    assert "guess" not in wrong.output  # the password is never shown
    assert missing.exit_code == 2 and "STATEMENT_FEEDS_IMAP_PASSWORD" in missing.stderr
    assert folder.exit_code == 2 and "no IMAP folder 'Nope'" in folder.stderr


def test_a_bad_imap_url_or_both_mailboxes_are_refused(sent: Site) -> None:
    url = sent.cli("bounces", "process", "--imap", "pop3://x@host/", at=T1)
    assert url.exit_code == 2 and "imaps://USER@HOST" in url.stderr
    both = sent.cli("bounces", "process", "somewhere", "--imap", "imaps://a@b/", at=T1)
    assert both.exit_code == 2 and "not both" in both.output


def test_a_dropped_imap_connection_ends_the_run_with_nothing_marked(sent: Site) -> None:
    dsn = returned(sent, "gmail.eml", "ru@example.com")
    with ImapServer("bounces", "s3cret", [dsn]) as imap:
        imap.drop_on_fetch = True
        url = f"imap://bounces@127.0.0.1:{imap.port}/INBOX"
        env = {"STATEMENT_FEEDS_IMAP_PASSWORD": "s3cret"}
        result = sent.cli("bounces", "process", "--imap", url, at=T1, env=env)

    assert result.exit_code == 2
    assert f"the IMAP server 127.0.0.1:{imap.port} failed" in result.stderr
    assert imap.flags == {1: set()}  # still unseen: the next run reads it


def test_the_configured_mailbox_may_be_an_imap_folder(sent: Site) -> None:
    dsn = returned(sent, "temporary.eml", "ru@example.com")
    with ImapServer("bounces", "s3cret", [dsn]) as imap:
        text = sent.config.read_text(encoding="utf-8").replace(
            'bounce_mailbox = "bounces"', f'bounce_mailbox = "imap://bounces@127.0.0.1:{imap.port}"'
        )
        sent.config.write_text(text, encoding="utf-8")
        env = {"STATEMENT_FEEDS_IMAP_PASSWORD": "s3cret"}
        result = sent.cli("bounces", "process", "--format", "json", at=T1, env=env)
        refused = sent.cli("bounces", "process", at=T1)  # no password in the environment

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["temporary"] == 1
    assert imap.flags == {1: {"\\Seen"}}
    assert refused.exit_code == 2 and "STATEMENT_FEEDS_IMAP_PASSWORD" in refused.stderr
