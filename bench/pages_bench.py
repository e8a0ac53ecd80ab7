"""Pages benchmark (issue 15): a cold ``build`` with pages against Hugo rendering its pages.

One corpus (``corpus.py``: 2,000 keys x 5 languages by default, ~500 words each), written
twice: as a statement-feeds site (pages on, ``per_page = 10``) and as a Hugo site that
renders the same HTML pages plus its feeds (``hugo_site.py``). Then, interleaved, ``--runs``
rounds of our cold build (``public/`` and ``state/`` removed) and Hugo's (``public/``,
``resources/`` and its cache dir removed, ``--gc --ignoreCache``), each a fresh child:

- wall time, CPU time (user + system, the child and its reaped workers);
- peak RSS of the largest single process (``ru_maxrss`` from ``os.wait4``: the child or one
  of its reaped worker processes);
- peak memory of the whole process tree, sampled every 20 ms: the sum of the processes'
  PSS (proportional set size: pages shared by forked workers counted once in all).

Then ``--repeat`` one-file rebuilds: one statement's body gets a paragraph appended, the
build runs, and the files under ``public/`` whose mtime changed (or that appeared or went)
are counted and named. ``--rebuild-only``: no Hugo, one cold build (it warms the site), then
the rebuilds: for a busy machine, or one without Hugo. Usage: ``python bench/pages_bench.py
--help``; ``scripts/bench-pages.sh`` installs Hugo when missing and runs it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_bench import Site, edit_one, ensure_hugo, revision
from build_bench import fmt as median_range
from corpus import LANGUAGES, Corpus, write_site
from hugo_site import write_hugo_pages_site

ROOT = Path(__file__).resolve().parent.parent
TARGET_RSS_MB = 200.0
TARGET_REBUILD_S = 1.0


@dataclass(frozen=True, slots=True)
class Run:
    wall: float
    cpu: float
    rss_mb: float  # the largest single process's peak RSS
    tree_mb: float  # the process tree's peak summed PSS (sampled)
    files: int  # files under public/ afterwards


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(c) for c in handle.read().split())
        except OSError:
            continue
    return found


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples the summed PSS of a process tree until stopped; keeps the peak."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak_kb = pid, every, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            total = sum(_pss_kb(p) for p in _descendants(self.pid))
            self.peak_kb = max(self.peak_kb, total)
            self.done.wait(self.every)


def measure(cmd: Sequence[str], cwd: Path, public: Path, what: str) -> Run:
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        sampler.done.set()
        sampler.join()
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            out.seek(0)
            tail = out.read().decode(errors="replace").strip().splitlines()[-5:]
            raise SystemExit(f"{what} failed (exit {code}): " + "\n".join(tail))
    files = sum(len(names) for _, _, names in os.walk(public))
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, cpu, usage.ru_maxrss / 1024, sampler.peak_kb / 1024, files)


def snapshot(public: Path) -> dict[str, int]:
    """Every file under ``public`` with its mtime (ns)."""
    found: dict[str, int] = {}
    for folder, _, names in os.walk(public):
        for name in names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, public)] = os.stat(path).st_mtime_ns
    return found


def changed(before: dict[str, int], after: dict[str, int]) -> list[str]:
    return sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )


def hugo_cold(hugo: str, root: Path) -> Run:
    for name in ("public", "resources", ".hugo_cache"):
        shutil.rmtree(root / name, ignore_errors=True)
    cmd = [hugo, "--quiet", "--gc", "--ignoreCache", "--cacheDir", str(root / ".hugo_cache")]
    return measure(cmd, root, root / "public", "hugo")


def fmt(values: list[float], digits: int = 2) -> str:
    return median_range(values, digits, empty="skipped")


def _line(run: Run) -> str:
    return (
        f"{run.wall:.2f} s wall, {run.cpu:.2f} s cpu, largest process {run.rss_mb:.0f} MB, "
        f"tree {run.tree_mb:.0f} MB PSS, {run.files} files"
    )


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2000, help="translation keys (x5 languages)")
    parser.add_argument("--words", type=int, default=500, help="words per statement")
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--runs", type=int, default=3, help="cold builds each, interleaved")
    parser.add_argument("--repeat", type=int, default=5, help="one-file rebuilds")
    parser.add_argument("--workdir", type=Path, help="keep the corpus here (default: temp)")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install hugo")
    parser.add_argument(
        "--rebuild-only",
        action="store_true",
        help="no Hugo and one cold build (to warm the site): only the one-file rebuilds",
    )
    args = parser.parse_args(argv)

    exe = ROOT / ".venv" / "bin" / "statement-feeds"
    if not exe.exists():
        raise SystemExit("statement-feeds is not installed: run scripts/bootstrap.sh")
    hugo = None if args.rebuild_only else ensure_hugo(not args.no_install)
    if hugo is None and not args.rebuild_only:
        raise SystemExit("hugo is not available: this benchmark compares against it")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sf-pages-bench-"))
    try:
        return _bench(args, exe, hugo, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _bench(args: argparse.Namespace, exe: Path, hugo: str | None, workdir: Path) -> int:
    corpus = Corpus(args.keys, args.words, args.seed)
    for name in ("site", "hugo"):
        shutil.rmtree(workdir / name, ignore_errors=True)
    start = time.perf_counter()
    site = Site(workdir / "site", exe)
    count = write_site(site.root, corpus)
    version = ["hugo", "not run (--rebuild-only)"]
    if hugo is not None:
        write_hugo_pages_site(workdir / "hugo", corpus)
        version = subprocess.run(
            [hugo, "version"], check=False, capture_output=True, text=True
        ).stdout.split()
    print(
        f"corpus: {count} statements ({args.keys} keys x {len(LANGUAGES)} languages, "
        f"~{args.words} words) in {workdir}, generated in {time.perf_counter() - start:.1f} s"
    )
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, Hugo {version[1] if len(version) > 1 else '?'}"
    )
    print(f"statement-feeds source: {revision()}; load average {_load()}", flush=True)

    public = site.root / "public"
    cold: list[Run] = []
    hugos: list[Run] = []
    for i in range(args.runs if hugo is not None else 1):
        site.clean()
        cold.append(measure(site.cmd, site.root, public, "cold build"))
        print(f"ours cold {i + 1}: {_line(cold[-1])}; load {_load()}", flush=True)
        if hugo is not None:
            hugos.append(hugo_cold(hugo, workdir / "hugo"))
            print(f"hugo cold {i + 1}: {_line(hugos[-1])}; load {_load()}", flush=True)

    edits: list[Run] = []
    rewritten: list[list[str]] = []
    for n in range(args.repeat):
        before = snapshot(public)
        edited = edit_one(site, n)
        edits.append(measure(site.cmd, site.root, public, "rebuild after edit"))
        rewritten.append(changed(before, snapshot(public)))
        names = ", ".join(rewritten[-1])
        print(
            f"edit {n + 1} ({edited.relative_to(site.statements)}): {edits[-1].wall:.2f} s, "
            f"{len(rewritten[-1])} files rewritten: {names}",
            flush=True,
        )

    if hugo is None:
        return _rebuild_summary(edits, rewritten)
    ratios = [c.wall / h.wall for c, h in zip(cold, hugos, strict=True)]
    cpu_ratios = [c.cpu / h.cpu for c, h in zip(cold, hugos, strict=True)]
    rows = [
        ("ours cold build s", fmt([r.wall for r in cold]), fmt([r.cpu for r in cold])),
        ("hugo cold build s", fmt([r.wall for r in hugos]), fmt([r.cpu for r in hugos])),
        ("ratio ours/hugo", fmt(ratios), fmt(cpu_ratios)),
        ("ours largest process MB", fmt([r.rss_mb for r in cold], 0), ""),
        ("ours process tree PSS MB", fmt([r.tree_mb for r in cold], 0), ""),
        ("hugo peak RSS MB", fmt([r.rss_mb for r in hugos], 0), ""),
        ("ours files written", fmt([float(r.files) for r in cold], 0), ""),
        ("hugo files written", fmt([float(r.files) for r in hugos], 0), ""),
        ("one-file rebuild s", fmt([r.wall for r in edits]), fmt([r.cpu for r in edits])),
        ("files rewritten per edit", fmt([float(len(r)) for r in rewritten], 0), ""),
    ]
    print(f"\n{'measure':<28}{'wall / value: median (range)':<32}cpu: median (range)")
    for name, wall, cpu in rows:
        print(f"{name:<28}{wall:<32}{cpu}")
    verdicts = {
        "cold <= hugo (every pair)": all(r <= 1 for r in ratios),
        "cold <= 200 MB (process tree)": max(r.tree_mb for r in cold) <= TARGET_RSS_MB,
        "one-file rebuild < 1 s (every one)": max(r.wall for r in edits) < TARGET_REBUILD_S,
    }
    print("targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in verdicts.items()))
    print(f"load average at the end: {_load()}")
    return 0


def _rebuild_summary(edits: list[Run], rewritten: list[list[str]]) -> int:
    print(f"\n{'measure':<28}{'wall / value: median (range)':<32}cpu: median (range)")
    walls, cpus = [r.wall for r in edits], [r.cpu for r in edits]
    print(f"{'one-file rebuild s':<28}{fmt(walls):<32}{fmt(cpus)}")
    print(f"{'files rewritten per edit':<28}{fmt([float(len(r)) for r in rewritten], 0)}")
    met = bool(walls) and max(walls) < TARGET_REBUILD_S
    print(f"targets: one-file rebuild < 1 s (every one): {'met' if met else 'MISSED'}")
    print(f"load average at the end: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
