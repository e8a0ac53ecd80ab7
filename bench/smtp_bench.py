"""Edition benchmark: ``statement-feeds digest send`` to 100,000 subscribers against smtp-sink.

    .venv/bin/python bench/smtp_bench.py                     # 100,000 subscribers, 1 run
    .venv/bin/python bench/smtp_bench.py --runs 3            # three editions, three references
    .venv/bin/python bench/smtp_bench.py --subscribers 200000
    .venv/bin/python bench/smtp_bench.py --profile           # also cProfile one edition

Postfix's ``smtp-sink`` listens on a free loopback port and accepts everything (no
queue, no disk). A site in a temporary folder: a subscribers CSV, nine statements in
three languages (en, ru, de; three translation keys, not every key in every language,
so there are several distinct bundles), dated an hour ago, and the subscribers' join
times synced a day earlier (as the daemon does when the file appears), so everyone
gets a digest. ``[smtp]`` points at the sink: ``security = "none"``, ``concurrency = 4``.

Timed: the child process ``statement-feeds digest send`` from spawn to exit —
interpreter start, loading statements, planning the edition (one transaction),
composing, the ledger writes and sending. Peak RSS: the child's ``ru_maxrss`` from
``os.wait4`` (Linux folds in reaped descendants, so with worker processes this is
the largest single process), plus the sum over the process tree sampled every 50 ms.

Reference, in the same run: ``smtp-source -s 4 -d -m COUNT -l SIZE`` (4 sessions,
connections reused, the same number of messages of our average size) to the same
sink. The ratio ours / smtp-source is the figure the issue sets a target for (>= 0.15).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LANGUAGES = ["en", "ru", "en ru", "ru en", "de en", "de ru en"]
# Translation keys and their languages: 3 keys, 6 files, a few distinct bundles.
STATEMENT_LANGS = {"strike": ("en", "ru", "de"), "election": ("en", "ru"), "housing": ("en",)}
WORDS = {
    "en": [
        "the",
        "workers",
        "union",
        "strike",
        "solidarity",
        "housing",
        "rent",
        "council",
        "election",
        "struggle",
    ],
    "ru": [
        "рабочие",
        "профсоюз",
        "забастовка",
        "солидарность",
        "жильё",
        "аренда",
        "совет",
        "выборы",
        "борьба",
    ],
    "de": [
        "die",
        "Arbeiter",
        "Gewerkschaft",
        "Streik",
        "Solidarität",
        "Wohnung",
        "Miete",
        "Rat",
        "Wahl",
        "Kampf",
    ],
}


def find_tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/lib/postfix") / name) if p.exists()),
        None,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def statement_text(key: str, lang: str, date: datetime, rng: random.Random) -> str:
    words = WORDS[lang]
    paragraphs = [
        " ".join(rng.choice(words) for _ in range(rng.randint(40, 70))).capitalize() + "."
        for _ in range(4)
    ]
    return (
        f'---\ntitle: "{key.capitalize()} ({lang})"\ndate: {date.isoformat()}\n'
        f"translation_key: {key}\n---\n\n" + "\n\n".join(paragraphs) + "\n"
    )


def write_site(root: Path, count: int, port: int, now: datetime) -> Path:
    """The site folder; returns the config path. Join times are synced separately."""
    rng = random.Random(3)
    (root / "statements").mkdir(parents=True)
    for n, (key, langs) in enumerate(STATEMENT_LANGS.items()):
        for lang in langs:
            published = now - timedelta(hours=3 - n)
            text = statement_text(key, lang, published, rng)
            (root / "statements" / f"{key}.{lang}.md").write_text(text, encoding="utf-8")
    (root / "subscribers").mkdir()
    with (root / "subscribers" / "list.csv").open("w", encoding="utf-8") as out:
        out.write("email,name,languages,frequency\n")
        for i in range(count):
            name = f"User {i}" if i % 3 else ""
            out.write(f"user{i}@example{i % 97}.org,{name},{rng.choice(LANGUAGES)},daily\n")
    toml = root / "statement-feeds.toml"
    toml.write_text(
        '[site]\ntitle = "Socialism From Below"\nurl = "https://example.org/"\n'
        'timezone = "UTC"\ndefault_language = "en"\n\n'
        '[digest]\nfrom = "Statements <statements@example.org>"\n\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\nconcurrency = 4\n\n'
        '[http]\npublic_url = "https://example.org/newsletter/"\n',
        encoding="utf-8",
    )
    return toml


def sync_joins(toml: Path, at: datetime) -> None:
    """Record every address as joined at ``at`` (before the statements were published)."""
    from statement_feeds.config import load_config
    from statement_feeds.digests.plan import sync_subscribers
    from statement_feeds.state.sqlite import SqliteStore

    config = load_config(toml)
    with SqliteStore.open(config.paths.state) as store:
        problems = sync_subscribers(config, store, at)
    if problems:
        raise SystemExit(f"unexpected subscriber problems: {problems[:3]}")


def message_sizes(toml: Path, sample: int = 3000) -> tuple[int, int]:
    """(number of deliveries, average message size) recomposed from the ledger."""
    from statement_feeds.config import load_config
    from statement_feeds.digests.service import Digests
    from statement_feeds.state.api import Delivery
    from statement_feeds.state.sqlite import SqliteStore

    digests = Digests(load_config(toml))
    composer = digests.composer(digests.catalog())
    with SqliteStore.open(digests.config.paths.state) as store:
        db = store._db  # a benchmark may peek: read-only
        total = int(db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0])
        rows = db.execute(
            "SELECT edition_id, email, name, lang, statement_ids, message_id FROM deliveries"
            " ORDER BY random() LIMIT ?",
            (sample,),
        ).fetchall()
    import json

    sizes = [
        len(composer(Delivery(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], 1, None)))
        for r in rows
    ]
    return total, sum(sizes) // max(1, len(sizes))


def ledger_states(toml: Path) -> dict[str, int]:
    from statement_feeds.config import load_config
    from statement_feeds.state.sqlite import SqliteStore

    with SqliteStore.open(load_config(toml).paths.state) as store:
        rows = store._db.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state")
        return {state: int(n) for state, n in rows}


class TreeRss:
    """Samples the summed RSS of a process and its descendants (from /proc) every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self.most_processes = 1
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.05):
            total, count = self._sample()
            self.peak_kib = max(self.peak_kib, total)
            self.most_processes = max(self.most_processes, count)

    def _sample(self) -> tuple[int, int]:
        parents: dict[int, int] = {}
        rss: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            pid = int(entry)
            parents[pid] = int(fields.get("PPid", "0").strip() or 0)
            rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
        tree, frontier = {self.pid}, [self.pid]
        while frontier:
            parent = frontier.pop()
            children = [p for p, pp in parents.items() if pp == parent and p not in tree]
            tree.update(children)
            frontier.extend(children)
        return sum(rss.get(p, 0) for p in tree), len(tree & rss.keys())

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


