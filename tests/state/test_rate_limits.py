"""Rate-limit events in the state store: a sliding window, and no growth from one-off clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pg_helpers import Backend

T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def rows(backend: Backend) -> list[str]:
    return [row[0] for row in backend.sql("SELECT bucket FROM rate_events ORDER BY bucket")]


def test_events_of_clients_that_never_return_are_pruned(make_backend: Backend) -> None:
    with make_backend.open() as store:
        for n in range(500):  # 500 clients, one sign-up each, never seen again
            assert not store.hit_rate_limit(f"client:{n}", T0, HOUR, 10)
        assert not store.hit_rate_limit("address:a", T0, DAY, 3)
        assert len(rows(make_backend)) == 501
        # Two hours later one new client: every expired client event goes, and the
        # address event, inside its own 24-hour window, stays.
        assert not store.hit_rate_limit("client:new", T0 + 2 * HOUR, HOUR, 10)
        assert rows(make_backend) == ["address:a", "client:new"]


def test_the_window_slides(make_backend: Backend) -> None:
    with make_backend.open() as store:
        hits = [
            store.hit_rate_limit("client:x", T0 + n * timedelta(minutes=10), HOUR, 3)
            for n in range(5)
        ]
        assert hits == [False, False, False, True, True]
        assert not store.hit_rate_limit("client:x", T0 + 70 * timedelta(minutes=1), HOUR, 3)
