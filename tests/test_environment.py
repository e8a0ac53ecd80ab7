"""Every environment variable is read in ``environment.py``: each bad value is a
:class:`ConfigError` naming the variable, and the CLI turns it into exit code 2 with
that message (before, a bad number was a ``ValueError`` traceback from deep inside)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from statement_feeds import environment
from statement_feeds.cli import cli
from statement_feeds.clock import system_clock
from statement_feeds.daemon.notify import sd_notify
from statement_feeds.daemon.triggers import OffsetClock, clock_from_env
from statement_feeds.errors import ConfigError
from statement_feeds.state.secrets import load_keys

MakeSite = Callable[..., Path]


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "٣"])
def test_trusted_proxies_must_be_a_whole_number(value: str) -> None:
    with pytest.raises(ConfigError, match="STATEMENT_FEEDS_TRUSTED_PROXIES: must be a whole"):
        environment.trusted_proxies({"STATEMENT_FEEDS_TRUSTED_PROXIES": value})


def test_trusted_proxies_defaults_to_none_believed() -> None:
    assert environment.trusted_proxies({}) == 0
    assert environment.trusted_proxies({"STATEMENT_FEEDS_TRUSTED_PROXIES": ""}) == 0
    assert environment.trusted_proxies({"STATEMENT_FEEDS_TRUSTED_PROXIES": " 2 "}) == 2


@pytest.mark.parametrize("name", ["STATEMENT_FEEDS_FAKE_NOW", "STATEMENT_FEEDS_FAKE_START"])
def test_fake_times_must_be_iso_8601(name: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}: must be an ISO 8601 date-time"):
        environment.check_environment({name: "tomorrow at seven"})


def test_fake_now_pins_the_system_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEMENT_FEEDS_FAKE_NOW", "2024-05-01T07:00:00+01:00")
    assert system_clock() == datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
    monkeypatch.setenv("STATEMENT_FEEDS_FAKE_NOW", "soon")
    with pytest.raises(ConfigError, match="STATEMENT_FEEDS_FAKE_NOW"):
        system_clock()


def test_fake_start_makes_an_advancing_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEMENT_FEEDS_FAKE_START", "2024-05-01T06:59:58Z")
    clock = clock_from_env()
    assert isinstance(clock, OffsetClock)
    assert abs(clock() - datetime(2024, 5, 1, 6, 59, 58, tzinfo=UTC)).total_seconds() < 5
    monkeypatch.setenv("STATEMENT_FEEDS_FAKE_START", "later")
    with pytest.raises(ConfigError, match="STATEMENT_FEEDS_FAKE_START"):
        clock_from_env()


def test_metrics_token_and_smtp_password_are_taken_as_given() -> None:
    # Any string is a valid token or password: there is no failure path to test.
    env = {"STATEMENT_FEEDS_METRICS_TOKEN": " s3cret ", "STATEMENT_FEEDS_SMTP_PASSWORD": "p w"}
    assert environment.metrics_token(env) == " s3cret "
    assert environment.smtp_password(env) == "p w"
    assert environment.metrics_token({}) == environment.smtp_password({}) == ""


def test_a_short_secret_key_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="STATEMENT_FEEDS_SECRET_KEY: every secret key"):
        load_keys(tmp_path, {"STATEMENT_FEEDS_SECRET_KEY": "short"})


def test_notify_socket_gets_the_datagram(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(path)})
        assert server.recv(64) == b"READY=1"
    assert not sd_notify("READY=1", {})  # not started by systemd: nothing to tell


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STATEMENT_FEEDS_TRUSTED_PROXIES", "abc"),
        ("STATEMENT_FEEDS_FAKE_NOW", "2024-13-01"),
        ("STATEMENT_FEEDS_FAKE_START", "noon"),
    ],
)
@pytest.mark.parametrize("command", [["build"], ["status"], ["run", "--rescan", "1"]])
def test_the_cli_exits_2_naming_a_bad_variable(
    tmp_path: Path, make_site: MakeSite, name: str, value: str, command: list[str]
) -> None:
    config = make_site(tmp_path / "site")
    env = {"STATEMENT_FEEDS_CONFIG": None, name: value}
    result = CliRunner().invoke(
        cli, ["--config", str(config), *command], env=env, catch_exceptions=False
    )
    assert result.exit_code == 2, result.output
    assert f"error: {name}: must be" in result.stderr
    assert not (config.parent / "public" / "feeds").exists()  # stopped before any work


def test_a_missing_config_named_by_the_variable_is_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    env = {"STATEMENT_FEEDS_CONFIG": str(missing)}
    result = CliRunner().invoke(cli, ["build"], env=env, catch_exceptions=False)
    assert result.exit_code == 2
    assert f"error: {missing}: configuration file not found" in result.stderr
