"""The daemon after a run that could not write the ledger: it tries again by itself.

In-process: the real :class:`Daemon` timers, the real digest side (``Digests``), a
real SMTP server and the state on a real file system that fills up (a 16 MiB tmpfs).
The daemon's clock is a fixed fake; the retry timer is read, not waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from disk_helpers import fill_disk
from smtp_server import RecordingServer
from statement_feeds.config import load_config
from statement_feeds.daemon.run import FIRST_PAUSE, Daemon, DaemonOptions
from statement_feeds.digests.service import Digests
from statement_feeds.state.api import LedgerCounts
from statement_feeds.state.sqlite import SqliteStore

MakeSite = Callable[..., Path]
MakeText = Callable[..., str]
T0 = datetime(2024, 5, 1, 7, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
READERS = [f"reader{i:03}@example.org" for i in range(120)]


def test_a_run_that_cannot_write_the_ledger_is_retried_by_itself(
    tmp_path: Path, make_site: MakeSite, statement_md: MakeText, small_disk: Path
) -> None:
    with RecordingServer() as server:
        config_path = make_site(
            tmp_path / "site",
            statements={"news.en.md": statement_md(title="News", date="2024-05-01T09:00:00Z")},
            extra_toml='\n[http]\npublic_url = "https://example.org/n/"\n',
        )
        text = config_path.read_text(encoding="utf-8")
        text = text.replace('state = "state"', f'state = "{small_disk / "state"}"')
        text = text.replace(
            '[smtp]\nhost = ""\n',
            f'[smtp]\nhost = "{server.host}"\nport = {server.port}\nsecurity = "none"\n',
        )
        config_path.write_text(text, encoding="utf-8")
        rows = "".join(f"{e},,en,daily\n" for e in READERS)
        (config_path.parent / "subscribers" / "list.csv").write_text(
            "email,name,languages,frequency\n" + rows
        )
        with SqliteStore.open(small_disk / "state") as store:
            store.sync_subscribers(READERS, T0)
        config = load_config(config_path)
        digests = Digests(config, lambda: T1)
        planned = digests.plan("daily", T1)  # the edition is in the ledger
        assert planned.edition is not None and planned.edition.deliveries == len(READERS), planned
        fillers: list[Path] = []

        def disk_full_at_the_fifth(received: int) -> None:
            if received == 5:
                fillers.append(fill_disk(small_disk, leave=0))

        server.handler.after_data = disk_full_at_the_fifth
        daemon = Daemon(config_path, config, lambda: T1, digests, DaemonOptions())

        async def go() -> None:
            await daemon.editions.resume()
            received = len(server.messages)
            assert 0 < received < len(READERS), "the disk must fill up mid-edition"
            # The run failed, and a retry is armed for after the pause (before the fix:
            # no timer, since nothing was due; the 'sending' rows waited for a restart).
            timer = daemon.timers["retry"]
            delay = timer.when() - asyncio.get_running_loop().time()
            assert abs(delay - FIRST_PAUSE.total_seconds()) < 1
            fillers[0].unlink()  # space is back; the timer fires (we run its call ourselves)
            await daemon.editions.resume()

        asyncio.run(go())
        with SqliteStore.open(small_disk / "state") as store:
            assert store.counts() == LedgerCounts(sent=len(READERS))
        recipients = [r for m in server.messages for r in m.recipients]
        assert set(recipients) == set(READERS)
        assert len(recipients) - len(READERS) <= config.smtp.concurrency  # in flight only
