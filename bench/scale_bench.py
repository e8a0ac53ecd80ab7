"""Scaling benchmark: one edition sent by 1, 2 or 3 sending processes sharing one state.

    .venv/bin/python bench/scale_bench.py                        # sqlite:1 pg:1 pg:2 pg:3
    .venv/bin/python bench/scale_bench.py --subscribers 20000 --modes sqlite:1,pg:2
    scripts/bench-scale.sh                                       # installs postfix first

The same site as ``smtp_bench.py`` (nine statements in three languages; its subscribers
joined a day before they were published), ``[smtp]`` pointed at Postfix's ``smtp-sink``
with ``concurrency = 4`` per process (``--concurrency C``: C). For each mode ``backend:N``:

1. a fresh site and state (SQLite in the site's folder, or a fresh PostgreSQL database
   named ``scale_bench_<random>`` on ``--pg``, dropped afterwards);
2. the join times are synced and the edition is planned, untimed (``Digests.plan``);
3. timed: N processes started together, each running ``Digests.deliver`` (what every
   daemon's sender runs: claim with a lease, send, record) until nothing is left;
   from the first spawn to the last exit, interpreter start and catalog load included;
4. the reference in the same run: ``smtp-source -s CN`` (the same total concurrency,
   connections reused) sending the same number of messages of our average size.

Figures: messages/s of ours and of smtp-source, their ratio, each process's peak RSS and
CPU time, the CPU time of PostgreSQL (every ``postgres`` process, ended backends
included) and of smtp-sink meanwhile, and all of it per message: on a machine with
fewer cores than processes, that is what bounds the total.
SQLite allows one sender per state (a second would see the first's in-flight messages
as lost), so SQLite runs with N = 1 only. Targets (issue 12): PostgreSQL with one
process ≥ 0.8 × SQLite; adding processes never lowers the total.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plan_bench import pg_database
from smtp_bench import Sink, find_tool, free_port, run_smtp_source, write_site

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class Mode:
    backend: str  # "sqlite" | "pg"
    senders: int

    @classmethod
    def parse(cls, text: str) -> Mode:
        backend, _, count = text.partition(":")
        if backend not in ("sqlite", "pg") or not count.isdigit() or int(count) < 1:
            raise SystemExit(f"bad mode {text!r}: use sqlite:1 or pg:N")
        if backend == "sqlite" and int(count) != 1:
            raise SystemExit("sqlite:N with N > 1 is not a supported setup (one sender per state)")
        return cls(backend, int(count))

    def __str__(self) -> str:
        return f"{self.backend}:{self.senders}"


# -- children: plan, deliver ------------------------------------------------------------


def child_plan(toml: Path) -> None:
    from statement_feeds.config import load_config
    from statement_feeds.digests.plan import sync_subscribers
    from statement_feeds.digests.service import Digests
    from statement_feeds.state.open import open_store

    config = load_config(toml)
    now = datetime.now(UTC)
    with open_store(config) as store:
        problems = sync_subscribers(config, store, now - timedelta(days=1))
    if problems:
        raise SystemExit(f"unexpected subscriber problems: {problems[:3]}")
    result = Digests(config).plan("manual", now)
    print(f"planned edition {result.edition.id}: {result.edition.deliveries} deliveries")


def child_deliver(toml: Path, profile: Path | None = None) -> None:
    from statement_feeds.config import load_config
    from statement_feeds.digests.service import Digests

    digests = Digests(load_config(toml))
    if profile is None:
        summary = asyncio.run(digests.deliver())
    else:  # --profile: where a sender's time goes (cProfile, one file per process)
        import cProfile

        profiler = cProfile.Profile()
        summary = profiler.runcall(asyncio.run, digests.deliver())
        profiler.dump_stats(profile / f"deliver-{toml.parent.name}-{os.getpid()}.prof")
    print(f"pid {os.getpid()}: {summary}")


def child_report(toml: Path) -> None:
    """Ledger counts and the average message size, recomposed from a sample of rows."""
    import json

    from statement_feeds.config import load_config
    from statement_feeds.digests.service import Digests
    from statement_feeds.state.api import DELIVERY_STATES, Delivery
    from statement_feeds.state.open import open_store

    config = load_config(toml)
    digests = Digests(config)
    composer = digests.composer(digests.catalog())
    with open_store(config) as store:
        counts = store.counts()
    query = (
        "SELECT edition_id, email, name, lang, statement_ids, message_id FROM deliveries"
        " ORDER BY random() LIMIT 2000"
    )
    if config.state.url:  # a benchmark may peek at the tables: read-only
        import psycopg

        with psycopg.connect(config.state.url) as conn:
            rows = conn.execute(query).fetchall()
    else:
        import sqlite3

        with sqlite3.connect(config.paths.state / "state.sqlite") as conn:
            rows = conn.execute(query).fetchall()
    sizes = [
        len(composer(Delivery(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], 1, None)))
        for r in rows
    ]
    total = sum(getattr(counts, state) for state in DELIVERY_STATES)
    print(f"{counts.sent} {total} {sum(sizes) // max(1, len(sizes))}")


# -- the parent ---------------------------------------------------------------------------


@dataclass
class Result:
    mode: Mode
    messages: int
    received: int
    wall: float
    ref_wall: float
    rss_mib: list[float]
    cpu_s: list[float]  # user + system seconds of each sender
    db_cpu: float  # of every postgres process meanwhile (0 for SQLite: in the sender)
    sink_cpu: float
    commits: int  # PostgreSQL transactions committed in the run's database (0: SQLite)

    @property
    def rate(self) -> float:
        return self.messages / self.wall

    @property
    def cpu_per_message(self) -> float:
        return (sum(self.cpu_s) + self.db_cpu + self.sink_cpu) / self.messages

    @property
    def ref_rate(self) -> float:
        return self.messages / self.ref_wall


def process_cpu(name: str) -> float:
    """User + system seconds of every process called ``name``, with its reaped children
    (a PostgreSQL backend that ended is counted in the postmaster's)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        if text[text.index("(") + 1 : text.rindex(")")] != name:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        ticks += sum(int(field) for field in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def pg_commits(url: str, database: str | None) -> int:
    """Transactions committed in ``database`` so far: the senders' writes, once they have
    exited (a backend reports its counts when it ends)."""
    if database is None:
        return 0
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
    return int(row[0]) if row else 0


def python(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, __file__, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{args[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def run_senders(
    toml: Path, count: int, profile: Path | None
) -> tuple[float, list[float], list[float]]:
    started = time.perf_counter()
    children = []
    for n in range(count):
        log = (toml.parent / f"deliver{n}.log").open("w")
        command = [sys.executable, __file__, "--child-deliver", str(toml)]
        if profile is not None:
            command += ["--profile", str(profile.resolve())]
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=toml.parent)
        children.append((child, log, n))
    rss, cpu = [], []
    for child, log, n in children:
        _, status, usage = os.wait4(child.pid, 0)
        log.close()
        rss.append(usage.ru_maxrss / 1024)
        cpu.append(usage.ru_utime + usage.ru_stime)
        if os.waitstatus_to_exitcode(status) != 0:
            text = (toml.parent / f"deliver{n}.log").read_text(errors="replace")
            raise SystemExit(f"sender {n} failed:\n{text[-3000:]}")
    return time.perf_counter() - started, rss, cpu


def run_mode(mode: Mode, args: argparse.Namespace, sink: Sink, port: int, base: Path) -> Result:
    site = base / f"{mode.backend}{mode.senders}-{secrets.token_hex(3)}"
    toml = write_site(site, args.subscribers, port, datetime.now(UTC))
    text = toml.read_text(encoding="utf-8")
    toml.write_text(text.replace("concurrency = 4", f"concurrency = {args.concurrency}"))
    database = None
    if mode.backend == "pg":
        database = f"scale_bench_{secrets.token_hex(4)}"
        url = pg_database(args.pg, database)
        with toml.open("a", encoding="utf-8") as out:
            out.write(f'\n[state]\nurl = "{url}"\n')
    try:
        python("--child-plan", str(toml), cwd=site)
        before = sink.count()
        db_before, sink_before = process_cpu("postgres"), process_cpu("smtp-sink")
        commits_before = pg_commits(args.pg, database)
        wall, rss, cpu = run_senders(toml, mode.senders, args.profile)
        db_cpu = process_cpu("postgres") - db_before
        sink_cpu = process_cpu("smtp-sink") - sink_before
        time.sleep(0.2)
        commits = pg_commits(args.pg, database) - commits_before
        received = sink.count() - before
        sent, total, size = (int(x) for x in python("--child-report", str(toml), cwd=site).split())
        if sent != total or received < total:
            print(f"  WARNING {mode}: {sent} of {total} confirmed, sink received {received}")
        ref_wall, _ = run_smtp_source(
            args.source_tool, port, total, size, sessions=args.concurrency * mode.senders
        )
        return Result(mode, total, received, wall, ref_wall, rss, cpu, db_cpu, sink_cpu, commits)
    finally:
        if database is not None:
            pg_database(args.pg, database, drop=True)
        shutil.rmtree(site, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--modes", default="sqlite:1,pg:1,pg:2,pg:3")
    parser.add_argument("--runs", type=int, default=1, help="rounds over every mode")
    parser.add_argument("--pg", default=os.environ.get("STATEMENT_FEEDS_TEST_PG", DEFAULT_PG))
    parser.add_argument(
        "--profile", type=Path, help="write each sender's cProfile stats into this folder"
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="smtp.concurrency of each sender"
    )
    parser.add_argument(
        "--no-pipelining",
        action="store_true",
        help="smtp-sink -p: PIPELINING not offered (MAIL, RCPT, DATA each a round trip)",
    )
    parser.add_argument("--child-plan", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-deliver", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_deliver is not None:
        child_deliver(args.child_deliver, args.profile)
        return
    for flag, job in ((args.child_plan, child_plan), (args.child_report, child_report)):
        if flag is not None:
            job(flag)
            return
    modes = [Mode.parse(text) for text in args.modes.split(",")]
    sink_tool, args.source_tool = find_tool("smtp-sink"), find_tool("smtp-source")
    if not sink_tool or not args.source_tool:
        raise SystemExit("smtp-sink/smtp-source not found: scripts/bench-scale.sh installs postfix")
    base = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    port = free_port()
    sink = Sink(sink_tool, port, base, ("-p",) if args.no_pipelining else ())
    print(
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; {args.subscribers:,} subs"
        + f"; smtp.concurrency {args.concurrency}"
        + ("; smtp-sink without PIPELINING" if args.no_pipelining else "")
    )
    results: dict[str, list[Result]] = {str(m): [] for m in modes}
    try:
        for _ in range(args.runs):
            for mode in modes:  # interleaved: drift hits every mode alike
                result = run_mode(mode, args, sink, port, base)
                results[str(mode)].append(result)
                print(
                    f"  {mode}: {result.messages:,} messages in {result.wall:.2f} s = "
                    f"{result.rate:,.0f} msg/s; smtp-source -s {args.concurrency * mode.senders}: "
                    f"{result.ref_rate:,.0f} msg/s; ratio {result.rate / result.ref_rate:.3f}; "
                    f"peak RSS per sender {', '.join(f'{r:.0f}' for r in result.rss_mib)} MiB; "
                    f"CPU per sender {', '.join(f'{c:.1f}' for c in result.cpu_s)} s, "
                    f"PostgreSQL {result.db_cpu:.1f} s, smtp-sink {result.sink_cpu:.1f} s; "
                    f"{result.commits / result.messages:.2f} PostgreSQL commits per message; "
                    f"all: {result.cpu_per_message * 1e3:.2f} ms per message"
                )
    finally:
        sink.close()
        shutil.rmtree(base, ignore_errors=True)
    summarise(results)


def summarise(results: dict[str, list[Result]]) -> None:
    print("\nmedian over runs:  mode  msg/s  smtp-source msg/s  ratio  vs sqlite:1  CPU ms/msg")
    sqlite = results.get("sqlite:1")
    base_rate = median(r.rate for r in sqlite) if sqlite else None
    for mode, rows in results.items():
        rate = median(r.rate for r in rows)
        ref = median(r.ref_rate for r in rows)
        versus = f"{rate / base_rate:.2f}x" if base_rate else "-"
        cpu = median(r.cpu_per_message for r in rows) * 1e3
        print(f"  {mode:>8}  {rate:8,.0f}  {ref:8,.0f}  {rate / ref:.3f}  {versus}  {cpu:.2f}")


if __name__ == "__main__":
    main()
