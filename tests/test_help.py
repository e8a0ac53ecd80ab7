"""``--help`` of every command: each has a short description of its own, none is cut off."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from statement_feeds.cli import cli


def _walk(
    group: click.Group, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in sorted(group.commands.items()):
        found.append(((*path, name), command))
        if isinstance(command, click.Group):
            found.extend(_walk(command, (*path, name)))
    return found


COMMANDS = _walk(cli)
IDS = [" ".join(path) for path, _ in COMMANDS]


def truncations(group: click.Group, args: list[str], columns: int) -> list[str]:
    """Lines of ``--help`` that click cut off with "..." (the usage line's ``[ARGS]...``
    is click's notation for "several", not a cut)."""
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(group, [*args, "--help"])
    assert result.exit_code == 0, result.output
    return [
        line
        for line in result.output.splitlines()
        if "..." in line and not line.startswith("Usage:")
    ]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_every_command_has_a_short_help_that_fits_one_line(
    path: tuple[str, ...], command: click.Command
) -> None:
    assert command.short_help, f"`{' '.join(path)}` has no short_help: click would cut its help"
    # 80 columns, minus the indent and the longest command name beside it.
    assert len(command.short_help) <= 60, command.short_help


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("path", [(), *(p for p, _ in COMMANDS)], ids=["", *IDS])
def test_no_help_text_is_cut_off(path: tuple[str, ...], columns: int) -> None:
    assert truncations(cli, list(path), columns) == []


def test_the_check_sees_a_cut_off_description() -> None:
    group = click.Group("g")

    @group.command()
    def long() -> None:
        """A description far too long for the list of commands, which click then cuts off
        with three dots at the end of the line."""

    assert long.short_help is None
    assert truncations(group, [], 80) != []
