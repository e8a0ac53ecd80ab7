"""Build benchmark: statement-feeds against Hugo on the same generated corpus.

Measures, each as a fresh child process (wall time includes interpreter start):

- cold ``statement-feeds build`` (empty state and output folders): wall time, peak RSS;
- rebuild with nothing changed, after editing one statement's body, after adding one new
  (newest) statement, and after adding one back-dated statement;
- cold ``hugo --quiet`` on the same Markdown files (feeds-only config, see corpus.py),
  in the same run, and the ratio ours / Hugo.

Peak RSS is the child's own ``ru_maxrss`` from ``os.wait4`` (per child, not the
cumulative ``RUSAGE_CHILDREN`` maximum). Usage: ``python bench/build_bench.py --help``;
``scripts/bench.sh`` runs it with the defaults (10,000 statements).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import LANGUAGES, Corpus, Statement, statement_text, write_hugo_site, write_site

ROOT = Path(__file__).resolve().parent.parent
TARGET_RSS_MB = 200.0
TARGET_REBUILD_S = 1.0


@dataclass(frozen=True, slots=True)
class Run:
    wall: float  # seconds, spawn to exit
    rss_mb: float  # the child's peak resident set size
    cpu: float  # user + system seconds of the child: less sensitive to a busy machine
    code: int
    tail: str  # last line of stdout (or stderr on failure)


def measure(cmd: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> Run:
    """Run ``cmd`` once as a fresh child; its own wall time and peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace").strip()
        stderr = err.read().decode(errors="replace").strip()
    text = stdout if code == 0 or not stderr else stderr
    tail = text.splitlines()[-1] if text else ""
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, usage.ru_maxrss / 1024, cpu, code, tail)


def checked(run: Run, what: str) -> Run:
    if run.code != 0:
        raise SystemExit(f"{what} failed (exit {run.code}): {run.tail}")
    return run


class Site:
    """The statement-feeds side: a generated site and the build command."""

    def __init__(self, root: Path, exe: Path) -> None:
        self.root = root
        self.config = root / "statement-feeds.toml"
        self.cmd = [str(exe), "--config", str(self.config), "build"]
        self.statements = root / "statements"

    def clean(self) -> None:
        for name in ("public", "state"):
            shutil.rmtree(self.root / name, ignore_errors=True)

    def build(self, what: str) -> Run:
        return checked(measure(self.cmd, self.root), what)

    def files(self) -> list[Path]:
        return sorted(self.statements.rglob("*.md"))


