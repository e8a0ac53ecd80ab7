"""Planning benchmark: time and peak RSS of planning one edition for N subscribers.

    .venv/bin/python bench/plan_bench.py            # 100,000 and 1,000,000, one process each
    .venv/bin/python bench/plan_bench.py --one 100000
    .venv/bin/python bench/plan_bench.py --pg postgresql://postgres@127.0.0.1:5432/postgres
                                    # the same on PostgreSQL (a fresh database per size)
    .venv/bin/python bench/plan_bench.py --one 1000000 --new 30 --steady 3
                                    # times the edition after: 30 known statements, 3 new
    ... --steady 3 --vacuum         # with VACUUM before it (PostgreSQL: what autovacuum
                                    # does in the day between two editions)

Real files and a real SQLite database in a temporary folder: a subscribers CSV
(written row by row), 30 statements in three languages, the join times synced
first (as the daemon does when the file appears), then ``plan_edition`` timed.
A printout, not a test: the targets are < 60 s at 1,000,000 and < 200 MB peak
RSS at 100,000, not growing with the list (issue 3): compare the peak RSS of the
100,000 and 1,000,000 rows. With ``--pg`` the state is a fresh PostgreSQL database
(created, then dropped) and the targets are issue 12's: 1,000,000 in < 60 s with the
planning process's RSS < 200 MB. "database" is then ``pg_database_size``.
"""

from __future__ import annotations

import argparse
import hmac
import os
import random
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from statement_feeds.config import Config, load_config
from statement_feeds.digests.plan import plan_edition, sync_subscribers
from statement_feeds.domain.catalog import Catalog, build_catalog
from statement_feeds.domain.statements import Statement
from statement_feeds.state.open import open_store

T0 = datetime(2024, 6, 1, tzinfo=UTC)
LANGUAGES = ["en", "ru", "en ru", "ru en", "de en", "de ru en"]
TOML = '[site]\ntitle = "S"\nurl = "https://example.org/"\ntimezone = "UTC"\n'
SECRET = b"bench-secret"


_PREPARED = hmac.new(SECRET, b"message-id", "sha256")


def message_id(edition: int, email: str) -> str:
    # Same cost class as the real HMAC-based Message-ID (domain/tokens.py: a prepared
    # HMAC copied per call).
    mac = _PREPARED.copy()
    mac.update(f"{edition}:{email}".encode())
    return f"<{mac.hexdigest()[:32]}@example.org>"


def write_site(root: Path, count: int, url: str | None) -> Config:
    state = f'\n[state]\nurl = "{url}"\n' if url else ""
    (root / "statement-feeds.toml").write_text(TOML + state, encoding="utf-8")
    (root / "subscribers").mkdir()
    rng = random.Random(1)
    with (root / "subscribers" / "list.csv").open("w", encoding="utf-8") as out:
        out.write("email,name,languages,frequency\n")
        for i in range(count):
            out.write(f"user{i}@example{i % 97}.org,User {i},{rng.choice(LANGUAGES)},daily\n")
    return load_config(root / "statement-feeds.toml")


def make_catalog(now: datetime, new: int, later: int = 0) -> Catalog:
    """30 statements, the last ``new`` of them published after the subscribers joined;
    then ``later`` more, published a day after the first edition (``--steady``)."""
    statements = []
    for n in range(30 + later):
        published = T0 + timedelta(hours=n - (30 - new))
        if n >= 30:
            published = T0 + timedelta(days=3, hours=n - 30)
        for lang in ("en", "ru", "de")[: 1 + n % 3]:
            statements.append(
                Statement(
                    f"s{n}.{lang}.md",
                    f"s{n}-{lang}",
                    lang,
                    f"s{n}",
                    f"Statement {n}",
                    published,
                    published,
                    f"https://example.org/{lang}/s{n}/",
                    "",
                    "",
                    "",
                    False,
                    f"{n}{lang}",
                )
            )
    return build_catalog(statements, [], now)


