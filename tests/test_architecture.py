"""The core stays pure: no I/O, asyncio, sqlite, sockets or subprocesses in core/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "src" / "statement_feeds" / "core"
FORBIDDEN = {
    "asyncio",
    "sqlite3",
    "socket",
    "subprocess",
    "smtplib",
    "aiosmtplib",
    "os",
    "shutil",
    "pathlib",
    "tempfile",
    "io",
    "watchfiles",
    "apscheduler",
    "http",
    "urllib",
    "threading",
    "multiprocessing",
    "signal",
    "time",
    "statement_feeds.adapters",
    "statement_feeds.service",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: "..adapters" from core → statement_feeds.adapters
                module = (
                    "statement_feeds." + module
                    if node.level >= 2
                    else "statement_feeds.core." + module
                )
            names.add(module)
    return names


def _forbidden(name: str) -> bool:
    if name.startswith("statement_feeds.") and not name.startswith("statement_feeds.core"):
        return True  # core depends on nothing else of ours: config, adapters, service...
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def _calls_open(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open"
        for node in ast.walk(tree)
    )


@pytest.mark.parametrize("module", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_does_no_io(module: Path) -> None:
    bad = sorted(name for name in _imports(module) if _forbidden(name))
    assert not bad, f"{module.name} imports I/O modules: {bad}"
    assert not _calls_open(module), f"{module.name} opens files"


def test_the_check_would_catch_an_io_import(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text(
        "import sqlite3\nfrom ..adapters import files\nfrom .. import config\nopen('x')\n",
        encoding="utf-8",
    )
    found = {n for n in _imports(sample) if _forbidden(n)}
    assert found == {"sqlite3", "statement_feeds.adapters", "statement_feeds."}
    assert _calls_open(sample)
