"""Coordination of several daemons on a real PostgreSQL: leader, heartbeats, wake-ups."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from pg_coordination_helpers import execute, fresh_database, leader_backend, terminate, with_port
from statement_feeds.errors import StateError, StoreError
from statement_feeds.state.coordination import open_coordinator, ping_database
from statement_feeds.state.postgres_coordination import PostgresCoordinator


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def pair(url: str) -> Iterator[tuple[PostgresCoordinator, PostgresCoordinator]]:
    a, b = PostgresCoordinator(url, 1.0), PostgresCoordinator(url, 1.0)
    a.start("host-a:1", "host-a", 1)
    b.start("host-b:2", "host-b", 2)
    yield a, b
    a.close()
    b.close()


def until(check: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def rows(url: str) -> dict[str, bool]:
    return {str(n): bool(lead) for n, lead in execute(url, "SELECT name, leader FROM daemons")}


def test_leadership_is_exclusive(url: str, pair: tuple[PostgresCoordinator, ...]) -> None:
    a, b = pair
    assert a.heartbeat() is True
    assert b.heartbeat() is False
    assert a.heartbeat() is True  # holding it again does not stack a second lock
    assert b.heartbeat() is False
    assert rows(url) == {"host-a:1": True, "host-b:2": False}
    live = a.live_daemons()
    assert [(d.host, d.pid, d.leader) for d in live] == [("host-a", 1, True), ("host-b", 2, False)]
    assert live[0].heartbeat_at.utcoffset() is not None  # aware: shown with its offset
    assert live[0].started_at <= live[0].heartbeat_at
    leader = b.leader()
    assert leader is not None and leader.name == "host-a:1"


def test_closing_the_leader_hands_over_at_the_next_heartbeat(
    url: str, pair: tuple[PostgresCoordinator, ...]
) -> None:
    a, b = pair
    assert a.heartbeat() and not b.heartbeat()
    a.close()
    assert leader_backend(url) is None  # released at once, not when a timeout expires
    assert "host-a:1" not in rows(url)
    assert b.heartbeat() is True
    assert b.leader() is not None


def test_a_stale_daemon_is_not_listed_and_is_pruned(
    url: str, pair: tuple[PostgresCoordinator, ...]
) -> None:
    a, _ = pair
    a.heartbeat()
    execute(
        url,
        "INSERT INTO daemons VALUES ('gone:9', 'gone', 9, now() - interval '1 hour', "
        "now() - interval '10 seconds', true)",
    )
    assert "gone:9" not in {d.name for d in a.live_daemons()}  # 10 s > 3 missed beats of 1 s
    assert a.heartbeat() is True
    assert "gone:9" not in rows(url)
    assert a.pruned == 1


def test_a_daemon_within_three_heartbeats_is_kept(
    url: str, pair: tuple[PostgresCoordinator, ...]
) -> None:
    a, _ = pair
    execute(
        url,
        "INSERT INTO daemons VALUES ('slow:8', 'slow', 8, now(), now() - interval '2 seconds', "
        "false)",
    )
    a.heartbeat()
    assert "slow:8" in {d.name for d in a.live_daemons()}
    assert a.pruned == 0


def test_the_new_leader_clears_a_dead_leaders_flag(
    url: str, pair: tuple[PostgresCoordinator, ...]
) -> None:
    a, b = pair
    execute(url, "INSERT INTO daemons VALUES ('dead:7', 'dead', 7, now(), now(), true)")
    assert a.heartbeat() is True
    assert rows(url)["dead:7"] is False
    assert [d.name for d in b.live_daemons() if d.leader] == ["host-a:1"]


def test_a_terminated_session_loses_leadership_and_reconnects(
    url: str, pair: tuple[PostgresCoordinator, ...]
) -> None:
    a, b = pair
    assert a.heartbeat() is True
    backend = leader_backend(url)
    assert backend is not None
    terminate(url, backend)
    until(lambda: leader_backend(url) != backend)  # the session ends, and its lock with it
    assert b.heartbeat() is True
    with pytest.raises(StoreError, match="record a heartbeat"):
        a.heartbeat()
    assert a.is_leader is False
    assert a.heartbeat() is False  # a new connection; b leads now
    b.close()
    assert a.heartbeat() is True


def test_notify_wakes_a_waiting_coordinator(pair: tuple[PostgresCoordinator, ...]) -> None:
    a, b = pair

    async def scenario() -> None:
        waiting = asyncio.create_task(a.wait_for_wakeup())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # nothing sent yet: it waits
        await asyncio.to_thread(b.notify_send)
        await asyncio.wait_for(waiting, 5)
        # Consumed: the next wait waits for the next wake-up.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(a.wait_for_wakeup(), 0.5)

    asyncio.run(scenario())


def test_a_wakeup_sent_between_waits_is_not_lost(pair: tuple[PostgresCoordinator, ...]) -> None:
    a, b = pair
    b.notify_send()

    async def scenario() -> None:
        await asyncio.wait_for(a.wait_for_wakeup(), 5)

    asyncio.run(scenario())


def test_a_lost_listening_connection_raises_then_listens_again(
    url: str, pair: tuple[PostgresCoordinator, ...]
) -> None:
    a, b = pair
    listening = execute(
        url,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND query ILIKE 'LISTEN%%'",
    )
    assert len(listening) == 2  # a's and b's

    async def scenario() -> None:
        for (pid,) in listening:
            terminate(url, int(str(pid)))
        with pytest.raises(StoreError, match="read wake-ups"):
            await asyncio.wait_for(a.wait_for_wakeup(), 5)
        # Listening again, it returns at once: a wake-up may have come meanwhile.
        await asyncio.wait_for(a.wait_for_wakeup(), 5)
        waiting = asyncio.create_task(a.wait_for_wakeup())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # once only: now it waits for a wake-up again
        await asyncio.to_thread(b.notify_send)
        await asyncio.wait_for(waiting, 5)

    asyncio.run(scenario())


def test_an_unreachable_server_is_a_state_error_naming_it(url: str) -> None:
    coordinator = PostgresCoordinator(with_port(url, 1))
    with pytest.raises(StateError, match=r"127\.0\.0\.1:1/"):
        coordinator.start("x:1", "x", 1)
    with pytest.raises(StateError):
        coordinator.live_daemons()
    coordinator.close()


def test_without_the_daemons_table_the_heartbeat_fails_and_leads_nothing() -> None:
    with fresh_database(daemons_table=False) as url:
        coordinator = PostgresCoordinator(url)
        coordinator.start("x:1", "x", 1)
        with pytest.raises(StoreError, match="daemons"):
            coordinator.heartbeat()
        assert coordinator.is_leader is False
        assert leader_backend(url) is None  # the lock taken before the failure is let go
        coordinator.close()


def test_open_coordinator_picks_postgres_for_a_url_only(tmp_path: object) -> None:
    from dataclasses import replace
    from pathlib import Path

    from statement_feeds.config import StateConfig, load_config

    config_path = Path(str(tmp_path)) / "statement-feeds.toml"
    config_path.write_text('[site]\ntitle = "T"\nurl = "https://example.org/"\n')
    config = load_config(config_path)
    assert open_coordinator(config) is None  # SQLite: file lock and SIGUSR1, as before
    pg = replace(config, state=StateConfig(url="postgresql://u@h/db"))
    coordinator = open_coordinator(pg, 2.0)
    assert isinstance(coordinator, PostgresCoordinator)
    assert coordinator.interval == 2.0


def test_ping_database(url: str) -> None:
    ping_database(url)
    with pytest.raises(StateError, match="cannot connect"):
        ping_database(with_port(url, 1))


def test_the_leaders_session_has_server_side_keepalives(
    url: str, pair: tuple[PostgresCoordinator, ...]
) -> None:
    # The server, not only the client, must notice a host that vanished: else the
    # advisory lock would outlive it by the OS default of two hours.
    a, _ = pair
    a.heartbeat()
    shown = a._run(  # the leader's own session: settings are per session
        "show keepalives",
        "SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_count'),"
        " current_setting('tcp_keepalives_interval'), current_setting('tcp_user_timeout')",
    )
    assert shown == [("5", "3", "2", "11000")]


def test_a_daemon_that_does_not_contend_never_leads(
    url: str, pair: tuple[PostgresCoordinator, ...]
) -> None:
    a, b = pair
    assert a.heartbeat(contend=False) is False  # free, but not taken
    assert leader_backend(url) is None
    assert rows(url) == {"host-a:1": False}
    assert b.heartbeat() is True
