"""``feeds.websub_hubs``: absolute https URLs, each once; anything else is a ConfigError
(exit 2) naming the file and the key, and saying what to write instead."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from statement_feeds.cli import cli
from statement_feeds.config import load_config
from statement_feeds.errors import ConfigError

SITE = '[site]\ntitle = "T"\nurl = "https://example.org/"\n\n[feeds]\n'


def _write(tmp_path: Path, hubs: str) -> Path:
    path = tmp_path / "statement-feeds.toml"
    path.write_text(SITE + f"websub_hubs = {hubs}\n", encoding="utf-8")
    return path


def test_no_hubs_by_default(tmp_path: Path) -> None:
    path = tmp_path / "statement-feeds.toml"
    path.write_text(SITE, encoding="utf-8")
    assert load_config(path).feeds.websub_hubs == ()


@pytest.mark.parametrize(
    "hubs",
    [
        '["https://hub.example.org/"]',
        '["https://hub.example.org/publish?x=1", "https://pubsubhubbub.appspot.com"]',
        '["http://127.0.0.1:8099/hub", "http://localhost/hub", "http://[::1]:80/"]',
        "[]",
    ],
)
def test_https_hubs_are_taken_as_written(tmp_path: Path, hubs: str) -> None:
    config = load_config(_write(tmp_path, hubs))
    assert list(config.feeds.websub_hubs) == tomllib.loads(f"x = {hubs}")["x"]


@pytest.mark.parametrize(
    ("hubs", "said"),
    [
        ('["http://hub.example.org/"]', "'http://hub.example.org/' is not an absolute https://"),
        ('["hub.example.org"]', "'hub.example.org' is not an absolute https:// URL"),
        ('["/hub"]', "is not an absolute https:// URL"),
        ('["https://"]', "is not an absolute https:// URL"),
        ('["https://hub.example.org/#x"]', "is not an absolute https:// URL"),
        ('["https://hub example.org/"]', "is not an absolute https:// URL"),
        ('["ftp://hub.example.org/"]', "is not an absolute https:// URL"),
        ('"https://hub.example.org/"', 'must be a list of strings, e.g. websub_hubs = ["https://'),
        ("[1]", "must be a list of strings"),
        (
            '["https://a.example.org/", "https://a.example.org/"]',
            "'https://a.example.org/' is listed twice",
        ),
    ],
)
def test_anything_else_names_the_file_and_the_key(tmp_path: Path, hubs: str, said: str) -> None:
    path = _write(tmp_path, hubs)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert error.key == "feeds.websub_hubs"
    assert str(path.resolve()) in str(error)
    assert said in str(error)


def test_check_exits_2_on_a_bad_hub(tmp_path: Path) -> None:
    path = _write(tmp_path, '["http://hub.example.org/"]')
    result = CliRunner().invoke(cli, ["--config", str(path), "check"])
    assert result.exit_code == 2
    assert "feeds.websub_hubs" in result.output