@dataclass
class Edition:
    wall: float
    cpu: float
    rss_mib: float  # largest single process (wait4)
    tree_rss_mib: float  # summed over the process tree (sampled)
    processes: int
    output: str


def run_edition(toml: Path, profile: Path | None) -> Edition:
    command = [str(VENV_BIN / "statement-feeds"), "--config", str(toml), "digest", "send"]
    if profile is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "statement_feeds"]
        command += ["--config", str(toml), "digest", "send"]
    log = toml.parent / "send.log"
    started = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=toml.parent)
        tree = TreeRss(child.pid)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    tree.stop()
    child.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if child.returncode != 0:
        raise SystemExit(f"digest send exited {child.returncode}:\n{text[-3000:]}")
    return Edition(
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        tree.peak_kib / 1024,
        tree.most_processes,
        text.strip().splitlines()[-1] if text.strip() else "",
    )


def run_smtp_source(
    tool: str, port: int, count: int, size: int, sessions: int = 4
) -> tuple[float, float]:
    command = [tool, "-s", str(sessions), "-d", "-m", str(count), "-l", str(size)]
    command += ["-f", "statements@example.org", "-t", "user@example.org", f"127.0.0.1:{port}"]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(
            f"smtp-source failed: {child.stderr.read().decode() if child.stderr else ''}"
        )
    return wall, usage.ru_utime + usage.ru_stime


