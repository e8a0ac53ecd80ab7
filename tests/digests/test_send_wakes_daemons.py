"""``digest send`` with ``[state] url``: the live daemons deliver, woken by NOTIFY.

The daemon here is a real :class:`PostgresCoordinator` registered and beating in the test
process (what ``run`` does), so that what ``digest send`` sees and sends is the real
thing; with no live daemon it delivers itself, as with SQLite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pg_coordination_helpers import execute, fresh_database
from statement_feeds.cli import cli
from statement_feeds.state.postgres_coordination import PostgresCoordinator

T0 = "2025-03-01T09:00:00+00:00"
T1 = "2025-03-01T11:00:00+00:00"


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def invoke(config: Path, *args: str, at: str) -> Result:
    env = {"STATEMENT_FEEDS_CONFIG": None, "STATEMENT_FEEDS_FAKE_NOW": at}
    return CliRunner().invoke(cli, ["--config", str(config), *args], env=env)


def site_with_news(
    tmp_path: Path, url: str, make_site: Callable[..., Path], statement_md: Callable[..., str]
) -> Path:
    """A subscriber who joined at T0, and a statement published after that."""
    extra = f'\n[http]\npublic_url = "https://example.org/news/"\n\n[state]\nurl = "{url}"\n'
    config = make_site(tmp_path, extra_toml=extra)
    (tmp_path / "subscribers" / "list.csv").write_text("email\nreader@example.org\n")
    joined = invoke(config, "digest", "send", at=T0)  # nothing published yet: 0 messages
    assert joined.exit_code == 0, joined.output
    statement = statement_md(title="News", date="2025-03-01T10:00:00+00:00")
    (tmp_path / "statements" / "news.en.md").write_text(statement, encoding="utf-8")
    return config


def outbox(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "outbox" / "new").glob("*"))


def test_a_live_daemon_is_woken_and_delivers(
    tmp_path: Path, url: str, make_site: Callable[..., Path], statement_md: Callable[..., str]
) -> None:
    config = site_with_news(tmp_path, url, make_site, statement_md)
    daemon = PostgresCoordinator(url)
    daemon.start("other-host:4242:x", "other-host", 4242)
    daemon.heartbeat()

    async def scenario() -> Result:
        woken = asyncio.create_task(daemon.wait_for_wakeup())
        await asyncio.sleep(0.2)
        result = await asyncio.to_thread(invoke, config, "digest", "send", at=T1)
        await asyncio.wait_for(woken, 5)
        return result

    try:
        result = asyncio.run(scenario())
    finally:
        daemon.close()
    assert result.exit_code == 0, result.output
    assert "(1 messages); 1 running daemon delivers it (woken through the database)" in (
        result.output
    )
    assert outbox(tmp_path) == []  # planned here, delivered there


def test_without_a_live_daemon_it_delivers_itself(
    tmp_path: Path, url: str, make_site: Callable[..., Path], statement_md: Callable[..., str]
) -> None:
    config = site_with_news(tmp_path, url, make_site, statement_md)
    # A daemon that stopped beating a minute ago is not a live one.
    execute(
        url,
        "INSERT INTO daemons VALUES ('gone:1:x', 'gone', 1, now() - interval '1 hour', "
        "now() - interval '1 minute', true)",
    )
    result = invoke(config, "digest", "send", at=T1)
    assert result.exit_code == 0, result.output
    assert "sent 1, deferred 0, failed 0" in result.output
    assert len(outbox(tmp_path)) == 1
