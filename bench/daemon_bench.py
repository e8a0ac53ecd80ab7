"""Daemon benchmark: write-to-feed latency and idle CPU of `statement-feeds run`.

- A 10,000-statement site (2,000 translation keys x 5 languages, ~300 words each, from
  ``corpus.py``), built once by the daemon on start.
- Latency: 100 edits of one statement (the newest, so it is in ``en.atom``), each saved
  like an editor does (temp file + rename); time from the rename to the new title being
  in ``public/feeds/en.atom``. Median and p95.
- Idle CPU: utime + stime of the daemon (``/proc/<pid>/stat``) over 60 s with no changes,
  once with the default 60 s safety-net rescan and once with rescans far apart (the
  watcher alone).

Usage: ``python bench/daemon_bench.py [--keys 2000] [--edits 100] [--idle 60]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import Corpus, write_site

EDITED = "zz-bench-edit.en.md"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def save(path: Path, title: str) -> None:
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(f'---\ntitle: "{title}"\ndate: 2025-01-01\n---\n\nThe edited body.\n')
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
    proc = subprocess.Popen([*command, "run", "--rescan", str(rescan)], stderr=log.open("a"))
    deadline = time.monotonic() + 300
    while 'event="daemon ready"' not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text())
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


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
    before = cpu_seconds(proc.pid)
    time.sleep(seconds)
    return cpu_seconds(proc.pid) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2000, help="translation keys (x5 files)")
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--idle", type=float, default=60.0, help="idle seconds measured")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sf-daemon-bench-") as folder:
        root = Path(folder)
        files = write_site(root, Corpus(args.keys, 300, 20240501))
        save(root / "statements" / EDITED, "Bench edit start")
        log = root / "daemon.log"
        t0 = time.perf_counter()
        proc = start(root, 60.0, log)
        print(
            f"corpus: {files + 1} statements; start + first build {time.perf_counter() - t0:.1f} s"
        )
        try:
            times = latency(root, args.edits)
            p95 = statistics.quantiles(times, n=20)[-1]
            print(
                f"write -> feed latency over {len(times)} edits: median "
                f"{statistics.median(times) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
                f"max {max(times) * 1000:.0f} ms"
            )
            used = idle(proc, args.idle)
            print(f"idle CPU over {args.idle:.0f} s (rescan every 60 s): {used:.2f} s")
        finally:
            stop(proc)
        proc = start(root, 3600.0, log)
        try:
            used = idle(proc, args.idle)
            print(f"idle CPU over {args.idle:.0f} s (watcher only, no rescan due): {used:.2f} s")
        finally:
            stop(proc)
        builds = [line for line in log.read_text().splitlines() if "build done" in line]
        print(f"builds logged: {len(builds)}; last: {builds[-1] if builds else '-'}")


if __name__ == "__main__":
    main()
