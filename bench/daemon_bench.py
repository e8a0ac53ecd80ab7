"""Daemon benchmark: write-to-feed latency, idle CPU and RSS under churn of `statement-feeds run`.

- A 10,000-statement site (2,000 translation keys x 5 languages, ~300 words each, from
  ``corpus.py``), built once by the daemon on start.
- Latency: 100 edits of one statement (the newest, so it is in ``en.atom``), each saved
  like an editor does (temp file + rename); time from the rename to the new title being
  in ``public/feeds/en.atom``. Median, p95 and max.
- Idle CPU: utime + stime of the daemon (``/proc/<pid>/stat``) over 60 s with no changes,
  once with the default 60 s safety-net rescan and once with ``--rescan 600`` (the
  watcher alone: no rescan falls due in the window).
- Churn: a fresh daemon (default 60 s rescan) while statements are created, edited (temp
  file + rename, or in place), renamed and deleted at ``--churn-rate`` operations per
  second, keeping the count near its start value. Every ``--sample`` seconds the daemon's
  VmRSS / VmHWM (``/proc/<pid>/status``), its CPU (own + reaped children) and the RSS of
  its live child processes (the build's process pool), its thread and open-fd counts are
  printed. Verdict: mean RSS of the last third against the first third, and a
  least-squares slope in MB/hour, over the whole run and over its second half.
  After the churn one more edit must reach the feed.

Quiet machine first: before each measurement the 1-minute load average is polled until it
is below ``--quiet-load``; at most ``--max-wait`` seconds are spent waiting in total, then
it measures anyway. Each figure is printed with the load average at its start and end
(the daemon's own work counts in it during the latency and churn phases).

Usage: ``python bench/daemon_bench.py [--keys 2000] [--edits 100] [--idle 60]
[--churn 600] [--churn-rate 5]``; ``--churn 0`` skips the churn, ``--edits 0`` the latency
and ``--idle 0`` the idle phases.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import LANGUAGES, Corpus, Statement, statement_text, write_site

EDITED = "zz-bench-edit.en.md"
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---- the daemon's process -------------------------------------------------------------


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """utime + stime of ``pid`` (with ``children``: plus its reaped children's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    return 0


def child_pids(pid: int) -> list[int]:
    """Live descendants of ``pid`` (all threads' children, recursively)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        for child in map(int, text.split()):
            found += [child, *child_pids(child)]
    return found


def children_rss_mb(pid: int) -> float:
    total = 0
    for child in child_pids(pid):
        try:
            total += int(Path(f"/proc/{child}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total / 2**20


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class QuietWaiter:
    """Waits for a 1-minute load below ``threshold``, ``budget`` seconds in total."""

    def __init__(self, threshold: float, budget: float) -> None:
        self.threshold, self.budget = threshold, budget

    def wait(self, what: str) -> None:
        load = load1()
        if load < self.threshold:
            print(f"[{what}] load {load:.2f} < {self.threshold}: measuring", flush=True)
            return
        print(
            f"[{what}] load {load:.2f} >= {self.threshold}: waiting "
            f"(at most {self.budget:.0f} s left)",
            flush=True,
        )
        started = time.monotonic()
        while load >= self.threshold and time.monotonic() - started < self.budget:
            time.sleep(10)
            load = load1()
        waited = time.monotonic() - started
        self.budget = max(0.0, self.budget - waited)
        verdict = "quiet" if load < self.threshold else "NOT quiet, measuring anyway"
        print(f"[{what}] waited {waited:.0f} s, load {load:.2f}: {verdict}", flush=True)


def loads(before: float) -> str:
    return f"load {before:.2f} -> {load1():.2f}"


# ---- files ----------------------------------------------------------------------------


def save(path: Path, title: str, when: str = "2025-01-01") -> None:
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(f'---\ntitle: "{title}"\ndate: {when}\n---\n\nThe edited body.\n')
    os.replace(temp, path)


def wait_for(path: Path, marker: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if marker in path.read_text():
                return
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(marker)
        time.sleep(0.005)


def start(root: Path, rescan: float, log: Path) -> subprocess.Popen[bytes]:
    config = str(root / "statement-feeds.toml")
    command = [sys.executable, "-m", "statement_feeds", "--config", config]
    offset = log.stat().st_size if log.exists() else 0
    proc = subprocess.Popen([*command, "run", "--rescan", str(rescan)], stderr=log.open("a"))
    deadline = time.monotonic() + 300
    while 'event="daemon ready"' not in log.read_text()[offset:]:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text()[offset:])
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


# ---- latency and idle -----------------------------------------------------------------


def latency(root: Path, edits: int) -> list[float]:
    feed, path = root / "public" / "feeds" / "en.atom", root / "statements" / EDITED
    times = []
    for i in range(edits):
        marker = f"Bench edit {i:04d}"
        before = time.perf_counter()
        save(path, marker)
        wait_for(feed, marker)
        times.append(time.perf_counter() - before)
    return times


def idle(proc: subprocess.Popen[bytes], seconds: float) -> float:
    before = cpu_seconds(proc.pid, children=True)
    time.sleep(seconds)
    return cpu_seconds(proc.pid, children=True) - before


# ---- churn ----------------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    t: float  # seconds since the churn started
    rss_mb: float
    hwm_mb: float
    children_mb: float
    cpu_s: float  # daemon + reaped children, cumulative since the churn started
    ops: int
    files: int
    load: float
    threads: int
    fds: int


class Churner:
    """Creates, edits, renames and deletes statements under ``statements/churn/``
    and among the corpus, keeping the count near where it started."""

    def __init__(self, root: Path, seed: int = 4242) -> None:
        self.folder = root / "statements"
        self.rng = random.Random(seed)
        self.files = sorted(p for p in self.folder.rglob("*.md") if p.name != EDITED)
        self.target = len(self.files)
        # Bodies for new statements: a second corpus, cycled with fresh titles and dates.
        self.pool = list(Corpus(40, 300, seed))
        self.serial = 0
        self.counts = {"create": 0, "edit": 0, "rename": 0, "delete": 0}
        (self.folder / "churn").mkdir(exist_ok=True)

    def _text(self) -> str:
        self.serial += 1
        base = self.pool[self.serial % len(self.pool)]
        # Mostly recent dates (the subscription feeds change), some old ones (archives shift).
        if self.rng.random() < 0.7:
            when = f"2025-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}"
        else:
            when = f"{self.rng.randint(2005, 2024)}-{self.rng.randint(1, 12):02d}-01"
        title = f"Churn {self.serial:06d} {base.title}"
        return statement_text(Statement(base.key, base.lang, 0, title, when, base.body))

    def _name(self) -> str:
        return f"c{self.serial:06d}-{self.rng.randrange(10**6):06d}.{self.rng.choice(LANGUAGES)}.md"

    def step(self) -> str:
        drift = len(self.files) - self.target
        roll = self.rng.random()
        if roll < 0.4:
            op = "edit"
        elif roll < 0.6:
            op = "rename"
        else:  # create or delete, leaning back towards the start count
            op = "create" if self.rng.random() < 0.5 - max(-0.4, min(0.4, drift / 50)) else "delete"
        getattr(self, f"_{op}")()
        self.counts[op] += 1
        return op

    def _create(self) -> None:
        text = self._text()
        path = self.folder / "churn" / self._name()
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
        self.files.append(path)

    def _pick(self) -> int:
        return self.rng.randrange(len(self.files))

    def _edit(self) -> None:
        path = self.files[self._pick()]
        text = self._text()
        if self.rng.random() < 0.7:  # an editor's save: temp file + rename
            temp = path.with_name(f".{path.name}.swp")
            temp.write_text(text, encoding="utf-8")
            os.replace(temp, path)
        else:  # in place (an `echo >>`-style or a script's write)
            path.write_text(text, encoding="utf-8")

    def _rename(self) -> None:
        i = self._pick()
        new = self.folder / "churn" / self._name()
        os.rename(self.files[i], new)
        self.files[i] = new

    def _delete(self) -> None:
        i = self._pick()
        self.files[i].unlink()
        self.files[i] = self.files[-1]
        self.files.pop()


def churn(
    root: Path, proc: subprocess.Popen[bytes], seconds: float, rate: float, every: float
) -> list[Sample]:
    churner = Churner(root)
    pid = proc.pid
    cpu0 = cpu_seconds(pid, children=True)
    samples: list[Sample] = []
    started = time.monotonic()
    ops = 0
    next_sample = started

    def sample() -> None:
        s = Sample(
            t=time.monotonic() - started,
            rss_mb=status_kb(pid, "VmRSS") / 1024,
            hwm_mb=status_kb(pid, "VmHWM") / 1024,
            children_mb=children_rss_mb(pid),
            cpu_s=cpu_seconds(pid, children=True) - cpu0,
            ops=ops,
            files=len(churner.files),
            load=load1(),
            threads=status_kb(pid, "Threads"),
            fds=len(os.listdir(f"/proc/{pid}/fd")),
        )
        cpu_pct = 0.0
        if samples:
            cpu_pct = 100 * (s.cpu_s - samples[-1].cpu_s) / max(1e-9, s.t - samples[-1].t)
        samples.append(s)
        print(
            f"{s.t:7.0f} {s.rss_mb:9.1f} {s.hwm_mb:9.1f} {s.children_mb:8.1f} "
            f"{s.cpu_s:8.1f} {cpu_pct:6.0f} {s.ops:7d} {s.files:7d} {s.load:6.2f} "
            f"{s.threads:4d} {s.fds:4d}",
            flush=True,
        )

    print(
        f"{'t s':>7} {'RSS MB':>9} {'HWM MB':>9} {'kids MB':>8} {'CPU s':>8} "
        f"{'CPU %':>6} {'ops':>7} {'files':>7} {'load1':>6} {'thr':>4} {'fds':>4}",
        flush=True,
    )
    while True:
        now = time.monotonic()
        if now >= next_sample:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {proc.returncode} during the churn")
            sample()
            next_sample += every
        if now - started >= seconds:
            break
        due = started + ops / rate
        if now >= due:
            churner.step()
            ops += 1
        else:
            time.sleep(min(due, next_sample) - now)
    print(
        "operations: "
        + ", ".join(f"{k} {v}" for k, v in churner.counts.items())
        + f"; statements {churner.target + 1} at start, {len(churner.files) + 1} at end",
        flush=True,
    )
    return samples


def slope_mb_per_hour(points: list[Sample]) -> float:
    if len(points) < 2:
        return 0.0
    xs = [p.t / 3600 for p in points]
    ys = [p.rss_mb for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def churn_verdict(samples: list[Sample], seconds: float, rate: float) -> None:
    n = len(samples)
    if n < 6:
        print("churn: too few samples for a verdict (run longer than 6 sample intervals)")
        return
    third = n // 3
    first = statistics.fmean(s.rss_mb for s in samples[:third])
    last = statistics.fmean(s.rss_mb for s in samples[-third:])
    growth = last - first
    whole = slope_mb_per_hour(samples)
    late = slope_mb_per_hour(samples[n // 2 :])
    ran = samples[-1].t
    cpu = samples[-1].cpu_s
    hour = ran >= 3600 - 30  # sampling ticks may end it a few seconds short
    span = "the full hour" if hour else "not 1 hour"
    print(
        f"churn: ran {ran:.0f} s ({ran / 60:.1f} min, {span}) at {rate:g} ops/s, "
        f"{samples[-1].ops} operations, {n} samples; daemon CPU {cpu:.0f} s "
        f"({100 * cpu / max(ran, 1):.0f} % of one core); load {samples[0].load:.2f} -> "
        f"{samples[-1].load:.2f} (max {max(s.load for s in samples):.2f})"
    )
    print(
        f"churn RSS: start {samples[0].rss_mb:.1f} MB, end {samples[-1].rss_mb:.1f} MB, "
        f"min {min(s.rss_mb for s in samples):.1f}, max {max(s.rss_mb for s in samples):.1f}, "
        f"VmHWM {samples[-1].hwm_mb:.1f} MB; threads {samples[0].threads} -> "
        f"{samples[-1].threads}, open fds {samples[0].fds} -> {samples[-1].fds}"
    )
    print(
        f"churn RSS growth, mean of last third vs first third: {growth:+.1f} MB "
        f"({100 * growth / first:+.1f} %)"
    )
    slopes = (
        f"churn RSS slope (least squares): {whole:+.1f} MB/hour over the whole run, "
        f"{late:+.1f} MB/hour over its second half"
    )
    if not hour:
        slopes += (
            "; extrapolated to 1 hour from the second-half slope: "
            f"{samples[-1].rss_mb + late * (3600 - ran) / 3600:.0f} MB "
            f"(an extrapolation of {ran / 60:.0f} min, not a 1-hour measurement)"
        )
    print(slopes)


# ---- main -----------------------------------------------------------------------------


def phase_latency_idle(args: argparse.Namespace, root: Path, log: Path, quiet: QuietWaiter) -> None:
    """Latency and idle CPU with the default rescan, then idle CPU with ``--idle-rescan``."""
    proc = start(root, 60.0, log)
    try:
        if args.edits:
            quiet.wait("latency")
            load0 = load1()
            times = latency(root, args.edits)
            p95 = statistics.quantiles(times, n=20)[-1]
            print(
                f"write -> feed latency over {len(times)} edits: median "
                f"{statistics.median(times) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
                f"max {max(times) * 1000:.0f} ms ({loads(load0)})",
                flush=True,
            )
        if args.idle:
            time.sleep(2)  # the last edit's build
            quiet.wait("idle, rescan 60 s")
            load0 = load1()
            used = idle(proc, args.idle)
            print(
                f"idle CPU over {args.idle:.0f} s (rescan every 60 s): {used:.2f} s "
                f"({loads(load0)})",
                flush=True,
            )
    finally:
        stop(proc)
    if not args.idle:
        return
    proc = start(root, args.idle_rescan, log)
    try:
        time.sleep(2)  # the build "ready" triggers
        quiet.wait(f"idle, rescan {args.idle_rescan:g} s")
        load0 = load1()
        used = idle(proc, args.idle)
        print(
            f"idle CPU over {args.idle:.0f} s (rescan every {args.idle_rescan:g} s, "
            f"none due: watcher only): {used:.2f} s ({loads(load0)})",
            flush=True,
        )
    finally:
        stop(proc)


def phase_churn(args: argparse.Namespace, root: Path, log: Path, quiet: QuietWaiter) -> None:
    """A fresh daemon (60 s rescan) under churn; then one edit must still reach the feed."""
    proc = start(root, 60.0, log)
    try:
        time.sleep(2)
        quiet.wait("churn")
        samples = churn(root, proc, args.churn, args.churn_rate, args.sample)
        churn_verdict(samples, args.churn, args.churn_rate)
        t1 = time.perf_counter()
        # Dated after every churned statement (2025 at the latest): the churn's creates
        # have pushed the 2025-01-01 statement out of the newest-50 subscription feed.
        save(root / "statements" / EDITED, "Bench edit after churn", "2026-06-01")
        wait_for(root / "public" / "feeds" / "en.atom", "Bench edit after churn")
        print(f"after the churn, one edit reached the feed in {time.perf_counter() - t1:.2f} s")
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2000, help="translation keys (x5 files)")
    parser.add_argument("--edits", type=int, default=100, help="latency edits (0: skip)")
    parser.add_argument("--idle", type=float, default=60.0, help="idle seconds (0: skip)")
    parser.add_argument(
        "--idle-rescan", type=float, default=600.0, help="--rescan of the second idle run"
    )
    parser.add_argument(
        "--churn", type=float, default=3600.0, help="churn seconds (issue 4: an hour; 0: skip)"
    )
    parser.add_argument("--churn-rate", type=float, default=5.0, help="operations per second")
    parser.add_argument("--sample", type=float, default=10.0, help="churn sampling seconds")
    parser.add_argument("--quiet-load", type=float, default=1.5, help="1-min load to wait for")
    parser.add_argument(
        "--max-wait", type=float, default=900.0, help="total seconds spent waiting for quiet"
    )
    parser.add_argument("--workdir", type=Path, help="keep the site here (default: temp)")
    args = parser.parse_args()
    quiet = QuietWaiter(args.quiet_load, args.max_wait)
    print(f"machine: {os.cpu_count()} CPUs; load average {Path('/proc/loadavg').read_text()}")
    with tempfile.TemporaryDirectory(prefix="sf-daemon-bench-") as folder:
        root = args.workdir or Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        files = write_site(root, Corpus(args.keys, 300, 20240501))
        save(root / "statements" / EDITED, "Bench edit start")
        print(f"corpus: {files + 1} statements written in {time.perf_counter() - t0:.1f} s")
        log = root / "daemon.log"
        if args.edits or args.idle:
            phase_latency_idle(args, root, log, quiet)
        if args.churn:
            phase_churn(args, root, log, quiet)
        lines = log.read_text().splitlines()
        starts = [line for line in lines if "build done" in line and "start" in line]
        builds = sum("build done" in line for line in lines)
        errors = [line for line in lines if "level=error" in line]
        print(f"builds logged (INFO: something written): {builds}; errors logged: {len(errors)}")
        for line in starts:
            print(f"  start build: {line}")
        for line in errors[:5]:
            print(f"  {line}")


if __name__ == "__main__":
    main()
