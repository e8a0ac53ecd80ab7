"""VERP and `bounces process` on a PostgreSQL state (``[state] url``): the envelope senders
are signed with the keys in the database (every host shares them, so a bounce can be
processed by any host), the scores and the mark are in the database. A real `digest send`
through aiosmtpd, a real Maildir and a real PostgreSQL database. With several `run`
daemons on the database, only the leader reads its bounce mailbox (real daemons).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from test_bounces import BOUNCES, deliver_to, enable_verp, files, process, returned
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

from daemon_digest_helpers import clean_env
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


# --- several daemons: only the leader reads its bounce mailbox ------------------------


class Daemon:
    """A real ``run`` on a site folder of its own (as on its own host), sharing the
    database; each site's ``bounce_mailbox`` is its own Maildir ``bounces/``."""

    def __init__(self, site_root: Path, config: Path) -> None:
        self.root = site_root
        self.maildir = site_root / "bounces"
        self.log = site_root / "daemon.log"
        with self.log.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "statement_feeds", "--config", str(config), "-v",
                 "run", "--rescan", "0.2", "--heartbeat", "0.5"],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=clean_env(STATEMENT_FEEDS_FAKE_START=(T1 + timedelta(hours=3)).isoformat()),
                cwd=site_root,
            )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def rescans(self) -> int:
        return self.text().count('event="build done" reason=rescan')

    def until(self, check: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"exit {self.proc.poll()}; daemon log:\n{self.text()}")
            time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


def unsubscribed_at(url: str, address: str) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT unsubscribed_at FROM subscribers WHERE email = %s", (address,))
        found = row.fetchone()
    assert found is not None
    return found[0]


@pytest.mark.slow
def test_only_the_leading_daemon_reads_its_bounce_mailbox(
    pg_site: Site, pg_url: str, tmp_path: Path
) -> None:
    # A second site folder, as on a second host: the same config and statements, its own
    # state folder (unused on PostgreSQL), feeds and Maildir.
    other = tmp_path / "other"
    shutil.copytree(
        pg_site.root, other, ignore=shutil.ignore_patterns("state", "public", "bounces")
    )
    maildir = other / "bounces"
    for folder in ("tmp", "new", "cur"):
        (maildir / folder).mkdir(parents=True)
    leader = Daemon(pg_site.root, pg_site.config)
    follower: Daemon | None = None
    try:
        leader.until(lambda: 'event="leadership acquired"' in leader.text())
        follower = Daemon(other, other / "statement-feeds.toml")
        follower.until(lambda: 'event="daemon ready"' in follower.text())
        deliver_to(follower.maildir, "c1", returned(pg_site, "arf.eml", "en@example.com"))
        deliver_to(leader.maildir, "c2", returned(pg_site, "arf.eml", "ru@example.com"))

        leader.until(lambda: files(leader.maildir / ".processed" / "cur") == ["c2:2,S"])
        assert unsubscribed_at(pg_url, "ru@example.com") is not None
        seen = follower.rescans()
        follower.until(lambda: follower.rescans() >= seen + 10)  # ten chances, not taken
        assert files(follower.maildir / "new") == ["c1"]
        assert not (follower.maildir / ".processed").exists()
        assert unsubscribed_at(pg_url, "en@example.com") is None
        assert "bounces processed" not in follower.text()
        assert "leadership acquired" not in follower.text()

        assert leader.stop() == 0  # leadership passes to the other daemon, and the mailbox
        follower.until(lambda: 'event="leadership acquired"' in follower.text())
        follower.until(lambda: files(follower.maildir / ".processed" / "cur") == ["c1:2,S"])
        assert unsubscribed_at(pg_url, "en@example.com") is not None
        assert 'event="bounces processed" messages=1' in follower.text()
    finally:
        leader.stop()
        if follower is not None:
            follower.stop()
