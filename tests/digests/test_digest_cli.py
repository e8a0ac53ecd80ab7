"""`digest send|preview` and `status` end to end: the CLI, real SQLite, a real aiosmtpd server.

Every command runs through click as the user runs it, with the clock pinned by
``$STATEMENT_FEEDS_FAKE_NOW`` (``clock.system_clock`` honours it). Timeline of the
site built by the ``site`` fixture:

* ``T0``: a first ``digest send`` with no new statements records everyone's join
  time ("new" means published after joining);
* statements dated after ``T0`` are then published, and the editions under test
  are sent at ``T1`` (a day later) and after.
"""

from __future__ import annotations

import email
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from smtp_server import Received, RecordingServer
from statement_feeds.cli import cli
from statement_feeds.state.lock import lock_holder

MakeSite = Callable[..., Path]
MakeText = Callable[..., str]

T0 = datetime(2024, 5, 1, 7, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
PUBLIC_URL = "https://example.org/newsletter/"

SUBSCRIBERS = """\
email,name,languages,frequency
en@example.com,Ann,en,daily
ru@example.com,Борис,ru en,daily
ruonly@example.com,Вера,ru,daily
fr@example.com,Françoise,fr,daily
weekly@example.com,Will,en,weekly
"""
DAILY = {"en@example.com", "ru@example.com", "ruonly@example.com"}
# fr@example.com asked for French only: there is none, so it never gets mail.


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Site:
    """A site on disk whose [smtp] points at ``server``; runs the CLI at pinned times."""

    def __init__(self, config: Path, server: RecordingServer, statement_md: MakeText) -> None:
        self.config = config
        self.root = config.parent
        self.server = server
        self._statement_md = statement_md

    def cli(self, *args: str, at: datetime, env: Mapping[str, str] | None = None) -> Result:
        environment: dict[str, str | None] = {
            "STATEMENT_FEEDS_CONFIG": None,
            "STATEMENT_FEEDS_FAKE_NOW": at.isoformat(),
            **(env or {}),
        }
        return CliRunner().invoke(
            cli, ["--config", str(self.config), *args], env=environment, catch_exceptions=False
        )

    def publish(self, name: str, title: str, date: datetime, **keys: str) -> None:
        text = self._statement_md(
            title=title,
            date=stamp(date),
            body=f"The body of {title}.\n\nMore of {title}.\n",
            **keys,
        )
        (self.root / "statements" / name).write_text(text, encoding="utf-8")

    def ledger(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.root / "state" / "state.sqlite") as db:
            return db.execute(sql, params).fetchall()

    def states(self) -> dict[str, str]:
        """email → delivery state, over every edition (one delivery each in these tests)."""
        return {str(e): str(s) for e, s in self.ledger("SELECT email, state FROM deliveries")}

    def recipients(self) -> list[str]:
        """Every envelope recipient the server accepted a message for, repeats included."""
        return sorted(r for m in self.server.messages for r in m.recipients)


def write_config(
    make_site: MakeSite, root: Path, server: RecordingServer, *, public_url: str | None
) -> Path:
    http = f'\n[http]\npublic_url = "{public_url}"\n' if public_url else ""
    config = make_site(root, extra_toml=http)
    text = config.read_text(encoding="utf-8")
    smtp = (
        f'[smtp]\nhost = "{server.host}"\nport = {server.port}\nsecurity = "none"\n'
        "concurrency = 2\ntimeout = 5\n"
    )
    assert '[smtp]\nhost = ""\n' in text
    config.write_text(text.replace('[smtp]\nhost = ""\n', smtp), encoding="utf-8")
    return config


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as smtp:
        yield smtp


@pytest.fixture
def site(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText, server: RecordingServer
) -> Site:
    """Subscribers joined at T0; statements a (en, ru embargoed till T1+1h), b (en+ru)."""
    config = write_config(make_site, tmp_path / "site", server, public_url=PUBLIC_URL)
    site = Site(config, server, statement_md)
    (site.root / "subscribers" / "list.csv").write_text(SUBSCRIBERS, encoding="utf-8")
    site.publish("old.en.md", "Old news", T0 - timedelta(hours=5))
    joined = site.cli("digest", "send", at=T0)
    assert joined.exit_code == 0, joined.output
    assert server.messages == []  # "old news" predates everyone's joining
    site.publish("a.en.md", "Alpha", T0 + timedelta(hours=1))
    site.publish("a.ru.md", "Альфа", T1 + timedelta(hours=1))  # embargoed until then
    site.publish("b.en.md", "Bravo", T0 + timedelta(hours=2))
    site.publish("b.ru.md", "Браво", T0 + timedelta(hours=2))
    return site


def parsed(message: Received) -> EmailMessage:
    return message.parsed()


def text_of(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content(), html.get_content()


def only_message(site: Site, address: str) -> EmailMessage:
    received = site.server.messages_to(address)
    assert len(received) == 1, f"{address}: {len(received)} messages"
    assert received[0].recipients == (address,)
    return parsed(received[0])


# --- recipients, languages, fallback, no re-send of translations -----------------


def test_send_reaches_the_right_people_in_their_languages(site: Site) -> None:
    result = site.cli("digest", "send", at=T1)

    assert result.exit_code == 0, result.output
    assert "sent 4, deferred 0, failed 0" in result.output
    assert site.recipients() == sorted({*DAILY, "weekly@example.com"})

    english = only_message(site, "en@example.com")
    assert english["Content-Language"] == "en"
    assert english["To"] == "Ann <en@example.com>"
    assert english.get_content_type() == "multipart/alternative"
    plain, html = text_of(english)
    for body in (plain, html):
        assert "Alpha" in body and "Bravo" in body
        assert "Full statement" in body
        assert "Old news" not in body  # published before they joined
        assert "Альфа" not in body and "Браво" not in body
    assert english["List-Unsubscribe"].startswith(f"<{PUBLIC_URL}")
    assert english["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # "ru en": Russian where it exists (Bravo), English fallback for Alpha (the Russian
    # one is still embargoed), labels in Russian.
    russian = only_message(site, "ru@example.com")
    assert russian["Content-Language"] == "ru"
    plain, html = text_of(russian)
    for body in (plain, html):
        assert "Браво" in body and "Alpha" in body
        assert "Bravo" not in body and "Альфа" not in body
        assert "Полный текст заявления" in body
    # "ru" only: no fallback, so only Bravo.
    plain, _ = text_of(only_message(site, "ruonly@example.com"))
    assert "Браво" in plain and "Alpha" not in plain
    assert site.server.messages_to("fr@example.com") == []

    # The next day: Альфа is out now. ru@ already had Alpha in English, so it must not
    # get the translation; ruonly@ never had Alpha and gets it; a new English statement
    # goes to the English readers (ru@ included, by fallback).
    site.publish("c.en.md", "Charlie", T1 + timedelta(hours=3))
    before = len(site.server.messages)
    result = site.cli("digest", "send", at=T1 + timedelta(days=1))
    assert result.exit_code == 0, result.output
    second = site.server.messages[before:]
    by_rcpt = {m.recipients[0]: parsed(m) for m in second}
    assert sorted(by_rcpt) == sorted({*DAILY, "weekly@example.com"})
    assert len(second) == 4
    plain, _ = text_of(by_rcpt["ru@example.com"])
    assert "Charlie" in plain and "Альфа" not in plain and "Alpha" not in plain
    plain, _ = text_of(by_rcpt["ruonly@example.com"])
    assert "Альфа" in plain and "Charlie" not in plain
    plain, _ = text_of(by_rcpt["en@example.com"])
    assert "Charlie" in plain and "Alpha" not in plain and "Bravo" not in plain


def test_a_second_send_at_once_sends_nothing_new(site: Site) -> None:
    assert site.cli("digest", "send", at=T1).exit_code == 0
    sent = len(site.server.messages)
    assert sent == 4

    same_time = site.cli("digest", "send", at=T1)
    assert same_time.exit_code == 0, same_time.output
    assert "already planned" in same_time.output
    a_minute_later = site.cli("digest", "send", at=T1 + timedelta(minutes=1))
    assert a_minute_later.exit_code == 0, a_minute_later.output
    assert "(0 messages)" in a_minute_later.output

    assert len(site.server.messages) == sent
    assert set(site.states().values()) == {"sent"}


def test_frequency_picks_daily_or_weekly_subscribers(site: Site) -> None:
    daily = site.cli("digest", "send", "--frequency", "daily", at=T1)
    assert daily.exit_code == 0, daily.output
    assert site.recipients() == sorted(DAILY)

    weekly = site.cli("digest", "send", "--frequency", "weekly", at=T1)
    assert weekly.exit_code == 0, weekly.output
    assert site.recipients() == sorted({*DAILY, "weekly@example.com"})
    plain, _ = text_of(only_message(site, "weekly@example.com"))
    assert "Alpha" in plain and "Bravo" in plain

    # Everyone has had everything: a manual edition now has nobody to write to.
    everyone = site.cli("digest", "send", at=T1 + timedelta(minutes=5))
    assert everyone.exit_code == 0
    assert len(site.server.messages) == 4


def test_dry_run_prints_who_gets_what_and_records_nothing(site: Site) -> None:
    editions = site.ledger("SELECT COUNT(*) FROM editions")
    subscribers = site.ledger("SELECT COUNT(*) FROM subscribers")
    connections = site.server.connections  # the controller's start-up probe counts
    (site.root / "subscribers" / "late.csv").write_text(
        "email,languages\nlate@example.com,en\n", encoding="utf-8"
    )

    result = site.cli("digest", "send", "--dry-run", at=T1)

    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "@" in line]
    assert sorted(line.split()[0] for line in lines) == sorted({*DAILY, "weekly@example.com"})
    russian = next(line for line in lines if line.startswith("ru@example.com"))
    # Titles and languages, not ids: Alpha in English (Альфа is embargoed), Браво.
    assert russian.split("  ")[1:] == ["[ru]", "Браво (ru); Alpha (en)"], russian
    assert "urn:uuid" not in result.output
    assert "4 messages would be sent" in result.output
    assert site.server.messages == []
    assert site.server.connections == connections
    assert site.ledger("SELECT COUNT(*) FROM editions") == editions
    # Not even the join time of a new address is recorded.
    assert site.ledger("SELECT COUNT(*) FROM subscribers") == subscribers

    # ... so the real send afterwards still has everything to send.
    real = site.cli("digest", "send", at=T1)
    assert real.exit_code == 0
    assert site.recipients() == sorted({*DAILY, "weekly@example.com"})


# --- why an edition has no message -----------------------------------------------


def bare_site(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText, server: RecordingServer
) -> Site:
    config = write_config(make_site, tmp_path / "bare", server, public_url=PUBLIC_URL)
    return Site(config, server, statement_md)


def test_zero_messages_nobody_subscribed(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText, server: RecordingServer
) -> None:
    site = bare_site(tmp_path, make_site, statement_md, server)
    site.publish("a.en.md", "Alpha", T0 - timedelta(hours=1))

    for args in (("digest", "send"), ("digest", "send", "--dry-run")):
        result = site.cli(*args, at=T0)
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[-1].startswith("nobody is subscribed"), result.output


def test_zero_messages_nothing_published(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText, server: RecordingServer
) -> None:
    site = bare_site(tmp_path, make_site, statement_md, server)
    (site.root / "subscribers" / "list.csv").write_text(SUBSCRIBERS, encoding="utf-8")

    result = site.cli("digest", "send", at=T0)

    assert result.exit_code == 0, result.output
    assert "(0 messages)" in result.output
    assert "no statement is published yet" in result.output


def test_zero_messages_no_subscriber_with_that_frequency(site: Site) -> None:
    daily_only = "".join(line for line in SUBSCRIBERS.splitlines(True) if "weekly" not in line)
    (site.root / "subscribers" / "list.csv").write_text(daily_only, encoding="utf-8")

    result = site.cli("digest", "send", "--frequency", "weekly", at=T1)

    assert result.exit_code == 0, result.output
    assert "no subscriber has the frequency weekly (4 have another)" in result.output


def test_zero_messages_first_seen_now_says_new_starts_then(site: Site) -> None:
    (site.root / "subscribers" / "list.csv").write_text(
        "email,languages\nlate@example.com,en\n", encoding="utf-8"
    )

    result = site.cli("digest", "send", "--dry-run", at=T1)

    assert result.exit_code == 0, result.output
    assert "1 first seen by the state just now" in result.output
    assert '"new" starts when the state first saw them' in result.output


def test_zero_messages_nothing_published_since_they_joined(site: Site) -> None:
    # Alpha and Bravo are dated after this: only "Old news" (T0 - 5h) is out.
    result = site.cli("digest", "send", at=T0 + timedelta(minutes=30))

    assert result.exit_code == 0, result.output
    assert "(0 messages)" in result.output
    assert (
        "3 with nothing published since they joined "
        "(newest statement 2024-05-01 02:00 UTC, earliest join 2024-05-01 07:00 UTC)"
    ) in result.output
    # fr@ (French) and ruonly@ (Russian): "Old news" is English only.
    assert "2 with nothing published in their languages" in result.output
    assert '"new" starts when the state first saw them' in result.output


def test_zero_messages_everything_already_sent(site: Site) -> None:
    assert site.cli("digest", "send", at=T1).exit_code == 0

    result = site.cli("digest", "send", at=T1 + timedelta(minutes=1))

    assert result.exit_code == 0, result.output
    assert "nothing new for any of the 5 subscribers: 4 already sent everything new" in (
        result.output
    )
    assert "first saw them" not in result.output


def test_zero_messages_everything_older_than_max_age(site: Site) -> None:
    result = site.cli("digest", "send", at=T1 + timedelta(days=40))

    assert result.exit_code == 0, result.output
    assert "4 whose new statements are all older than digest.max_age (30 days)" in (result.output)
    assert site.server.messages == []


def test_an_edition_with_messages_gives_no_diagnosis(site: Site) -> None:
    result = site.cli("digest", "send", at=T1)

    assert result.exit_code == 0, result.output
    assert "nothing new" not in result.output


# --- input and configuration errors ------------------------------------------------


def test_a_bad_subscriber_row_exits_1_and_the_others_still_get_mail(site: Site) -> None:
    path = site.root / "subscribers" / "list.csv"
    path.write_text(SUBSCRIBERS + "not-an-address,Bad,en,daily\n", encoding="utf-8")

    result = site.cli("digest", "send", at=T1)

    assert result.exit_code == 1, result.output
    assert "list.csv" in result.stderr and ":7" in result.stderr, result.stderr
    assert site.recipients() == sorted({*DAILY, "weekly@example.com"})


def test_missing_public_url_is_a_configuration_error(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText, server: RecordingServer
) -> None:
    config = write_config(make_site, tmp_path / "site", server, public_url=None)
    connections = server.connections
    site = Site(config, server, statement_md)
    (site.root / "subscribers" / "list.csv").write_text(SUBSCRIBERS, encoding="utf-8")
    site.publish("a.en.md", "Alpha", T0 - timedelta(hours=1))

    for args in (("digest", "send"), ("digest", "preview")):
        result = site.cli(*args, at=T1)
        assert result.exit_code == 2, (args, result.output)
        assert "http.public_url" in result.stderr
    assert server.connections == connections
    assert not (site.root / "state" / "preview").exists()


# --- preview and status -------------------------------------------------------------


def test_preview_of_a_language_without_statements_is_exit_2(site: Site, tmp_path: Path) -> None:
    # NothingToPreview, not a ConfigError (the configuration is fine): same exit, same words.
    result = site.cli("digest", "preview", "--lang", "de", "--out", str(tmp_path / "p"), at=T1)
    assert result.exit_code == 2, result.output
    assert result.stderr == "error: no published statements in language 'de' to preview\n"
    assert not (tmp_path / "p").exists()


def test_preview_writes_text_html_and_a_parseable_eml(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "preview"
    result = site.cli(
        "digest", "preview", "--lang", "ru", "--out", str(out), at=T1 + timedelta(days=1)
    )

    assert result.exit_code == 0, result.output
    files = sorted(out.iterdir())
    assert [p.name for p in files] == ["digest.ru.eml", "digest.ru.html", "digest.ru.txt"]
    assert [line for line in result.output.splitlines() if line] == [
        str(out / f"digest.ru.{ext}") for ext in ("txt", "html", "eml")
    ]
    message = email.message_from_bytes((out / "digest.ru.eml").read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/alternative"
    assert message["Content-Language"] == "ru"
    assert message["Message-ID"] and message["Subject"]
    plain, html = text_of(message)
    for body in (plain, html):
        assert "Альфа" in body and "Браво" in body  # the latest Russian statements
        assert "Bravo" not in body
        assert "Полный текст заявления" in body
    written = (out / "digest.ru.txt").read_text(encoding="utf-8")
    assert written.strip() == plain.replace("\r\n", "\n").strip()
    assert site.server.messages == []


def test_status_shows_editions_and_counts(site: Site) -> None:
    site.server.rcpt_replies["ruonly@example.com"] = "550 5.1.1 no such user"
    assert site.cli("digest", "send", at=T1).exit_code == 0

    result = site.cli("status", at=T1)

    assert result.exit_code == 0, result.output
    editions = [line for line in result.output.splitlines() if line.startswith("edition")]
    assert len(editions) == 2  # the one at T0 (nothing to send) and this one
    assert "due 2024-05-02T08:00:00+01:00" in editions[0]  # 07:00 UTC: 08:00 in London (BST)
    assert "messages 4: sent 3, pending 0, sending 0, deferred 0, failed 1" in editions[0]
    assert "messages 0:" in editions[1]
    assert "ledger   sent 3, pending 0, deferred 0, failed 1" in result.output
    assert "daemon   not running" in result.output


def test_status_shows_unknown_outcomes_on_their_own_line(site: Site) -> None:
    site.server.rcpt_replies["ruonly@example.com"] = "451 4.3.0 try later"
    assert site.cli("digest", "send", at=T1).exit_code == 0
    # What a kill -9 between hand-over and reply leaves (tests/test_crash.py makes it).
    site.ledger("UPDATE deliveries SET state = 'sending' WHERE email = ?", "ruonly@example.com")

    result = site.cli("status", at=T1)

    assert result.exit_code == 0, result.output
    assert "messages 4: sent 3, pending 0, sending 1, deferred 0" in result.output
    assert "ledger   sent 3, pending 0, deferred 0" in result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("sending")]
    assert line.startswith("sending  1 handed to SMTP with no reply recorded yet")


# --- failures: resend, bounces, server down ------------------------------------------


def test_resend_failed_retries_failures_but_not_bounces(site: Site) -> None:
    site.server.rcpt_replies["ruonly@example.com"] = "550 5.1.1 no such user"
    site.server.data_reply = "554 5.7.1 rejected for now"

    first = site.cli("digest", "send", at=T1)

    assert first.exit_code == 0, first.output
    assert "sent 0, deferred 0, failed 4 (bounced 1)" in first.output
    assert site.server.messages == []
    assert set(site.states().values()) == {"failed"}

    site.server.data_reply = None
    retry = site.cli("digest", "send", "--resend-failed", at=T1 + timedelta(minutes=10))

    assert retry.exit_code == 0, retry.output
    assert "sent 3, deferred 0, failed 0" in retry.output
    assert site.recipients() == sorted({"en@example.com", "ru@example.com", "weekly@example.com"})
    assert site.states()["ruonly@example.com"] == "failed"  # bounced: never retried
    # The retried messages are the planned ones: same Message-ID as in the ledger.
    ids = dict(site.ledger("SELECT email, message_id FROM deliveries"))
    for message in site.server.messages:
        assert parsed(message)["Message-ID"] == ids[message.recipients[0]]

    again = site.cli("digest", "send", "--resend-failed", at=T1 + timedelta(minutes=20))
    assert again.exit_code == 0
    assert len(site.server.messages) == 3


def test_server_down_defers_then_a_later_run_delivers(site: Site) -> None:
    site.server.stop()

    down = site.cli("digest", "send", at=T1)

    assert down.exit_code == 0, down.output
    assert "sent 0, deferred 4, failed 0" in down.output
    assert set(site.states().values()) == {"deferred"}
    status = site.cli("status", at=T1)
    assert "deferred 4" in status.output and "next retry 2024-05-02T08:0" in status.output

    site.server.start()
    # Not due yet (backoff is at least 48 s): a plain run at the same time sends nothing.
    early = site.cli("digest", "send", at=T1 + timedelta(seconds=10))
    assert early.exit_code == 0
    assert site.server.messages == []

    later = site.cli("digest", "send", at=T1 + timedelta(minutes=5))

    assert later.exit_code == 0, later.output
    assert "sent 4, deferred 0, failed 0" in later.output
    assert site.recipients() == sorted({*DAILY, "weekly@example.com"})
    assert set(site.states().values()) == {"sent"}


# --- two senders ----------------------------------------------------------------------


def test_a_second_send_while_one_is_delivering_neither_kills_it_nor_strands_mail(
    site: Site,
) -> None:
    """Only the daemon handles the wake-up signal; another `digest send` would die of it."""
    site.server.data_delay = 0.3  # the first run takes a while
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATEMENT_FEEDS_")}
    env["STATEMENT_FEEDS_FAKE_NOW"] = T1.isoformat()
    first = subprocess.Popen(
        [sys.executable, "-m", "statement_feeds", "--config", str(site.config), "digest", "send"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = site.root / "state" / "sender.lock"
        deadline = time.monotonic() + 30
        while lock_holder(lock) != first.pid:  # it is delivering now
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run never took the sender lock"
            time.sleep(0.01)
        site.publish("c.en.md", "Charlie", T1 + timedelta(minutes=1))

        second = site.cli("digest", "send", at=T1 + timedelta(minutes=2))

        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, (first.returncode, out, err)
    assert "sent 4," in out
    assert second.exit_code == 0, second.output
    assert "daemon" not in second.output
    # Both editions delivered: 4 messages, then Charlie to the 3 who read English.
    assert "sent 3," in second.output
    assert len(site.server.messages) == 7
    assert sorted(site.ledger("SELECT state, COUNT(*) FROM deliveries GROUP BY state")) == [
        ("sent", 7)
    ]


def test_a_send_that_cannot_start_says_the_edition_stays_pending(site: Site) -> None:
    text = site.config.read_text(encoding="utf-8")
    site.config.write_text(text.replace('security = "none"', 'security = "starttls"'), "utf-8")
    result = site.cli("digest", "send", at=T1)  # the server offers no STARTTLS
    assert result.exit_code == 2, result.output
    assert "was planned" in result.stderr and "stay pending" in result.stderr
    assert site.server.messages == []
    assert set(site.states().values()) == {"pending"}  # released, none left "sending"
    site.config.write_text(text, "utf-8")  # fixed: the next send delivers them
    again = site.cli("digest", "send", at=T1 + timedelta(minutes=1))
    assert again.exit_code == 0, again.output
    assert set(site.states().values()) == {"sent"}


def test_reload_with_a_broken_template_keeps_the_old_ones(site: Site, tmp_path: Path) -> None:
    import shutil
    from dataclasses import replace

    from statement_feeds.config import load_config
    from statement_feeds.digests.service import Digests
    from statement_feeds.errors import ConfigError

    config = load_config(site.config)
    digests = Digests(config)
    broken = tmp_path / "broken-templates"
    shutil.copytree(config.paths.templates, broken)
    (broken / "digest.html").write_text("{% for %}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"digest\.html:1"):
        digests.reload(replace(config, paths=replace(config.paths, templates=broken)))
    assert digests.config is config  # unchanged
    digests.check_templates()  # the old templates still work


def test_an_internationalised_domain_is_sent_to_its_a_label(site: Site) -> None:
    # The same address twice, as a reader types it and as its A-label: one subscriber.
    path = site.root / "subscribers" / "list.csv"
    extra = "jurgen@Bücher.de,Jürgen Groß,en,daily\nJurgen@xn--bcher-kva.de,Again,en,daily\n"
    path.write_text(SUBSCRIBERS + extra, encoding="utf-8")
    joined = site.cli("digest", "send", at=T0 + timedelta(minutes=30))
    assert joined.exit_code == 1, joined.output  # the second row is a duplicate
    assert "list.csv:8" in joined.stderr and "duplicate" in joined.stderr

    result = site.cli("digest", "send", at=T1)

    assert "failed 0" in result.output, result.output
    message = only_message(site, "jurgen@xn--bcher-kva.de")
    assert getaddresses(message.get_all("To") or []) == [("Jürgen Groß", "jurgen@xn--bcher-kva.de")]
    plain, _ = text_of(message)
    assert "Alpha" in plain and "Jürgen Groß" in plain


def test_a_state_database_of_a_newer_statement_feeds_exits_2(site: Site) -> None:
    assert site.cli("status", at=T1).exit_code == 0
    with sqlite3.connect(site.root / "state" / "state.sqlite") as db:
        db.execute("INSERT INTO schema_migrations VALUES (99, '2030-01-01T00:00:00+00:00')")

    result = site.cli("status", at=T1)

    assert result.exit_code == 2, result.output
    assert "has schema version 99" in result.output
    assert "upgrade statement-feeds" in result.output


# --- corrections (issue 14) ---------------------------------------------------------


def test_a_corrected_statement_goes_again_to_who_got_it(site: Site) -> None:
    assert site.cli("digest", "send", at=T1).exit_code == 0
    first = len(site.server.messages)
    # Bravo is corrected (updated moves); the Russian Браво is not.
    fixed_at = T1 + timedelta(hours=2)
    site.publish("b.en.md", "Bravo", T0 + timedelta(hours=2), updated=stamp(fixed_at))
    t2 = T1 + timedelta(days=1)

    shown = site.cli("digest", "send", "--frequency", "daily", "--dry-run", at=t2)
    assert shown.exit_code == 0, shown.output
    assert "en@example.com  [en]  corrected: Bravo (en)" in shown.output

    result = site.cli("digest", "send", "--frequency", "daily", at=t2)
    assert result.exit_code == 0, result.output
    fresh = site.server.messages[first:]
    # ruonly@ gets Альфа (no longer embargoed); en@ the correction; ru@ got Браво: nothing.
    assert sorted(r for m in fresh for r in m.recipients) == [
        "en@example.com",
        "ruonly@example.com",
    ]
    message = parsed(next(m for m in fresh if m.recipients == ("en@example.com",)))
    assert message["Subject"] == "Socialism From Below: 1 corrected statement"
    plain, html = text_of(message)
    for body in (plain, html):
        assert "Bravo" in body and "Corrected on May 2, 2024" in body
    # Once per updated value: the next edition has nothing for en@.
    again = site.cli("digest", "send", "--frequency", "daily", at=t2 + timedelta(days=1))
    assert again.exit_code == 0
    assert not any(m.recipients == ("en@example.com",) for m in site.server.messages[first + 2 :])