def ensure_hugo(install: bool) -> str | None:
    hugo = shutil.which("hugo")
    if hugo or not install:
        return hugo
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        print("hugo: not installed and cannot install it here (no apt-get or not root)")
        return None
    print("hugo: not installed, trying apt-get install -y hugo ...", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run([apt, "install", "-y", "hugo"], env=env, check=False, **quiet).returncode:
        subprocess.run([apt, "update"], env=env, check=False, **quiet)
        subprocess.run([apt, "install", "-y", "hugo"], env=env, check=False, **quiet)
    return shutil.which("hugo")


def hugo_cold(hugo: str, root: Path) -> Run:
    for name in ("public", "resources", ".hugo_cache"):
        shutil.rmtree(root / name, ignore_errors=True)
    cmd = [hugo, "--quiet", "--cacheDir", str(root / ".hugo_cache")]
    return checked(measure(cmd, root), "hugo")


def edit_one(site: Site, n: int) -> Path:
    """Append a paragraph to the body of one statement (a different one each time)."""
    files = site.files()
    path = files[(len(files) * (2 * n + 1)) // 7 % len(files)]
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"\nA correction, number {n}, with *emphasis* and a [link](https://x.org/).\n")
    return path


def add_one(site: Site, n: int, newest: bool) -> Path:
    """A new statement: dated after every other one, or back in the middle of the corpus."""
    day = f"2025-01-{n + 1:02d}" if newest else f"2014-06-{n + 1:02d}"
    lang = LANGUAGES[n % len(LANGUAGES)]
    body = "A new statement with **strong** words and a list:\n\n- one\n- two\n\nThe end.\n"
    kind = "new" if newest else "old"
    s = Statement(f"bench-{kind}-{n}", lang, int(day[:4]), f"Bench {kind} {n}", day, body)
    folder = site.statements / str(s.year)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / s.filename
    path.write_text(statement_text(s), encoding="utf-8")
    return path


def fmt(values: list[float], digits: int = 2, empty: str = "-") -> str:
    """Median, with the range when there are several measurements."""
    if not values:
        return empty
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def profile(site: Site, out: Path, top: int) -> None:
    """cProfile of a cold build and of a rebuild after a one-file edit."""
    import pstats

    python = ROOT / ".venv" / "bin" / "python"
    python = python if python.exists() else Path(sys.executable)
    for name, prepare in (("cold", site.clean), ("edit", lambda: edit_one(site, 99))):
        prepare()
        stats = out / f"{name}.prof"
        cmd = [str(python), "-m", "cProfile", "-o", str(stats), "-m", "statement_feeds"]
        run = measure([*cmd, *site.cmd[1:]], site.root)
        print(f"\n== cProfile, {name} build: {run.wall:.2f} s wall under the profiler -> {stats}")
        for key in ("cumulative", "tottime"):
            print(f"-- top {top} by {key}")
            pstats.Stats(str(stats)).strip_dirs().sort_stats(key).print_stats(top)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2000, help="translation keys (x5 languages)")
    parser.add_argument("--words", type=int, default=500, help="words per statement")
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--runs", type=int, default=1, help="cold builds (ours and Hugo) each")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per rebuild case")
    parser.add_argument("--workdir", type=Path, help="keep the corpus here (default: temp)")
    parser.add_argument("--no-hugo", action="store_true", help="skip the Hugo reference")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install hugo")
    parser.add_argument("--profile", action="store_true", help="also cProfile cold and edit")
    parser.add_argument("--top", type=int, default=25, help="rows per profile listing")
    args = parser.parse_args(argv)

    exe = ROOT / ".venv" / "bin" / "statement-feeds"
    if not exe.exists():
        found = shutil.which("statement-feeds")
        if found is None:
            raise SystemExit("statement-feeds is not installed: run scripts/bootstrap.sh")
        exe = Path(found)
    hugo = None if args.no_hugo else ensure_hugo(not args.no_install)
    if not args.no_hugo and hugo is None:
        print("hugo: not available, skipping the Hugo reference and the ratio")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sf-bench-"))
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
    if hugo:
        write_hugo_site(workdir / "hugo", corpus)
    size = sum(p.stat().st_size for p in site.files()) / 2**20
    print(
        f"corpus: {count} statements ({args.keys} keys x {len(LANGUAGES)} languages, "
        f"~{args.words} words, {size:.0f} MiB) in {workdir}, "
        f"generated in {time.perf_counter() - start:.1f} s"
    )
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(f"statement-feeds source: {revision()}")
    floor = measure(["true"], workdir)
    print(f"RSS floor (a child running `true`): {floor.rss_mb:.1f} MB", flush=True)

    cold: list[Run] = []
    hugos: list[Run] = []
    for i in range(args.runs):
        site.clean()
        cold.append(site.build("cold build"))
        print(f"cold build {i + 1}: {_line(cold[-1])}", flush=True)
        print(f"  {cold[-1].tail}")
        if hugo:
            hugos.append(hugo_cold(hugo, workdir / "hugo"))
            print(f"hugo cold {i + 1}: {_line(hugos[-1])}", flush=True)

    cases: dict[str, list[Run]] = {"unchanged": [], "edit": [], "add": [], "add-old": []}
    for _ in range(args.repeat):
        cases["unchanged"].append(site.build("unchanged rebuild"))
    for n in range(args.repeat):
        edit_one(site, n)
        cases["edit"].append(site.build("rebuild after edit"))
    for n in range(args.repeat):
        add_one(site, n, newest=True)
        cases["add"].append(site.build("rebuild after add"))
    for n in range(args.repeat):
        add_one(site, n, newest=False)
        cases["add-old"].append(site.build("rebuild after back-dated add"))
    for name, runs in cases.items():
        walls = ", ".join(f"{r.wall:.2f}" for r in runs)
        cpus = ", ".join(f"{r.cpu:.2f}" for r in runs)
        rss = max(r.rss_mb for r in runs)
        print(f"rebuild {name:<9}: wall {walls} s; cpu {cpus} s; {rss:.0f} MB; {runs[-1].tail}")

    def col(runs: list[Run], attr: str, digits: int = 2) -> str:
        return fmt([getattr(r, attr) for r in runs], digits) if runs else "skipped"

    ratios = [c.wall / h.wall for c, h in zip(cold, hugos, strict=False)]
    cpu_ratios = [c.cpu / h.cpu for c, h in zip(cold, hugos, strict=False)]
    rebuilds = [r for rs in cases.values() for r in rs]
    one = TARGET_REBUILD_S
    rows = [
        ("cold build s", col(cold, "wall"), col(cold, "cpu"), "<= hugo"),
        ("cold peak RSS MB", col(cold, "rss_mb", 0), "", f"< {TARGET_RSS_MB:.0f}"),
        ("rebuild after edit s", col(cases["edit"], "wall"), col(cases["edit"], "cpu"), f"< {one}"),
        ("rebuild after add s", col(cases["add"], "wall"), col(cases["add"], "cpu"), f"< {one}"),
        (
            "rebuild after old add s",
            col(cases["add-old"], "wall"),
            col(cases["add-old"], "cpu"),
            "",
        ),
        (
            "unchanged rebuild s",
            col(cases["unchanged"], "wall"),
            col(cases["unchanged"], "cpu"),
            "",
        ),
        ("rebuild peak RSS MB", col(rebuilds, "rss_mb", 0), "", ""),
        ("hugo cold s", col(hugos, "wall"), col(hugos, "cpu"), ""),
        ("hugo peak RSS MB", col(hugos, "rss_mb", 0), "", ""),
        ("ratio cold ours/hugo", fmt(ratios) if ratios else "skipped", fmt(cpu_ratios), "<= 1"),
    ]
    print(f"\n{'measure':<26}{'wall: median (min-max)':<25}{'cpu: median (min-max)':<25}target")
    for name, wall, cpu, target in rows:
        print(f"{name:<26}{wall:<25}{cpu:<25}{target}")
    verdicts = {
        "cold <= hugo": all(r <= 1 for r in ratios) if ratios else None,
        "cold RSS < 200 MB": max(r.rss_mb for r in cold) < TARGET_RSS_MB,
        "one-file rebuild < 1 s": max(r.wall for r in cases["edit"] + cases["add"])
        < TARGET_REBUILD_S,
    }
    print("targets: " + ", ".join(f"{k}: {_verdict(v)}" for k, v in verdicts.items()))

    if args.profile:
        profile(site, workdir, args.top)
    return 0


def revision() -> str:
    """The commit under test, and whether src/ has uncommitted changes (shared work tree)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head}{' + uncommitted changes in src/' if dirty else ''}"


def _line(run: Run) -> str:
    return f"{run.wall:.2f} s wall, {run.cpu:.2f} s cpu, {run.rss_mb:.0f} MB peak RSS"


def _verdict(value: bool | None) -> str:
    return "n/a" if value is None else ("met" if value else "MISSED")


if __name__ == "__main__":
    sys.exit(main())
