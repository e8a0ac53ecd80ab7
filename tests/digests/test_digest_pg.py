"""The whole pipeline on PostgreSQL: ``[state] url`` set, the real CLI, a real aiosmtpd
server. ``digest send`` plans and sends; a second run sends nobody anything again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from smtp_server import RecordingServer
from statement_feeds.cli import cli

T0 = datetime(2024, 5, 1, 7, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
SUBSCRIBERS = """\
email,name,languages,frequency
en@example.com,Ann,en,daily
ru@example.com,Борис,ru en,daily
unsub@example.com,Uma,en,daily
"""


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as smtp:
        yield smtp


def run(config: Path, *args: str, at: datetime) -> Result:
    return CliRunner().invoke(
        cli,
        ["--config", str(config), *args],
        env={"STATEMENT_FEEDS_CONFIG": None, "STATEMENT_FEEDS_FAKE_NOW": at.isoformat()},
        catch_exceptions=False,
    )


def test_digest_send_through_the_cli_on_postgresql(
    tmp_path: Path,
    make_site: Callable[..., Path],
    statement_md: Callable[..., str],
    server: RecordingServer,
    pg_url: str,
) -> None:
    extra = f'\n[http]\npublic_url = "https://example.org/n/"\n\n[state]\nurl = "{pg_url}"\n'
    config = make_site(tmp_path / "site", extra_toml=extra)
    text = config.read_text(encoding="utf-8")
    smtp = f'[smtp]\nhost = "{server.host}"\nport = {server.port}\nsecurity = "none"\n'
    config.write_text(text.replace('[smtp]\nhost = ""\n', smtp), encoding="utf-8")
    root = config.parent
    (root / "subscribers" / "list.csv").write_text(SUBSCRIBERS, encoding="utf-8")
    assert run(config, "check", at=T0).exit_code == 0
    joined = run(config, "digest", "send", at=T0)  # everyone joins now: nothing to send
    assert joined.exit_code == 0, joined.output
    for name, title in (("a.en.md", "Alpha"), ("a.ru.md", "Альфа")):
        body = statement_md(title=title, date=(T0 + timedelta(hours=1)).isoformat())
        (root / "statements" / name).write_text(body, encoding="utf-8")
    with psycopg.connect(pg_url, autocommit=True) as conn:  # unsubscribed on another host
        conn.execute(
            "UPDATE subscribers SET unsubscribed_at = %s WHERE email = 'unsub@example.com'",
            (T0.isoformat(),),
        )

    sent = run(config, "digest", "send", at=T1)

    assert sent.exit_code == 0, sent.output
    assert "sent 2, deferred 0, failed 0" in sent.output
    received = {r: m for m in server.messages for r in m.recipients}
    assert sorted(received) == ["en@example.com", "ru@example.com"]
    assert "Альфа" in received["ru@example.com"].parsed().get_body(("plain",)).get_content()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT email, state, message_id FROM deliveries ORDER BY 1").fetchall()
        keys = conn.execute("SELECT COUNT(*) FROM secrets").fetchone()
    assert [(e, s) for e, s, _ in rows] == [
        ("en@example.com", "sent"),
        ("ru@example.com", "sent"),
    ]
    assert received["en@example.com"].parsed()["Message-ID"] == rows[0][2]
    assert keys == (1,)  # the signing key is the database's, shared by every host
    assert not (root / "state" / "secret.key").exists()
    again = run(config, "digest", "send", at=T1 + timedelta(minutes=5))
    assert again.exit_code == 0, again.output
    assert len(server.messages) == 2
    status = run(config, "status", at=T1 + timedelta(minutes=5))
    assert status.exit_code == 0, status.output
