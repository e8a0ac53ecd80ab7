"""Preparing a message for SMTP DATA: a composed digest (vouched for) against the same
bytes unvouched, in the same run.

    .venv/bin/python bench/payload_bench.py

The edition benchmark's site (``smtp_bench.write_site``: nine statements in three
languages, ~17 kB messages), 200 subscribers planned into a SQLite state in a
temporary folder; 50 of their messages composed. Then, per message:
``Composer`` (for scale), ``data_payload`` of the composed message (a
``CrlfMessage``/``DotFreeMessage``: no scan for line ends, no dot-stuffing pass when
no line starts with a dot) and ``data_payload`` of ``bytes(message)`` (three scans and
the stuffing pass, as before). The ratio is what the vouching saves a sender.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
import timeit
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from smtp_bench import sync_joins, write_site
from statement_feeds.config import load_config
from statement_feeds.digests.service import Digests
from statement_feeds.digests.smtp_internals import data_payload
from statement_feeds.domain.digest_message import CrlfMessage, DotFreeMessage
from statement_feeds.state.api import Delivery

ROUNDS = 200


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        now = datetime.now(UTC)
        toml = write_site(Path(folder) / "site", 200, 25, now)
        sync_joins(toml, now - timedelta(days=1))
        digests = Digests(load_config(toml))
        digests.plan("manual", now)
        composer = digests.composer(digests.catalog())
        query = "SELECT edition_id, email, name, lang, statement_ids, message_id FROM deliveries"
        with sqlite3.connect(digests.config.paths.state / "state.sqlite") as conn:
            rows = conn.execute(query + " LIMIT 50").fetchall()
    deliveries = [
        Delivery(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], 1, None) for r in rows
    ]
    messages = [composer(d) for d in deliveries]
    plain = [bytes(m) for m in messages]
    per = ROUNDS * len(messages)
    compose = timeit.timeit(lambda: [composer(d) for d in deliveries], number=ROUNDS) / per
    vouched = timeit.timeit(lambda: [data_payload(m) for m in messages], number=ROUNDS) / per
    scanned = timeit.timeit(lambda: [data_payload(m) for m in plain], number=ROUNDS) / per
    assert [data_payload(m) for m in messages] == [data_payload(m) for m in plain]
    dot_free = sum(isinstance(m, DotFreeMessage) for m in messages)
    crlf = sum(isinstance(m, CrlfMessage) for m in messages)
    size = sum(map(len, messages)) // len(messages)
    print(f"{len(messages)} messages, {size:,} bytes on average")
    print(f"  vouched for: CRLF {crlf}, of which dot-free {dot_free}")
    print(f"  compose: {compose * 1e6:.1f} us per message")
    print(f"  data_payload, vouched: {vouched * 1e6:.1f} us; scanned: {scanned * 1e6:.1f} us")
    saved = (scanned - vouched) * 1e6
    print(f"  scanned / vouched: {scanned / vouched:.1f}x; saved {saved:.1f} us per message")


if __name__ == "__main__":
    main()