def run_one(
    count: int, new: int, base_url: str | None, steady: int | None = None, vacuum: bool = False
) -> None:
    database = f"plan_bench_{secrets.token_hex(4)}"
    url = pg_database(base_url, database) if base_url else None
    try:
        with tempfile.TemporaryDirectory(prefix="plan-bench-") as folder:
            config = write_site(Path(folder), count, url)
            with open_store(config) as store:
                started = time.perf_counter()
                problems = sync_subscribers(config, store, T0 - timedelta(seconds=1))
                synced = time.perf_counter() - started
                now = T0 + timedelta(days=2)
                started = time.perf_counter()
                cpu = time.process_time(), backend_cpu(store)
                result = plan_edition(
                    config,
                    store,
                    make_catalog(now, new),
                    "daily",
                    now,
                    now,
                    message_id_for=message_id,
                )
                planned = time.perf_counter() - started
                spent = time.process_time() - cpu[0], backend_cpu(store) - cpu[1]
                if steady is not None:
                    # The steady state: the next edition, the same statements and
                    # ``steady`` new ones (with --new 30, every earlier key went to
                    # nearly everyone: most wanted keys are in most histories).
                    first = planned
                    now += timedelta(days=2)
                    if vacuum and url:
                        vacuum_all(url)
                    started = time.perf_counter()
                    cpu = time.process_time(), backend_cpu(store)
                    result = plan_edition(
                        config,
                        store,
                        make_catalog(now, new, steady),
                        "daily",
                        now,
                        now,
                        message_id_for=message_id,
                    )
                    planned = time.perf_counter() - started
                    spent = time.process_time() - cpu[0], backend_cpu(store) - cpu[1]
                    print(f"first edition planned in {first:.1f} s; the next one:")
            size = database_mib(url, config)
    finally:
        if base_url:
            pg_database(base_url, database, drop=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        f"{'PostgreSQL' if url else 'SQLite':>10} {count:>9,} subscribers, {new:2} new statements: "
        f"first sync {synced:6.1f} s, plan {planned:6.1f} s "
        f"({result.edition.deliveries:,} deliveries, {len(problems)} problems), "
        f"peak RSS {peak:6.1f} MiB, database {size:.0f} MiB"
    )
    # CPU is steadier than wall time on a shared VM, and says which side bounds the plan.
    # The store's own backend only: on PostgreSQL the edition's writer has its own.
    backend = f", the store's PostgreSQL backend {spent[1]:.1f} s" if url else ""
    print(f"  the timed plan's CPU: this process {spent[0]:.1f} s{backend}")


def backend_cpu(store: object) -> float:
    """CPU seconds of the store's PostgreSQL backend process so far (0 for SQLite):
    the same machine's /proc, user + system time."""
    raw = getattr(getattr(store, "_db", None), "raw", None)
    if raw is None:
        return 0.0
    stat = Path(f"/proc/{raw.info.backend_pid}/stat").read_text(encoding="ascii")
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vacuum_all(url: str) -> None:
    """What autovacuum does between two editions a day apart (PostgreSQL 13 and later
    vacuum a table after inserts too): the visibility map set, so that the next plan's
    index-only reads of ``assigned`` need not visit the table."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    print(f"VACUUM (ANALYZE) between the editions: {time.perf_counter() - started:.1f} s")


def pg_database(base_url: str, name: str, *, drop: bool = False) -> str:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        if drop:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base_url.rpartition('/')[0]}/{name}"


def database_mib(url: str | None, config: Config) -> float:
    if url is None:
        return sum(p.stat().st_size for p in config.paths.state.iterdir()) / 2**20
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) / 2**20 if row else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--one", type=int, help="run one size in this process")
    parser.add_argument("--new", type=int, default=3, help="new statements per edition")
    parser.add_argument("--pg", help="a PostgreSQL URL to create the benchmark's database from")
    parser.add_argument(
        "--steady",
        type=int,
        metavar="NEW",
        help="with --one: time a second edition instead, the same statements and NEW more",
    )
    parser.add_argument(
        "--vacuum",
        action="store_true",
        help="with --steady and --pg: VACUUM (ANALYZE) before the second edition, as "
        "autovacuum would in the day between two editions",
    )
    args = parser.parse_args()
    if args.one:
        run_one(args.one, args.new, args.pg, args.steady, args.vacuum)
        return
    # Separate processes: separate peak RSS. A daily edition has a few new statements;
    # the 30-new case is a stress test (a first edition after a month of publishing).
    for count, new in ((100_000, 3), (1_000_000, 3), (100_000, 30)):
        command = [sys.executable, __file__, "--one", str(count), "--new", str(new)]
        command += ["--pg", args.pg] if args.pg else []
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
