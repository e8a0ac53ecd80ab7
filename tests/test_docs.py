"""Every CLI command and option is documented in the README (as sqlite-utils does)."""

from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest

from statement_feeds.cli import cli
from statement_feeds.config_keys import SECTIONS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    names: list[str] = []
    for name, command in sorted(group.commands.items()):
        full = f"{prefix}{name}"
        names.append(full)
        if isinstance(command, click.Group):
            names.extend(_commands(command, full + " "))
    return names


@pytest.mark.parametrize("command", _commands(cli))
def test_every_command_is_documented(command: str) -> None:
    assert f"statement-feeds {command}" in README or f"`{command}`" in README, (
        f"README.md does not document the command {command!r}"
    )


def _options(command: click.Command) -> list[str]:
    return [
        opt
        for param in command.params
        for opt in getattr(param, "opts", [])
        if opt.startswith("--")
    ]


@pytest.mark.parametrize("option", _options(cli))
def test_every_global_option_is_documented(option: str) -> None:
    assert option in README, f"README.md does not document the option {option}"


def test_the_check_notices_an_undocumented_command() -> None:
    extra = click.Group("x", commands={"frobnicate": click.Command("frobnicate")})
    assert "frobnicate" in _commands(extra)
    assert "statement-feeds frobnicate" not in README


def _all_commands(group: click.Group) -> list[click.Command]:
    found: list[click.Command] = []
    for command in group.commands.values():
        found.append(command)
        if isinstance(command, click.Group):
            found.extend(_all_commands(command))
    return found


@pytest.mark.parametrize(
    "option", sorted({o for c in _all_commands(cli) for o in _options(c)} - {"--help"})
)
def test_every_command_option_is_documented(option: str) -> None:
    assert option in README, f"README.md does not document the option {option}"


CONFIG = Path(__file__).resolve().parents[1] / "src" / "statement_feeds" / "config.py"


def _config_keys() -> set[str]:
    """Every ``section.key`` config.py reads: ``reader.<kind>("section", "key", ...)`` calls
    and the ``[paths]`` keys, found in its source (so a new key cannot be missed)."""
    keys: set[str] = set()
    for node in ast.walk(ast.parse(CONFIG.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id == "resolve" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                keys.add(f"paths.{first.value}")  # _paths' resolve("statements", ...)
            continue
        if not isinstance(node.func, ast.Attribute):
            continue
        args = [a.value for a in node.args[:2] if isinstance(a, ast.Constant)]
        if node.func.attr in {"string", "integer", "duration", "boolean", "strings"} and (
            len(args) == 2 and all(isinstance(a, str) for a in args)
        ):
            keys.add(f"{args[0]}.{args[1]}")
    return keys


@pytest.mark.parametrize("key", sorted(_config_keys()))
def test_every_configuration_key_is_documented(key: str) -> None:
    section, name = key.split(".")
    assert f"[{section}]" in README, f"README.md does not document the section [{section}]"
    assert f"\n{name} = " in README or f"`{key}`" in README, (
        f"README.md does not document the configuration key {key}"
    )


def test_the_key_scan_finds_the_contract_keys() -> None:
    keys = _config_keys()
    assert {"site.url", "feeds.excerpt_words", "digest.misfire_grace", "smtp.security"} <= keys
    assert {"paths.statements", "paths.state", "paths.outbox"} <= keys
    assert len(keys) >= 20


def test_the_declared_keys_are_the_keys_read() -> None:
    """config_keys.SECTIONS (what a file may hold) is exactly what config.py reads, plus
    smtp.password, declared only so that it is refused with its own message."""
    declared = {f"{section}.{key}" for section, keys in SECTIONS.items() for key in keys}
    assert declared == _config_keys() | {"smtp.password"}
