"""The shape of the code, enforced.

* ``domain/`` is pure: no I/O, asyncio, sqlite, sockets or subprocesses, and nothing of
  ours outside it.
* Dependencies point one way: cli → daemon → web → digests → feeds → state → shared →
  domain, where shared is config, config_keys, config_reader, environment, errors, logs,
  clock, processes, locales, template_files and new_site. A package
  imports only packages to its right.
* Only ``state/`` knows a database: nothing else imports ``sqlite3`` (the build cache
  ``feeds/cache.py`` is a per-host file of the build, not the state store).
* Only ``state/`` names a backend of the store: the rest opens it with
  ``state.open.open_store`` and uses the protocols of ``state.api``.
* No import cycles between modules, counting imports inside functions (a function-level
  import must not be a way to hide one).
* No module over 400 lines.
* Only ``environment.py`` reads the process environment (``os.environ``, ``os.getenv``):
  every variable is validated in one place, a bad value is a ConfigError naming it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "statement_feeds"
PACKAGE = "statement_feeds"
# Left to right: each may import only from those after it (and from itself).
LAYERS = ["cli", "daemon", "web", "digests", "feeds", "state", "shared", "domain"]
SHARED = {
    "config",
    "config_keys",
    "config_reader",
    "environment",
    "errors",
    "logs",
    "clock",
    "processes",
    "locales",
    "template_files",
    "new_site",
    "__init__",
}
FORBIDDEN_IN_DOMAIN = {
    "asyncio",
    "sqlite3",
    "socket",
    "subprocess",
    "smtplib",
    "aiosmtplib",
    "aiohttp",
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
}
SQLITE_ALLOWED = {"state", "feeds.cache"}  # feeds/cache.py: the build's own cache file
MAX_LINES = 400


def modules() -> dict[str, Path]:
    """Dotted name under the package (``digests.send``) → file."""
    found: dict[str, Path] = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"] or ["__init__"]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """Every module this one imports, anywhere in it, as absolute dotted names."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = [PACKAGE, *package.split(".")] if package else [PACKAGE]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # "from . import x": x may be a module
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def ours(found: set[str], known: dict[str, Path]) -> set[str]:
    out = set()
    for target in found:
        if target == PACKAGE or not target.startswith(PACKAGE + "."):
            continue
        short = target[len(PACKAGE) + 1 :]
        while short and short not in known:
            short = short.rpartition(".")[0]
        if short:
            out.add(short)
    return out


def layer(name: str) -> str:
    top = name.split(".", maxsplit=1)[0]
    if top == "__main__":
        return "cli"
    return "shared" if top in SHARED else top


MODULES = modules()
GRAPH = {name: ours(imports(name, path), MODULES) - {name} for name, path in MODULES.items()}


def test_every_module_is_in_a_known_layer() -> None:
    unknown = sorted(n for n in MODULES if layer(n) not in LAYERS)
    assert not unknown, f"modules outside the layers {LAYERS}: {unknown}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer(n) == "domain"))
def test_domain_module_does_no_io(name: str) -> None:
    path = MODULES[name]
    found = imports(name, path)
    bad = sorted(
        n for n in found if any(n == b or n.startswith(b + ".") for b in FORBIDDEN_IN_DOMAIN)
    )
    assert not bad, f"{name} imports I/O modules: {bad}"
    outside = sorted(m for m in ours(found, MODULES) if layer(m) != "domain")
    assert not outside, f"{name} depends on {outside}: the domain depends on nothing of ours"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    opens = any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "open"
        for n in ast.walk(tree)
    )
    assert not opens, f"{name} opens files"


def test_dependencies_point_one_way() -> None:
    wrong = sorted(
        f"{name} → {target}"
        for name, targets in GRAPH.items()
        for target in targets
        if LAYERS.index(layer(target)) < LAYERS.index(layer(name))
    )
    assert not wrong, "imports against the layers " + " → ".join(LAYERS) + f": {wrong}"


def test_only_state_knows_a_database() -> None:
    users = sorted(
        name
        for name, path in MODULES.items()
        if "sqlite3" in imports(name, path)
        and layer(name) != "state"
        and name not in SQLITE_ALLOWED
    )
    assert not users, f"sqlite3 imported outside state/: {users}"


def test_only_state_names_a_store_backend() -> None:
    users = sorted(
        f"{name} → {target}"
        for name, targets in GRAPH.items()
        if layer(name) != "state"
        for target in targets
        if target.startswith("state.sqlite")
    )
    assert not users, f"use state.open.open_store and state.api, not the backend: {users}"


def test_no_import_cycles() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(GRAPH[node]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [])
    assert not cycles, f"import cycles: {[' → '.join(c) for c in cycles]}"


def test_modules_stay_short() -> None:
    lengths = {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in MODULES.items()}
    over = sorted(f"{n} ({count})" for n, count in lengths.items() if count > MAX_LINES)
    assert not over, f"over {MAX_LINES} lines: {over}"


def reads_the_environment(path: Path) -> bool:
    """Whether the module touches ``os.environ`` / ``os.getenv`` / ``os.putenv`` (as
    ``os.x`` or imported by name). Passing a mapping called ``environ`` around is fine."""
    names = {"environ", "getenv", "environb", "getenvb"}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in names
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in names for alias in node.names)
        ):
            return True
    return False


def test_only_environment_module_reads_the_environment() -> None:
    readers = {name for name, path in MODULES.items() if reads_the_environment(path)}
    assert readers == {"environment"}, (
        f"read the environment outside environment.py: {sorted(readers - {'environment'})}"
    )


def test_the_checks_would_catch_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text(
        "import sqlite3\nfrom ..feeds import build\nfrom .. import config\n", encoding="utf-8"
    )
    found = imports("domain.bad", sample)
    assert "sqlite3" in found
    assert ours(found, MODULES) >= {"feeds.build", "config"}
    assert layer("feeds.build") == "feeds" and LAYERS.index("feeds") < LAYERS.index("domain")
    sample.write_text("from ..state.sqlite import SqliteStore\n", encoding="utf-8")
    assert "state.sqlite" in ours(imports("web.bad", sample), MODULES)
    for source in ("import os\nx = os.environ['A']\n", "from os import getenv\n"):
        sample.write_text(source, encoding="utf-8")
        assert reads_the_environment(sample)
    sample.write_text("def f(environ): return environ.get('A')\n", encoding="utf-8")
    assert not reads_the_environment(sample)
