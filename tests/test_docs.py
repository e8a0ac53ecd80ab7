"""Every CLI command and option is documented in the README (as sqlite-utils does)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from statement_feeds.cli import cli

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