class Sink:
    """smtp-sink on a loopback port, counting delivered messages (-c)."""

    def __init__(self, tool: str, port: int, folder: Path, options: tuple[str, ...] = ()) -> None:
        self.log = folder / "sink.out"
        self._out = self.log.open("wb")
        # -c: running count on stdout; -u: drop root privileges (it refuses root otherwise);
        # backlog 1000; -m 256 concurrent sessions is plenty.
        command = [tool, "-c", "-m", "256", *options]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]
        self.process = subprocess.Popen([*command, f"127.0.0.1:{port}", "1000"], stdout=self._out)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("smtp-sink did not start listening")

    def count(self) -> int:
        self._out.flush()
        # Lines like "sess=4 quit=4 mesg=1000\r": the last one is the current count.
        found = re.findall(rb"mesg=(\d+)", self.log.read_bytes()[-200:])
        return int(found[-1]) if found else 0

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()
        self._out.close()


def main() -> None:  # noqa: PLR0915 - a linear script
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1, help="editions (each on a fresh site)")
    parser.add_argument("--profile", action="store_true", help="cProfile one more edition")
    parser.add_argument("--workdir", type=Path, help="keep the sites here")
    args = parser.parse_args()
    sink_tool, source_tool = find_tool("smtp-sink"), find_tool("smtp-source")
    if not sink_tool or not source_tool:
        raise SystemExit(
            "smtp-sink/smtp-source not found: apt-get install postfix (scripts/bench-smtp.sh)"
        )
    base = args.workdir or Path(tempfile.mkdtemp(prefix="smtp-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    sink = Sink(sink_tool, port, base)
    source = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        check=False,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(
        f"statement-feeds source: {source}; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.2f}; sink on 127.0.0.1:{port}"
    )
    rows = []
    try:
        for run in range(args.runs + args.profile):
            profile = base / "send.prof" if run == args.runs else None
            site = base / f"site{run}"
            now = datetime.now(UTC)
            toml = write_site(site, args.subscribers, port, now)
            sync_joins(toml, now - timedelta(days=1))
            before = sink.count()
            ours = run_edition(toml, profile)
            time.sleep(0.2)
            received = sink.count() - before
            count, size = message_sizes(toml)
            states = ledger_states(toml)
            if profile is not None:
                print(
                    f"profiled edition: {ours.wall:.1f} s wall (cProfile inflates it); "
                    f"profile in {profile}"
                )
                show_profile(profile)
                continue
            before = sink.count()
            ref_wall, ref_cpu = run_smtp_source(source_tool, port, count, size)
            time.sleep(0.2)
            ref_received = sink.count() - before
            ours_rate, ref_rate = count / ours.wall, count / ref_wall
            rows.append(
                (ours_rate, ref_rate, ours_rate / ref_rate, ours.rss_mib, ours.tree_rss_mib)
            )
            print(
                f"run {run + 1}: edition of {count:,} messages (avg {size:,} bytes), "
                f"sink received {received:,}, ledger {states}\n"
                f"  ours        {ours.wall:7.2f} s wall {ours.cpu:7.2f} s cpu  "
                f"{ours_rate:8,.0f} msg/s  "
                f"peak RSS {ours.rss_mib:.0f} MiB per process, {ours.tree_rss_mib:.0f} MiB "
                f"summed over up to {ours.processes} processes\n"
                f"  smtp-source {ref_wall:7.2f} s wall {ref_cpu:7.2f} s cpu  "
                f"{ref_rate:8,.0f} msg/s  "
                f"(sink received {ref_received:,})\n"
                f"  ratio ours/smtp-source {ours_rate / ref_rate:.3f}   [{ours.output}]"
            )
            if received < count or states.get("sent", 0) != count:
                print("  WARNING: not every message reached the sink / was confirmed")
    finally:
        sink.close()
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    if rows:

        def col(i: int) -> str:
            values = [r[i] for r in rows]
            fmt = "{:.3f}" if i == 2 else "{:,.0f}"
            return fmt.format(median(values)) + (
                f" ({fmt.format(min(values))}–{fmt.format(max(values))})" if len(values) > 1 else ""
            )

        print(f"\n{args.subscribers:,} subscribers, {len(rows)} run(s), median (min–max):")
        print(f"  ours msg/s        {col(0)}")
        print(f"  smtp-source msg/s {col(1)}")
        print(f"  ratio             {col(2)}   (target >= 0.15)")
        print(f"  peak RSS MiB      {col(3)} per process, {col(4)} summed   (target < 200)")


def show_profile(path: Path) -> None:
    import pstats

    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
