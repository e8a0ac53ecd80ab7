"""VERP and `bounces process` on a PostgreSQL state (``[state] url``): the envelope senders
are signed with the keys in the database (every host shares them, so a bounce can be
processed by any host), the scores and the mark are in the database. A real `digest send`
through aiosmtpd, a real Maildir and a real PostgreSQL database.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from test_bounces import BOUNCES, deliver_to, enable_verp, process, returned
from test_digest_cli import (
    PUBLIC_URL,
    SUBSCRIBERS,
    T0,
    T1,
    MakeSite,
    MakeText,
    Site,
    server,  # noqa: F401 (a fixture)
    write_config,
)

from smtp_server import RecordingServer
from statement_feeds.domain.verp import VerpSigner
from statement_feeds.state.postgres import PostgresStore


@pytest.fixture
def pg_site(
    tmp_path: Path,
    make_site: MakeSite,
    statement_md: MakeText,
    server: RecordingServer,  # noqa: F811
    pg_url: str,
) -> Site:
    config = write_config(make_site, tmp_path / "site", server, public_url=PUBLIC_URL)
    config.write_text(config.read_text() + f'\n[state]\nurl = "{pg_url}"\n')
    site = Site(config, server, statement_md)
    (site.root / "subscribers" / "list.csv").write_text(SUBSCRIBERS, encoding="utf-8")
    assert site.cli("digest", "send", at=T0).exit_code == 0  # everyone joins at T0
    site.publish("a.en.md", "Alpha", T0 + timedelta(hours=1))
    enable_verp(site)
    sent = site.cli("digest", "send", at=T1)
    assert sent.exit_code == 0, sent.output
    return site


def bounced_at(url: str, address: str) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT bounced_at FROM subscribers WHERE email = %s", (address,))
        found = row.fetchone()
    assert found is not None
    return found[0]


def test_verp_senders_are_signed_with_the_databases_keys(pg_site: Site, pg_url: str) -> None:
    with PostgresStore(pg_url) as store:
        signer = VerpSigner(store.signing_keys())
    assert pg_site.server.messages
    for message in pg_site.server.messages:
        (address,) = message.recipients
        token = VerpSigner.parse(BOUNCES.token_in(message.sender) or "")
        assert token is not None and signer.matches(token, address)


def test_a_dsn_marks_the_address_in_the_database(pg_site: Site, pg_url: str) -> None:
    maildir = pg_site.root / "bounces"
    deliver_to(maildir, "1.dsn", returned(pg_site, "postfix.eml", "en@example.com"))

    result = process(pg_site, "--format", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["marked_bounced"] == ["en@example.com"]
    assert bounced_at(pg_url, "en@example.com") is not None
    assert bounced_at(pg_url, "ru@example.com") is None
    with psycopg.connect(pg_url) as conn:
        scores = conn.execute("SELECT email, score FROM bounce_scores").fetchall()
    assert scores == [("en@example.com", 1)]


def test_a_token_signed_with_another_key_is_not_trusted(pg_site: Site, pg_url: str) -> None:
    # E.g. the SQLite state's key file: on PostgreSQL only the database's keys count.
    (message,) = pg_site.server.messages_to("en@example.com")
    forged = VerpSigner([b"k" * 32]).envelope(BOUNCES, 2, "en@example.com")
    raw = returned(pg_site, "postfix.eml", "en@example.com", verp=forged)
    message_id = str(message.parsed()["Message-ID"]).encode()
    deliver_to(pg_site.root / "bounces", "1.dsn", raw.replace(message_id, b"<x@example.net>"))

    result = process(pg_site)

    assert result.exit_code == 1, result.output
    assert "forged or unknown" in result.stdout
    assert bounced_at(pg_url, "en@example.com") is None
