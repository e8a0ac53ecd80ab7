"""``statement-feeds init``: a new site with every key documented, that works at once."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from statement_feeds.cli import cli
from statement_feeds.config import load_config
from statement_feeds.config_keys import SECTIONS
from statement_feeds.new_site import CONFIG_KEYS, SiteAnswers, config_text


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_every_config_key_is_in_the_table_and_nothing_else() -> None:
    declared = {(section, key) for section, keys in SECTIONS.items() for key in keys}
    table = [(k.section, k.name) for k in CONFIG_KEYS]
    assert len(table) == len(set(table)), "a key twice in new_site.CONFIG_KEYS"
    missing = sorted(f"{s}.{k}" for s, k in declared - set(table))
    assert not missing, f"keys of config_keys.SECTIONS missing from new_site.CONFIG_KEYS: {missing}"
    assert not set(table) - declared, "new_site.CONFIG_KEYS has keys the code does not read"
    assert all(k.meaning.strip() for k in CONFIG_KEYS)


def test_every_key_is_written_with_its_meaning() -> None:
    text = config_text(SiteAnswers())
    for key in CONFIG_KEYS:
        assert key.meaning.split()[0] in text
        if key.name != "password":
            assert re.search(rf"^(# )?{key.name} = ", text, re.MULTILINE), key


def test_the_defaults_written_are_the_ones_in_force(tmp_path: Path) -> None:
    """Uncommenting every `# key = default` line changes nothing: the file tells the truth."""
    answers = SiteAnswers(title="Socialism From Below", url="https://example.net/org/")
    commented = config_text(answers)
    names = "|".join(k.name for k in CONFIG_KEYS if k.written == "default")
    uncommented = re.sub(rf"^# (({names}) = )", r"\1", commented, flags=re.MULTILINE)
    assert uncommented.count("\n# max_age") == 0 and "\nmax_age = " in uncommented
    path = tmp_path / "statement-feeds.toml"
    path.write_text(commented, encoding="utf-8")
    before = load_config(path)
    # The [languages.ru] example stays commented out: its header line is not `# key =`.
    path.write_text(uncommented, encoding="utf-8")
    assert load_config(path) == before


def test_init_then_check_and_build_work_at_once(tmp_path: Path) -> None:
    site = tmp_path / "new"
    result = run("init", str(site), "--title", 'Tom, "Dick" & Harry', "--timezone", "Asia/Tokyo")
    assert result.exit_code == 0, result.output
    config = site / "statement-feeds.toml"
    assert f"wrote {config}" in result.output
    assert (site / "subscribers" / "subscribers.csv").read_text() == (
        "email,name,languages,frequency\n"
    )
    assert run("--config", str(config), "check").output == (
        "checked 1 statements, 0 subscribers, 0 problems\n"
    )
    result = run("--config", str(config), "build")
    assert result.exit_code == 0, result.output
    feed = (site / "public" / "feeds" / "en.atom").read_text(encoding="utf-8")
    assert '<title>Tom, "Dick" &amp; Harry</title>' in feed
    # With a subscriber the digest templates are tried with this From header too.
    (site / "subscribers" / "subscribers.csv").write_text("email\nreader@example.org\n")
    result = run("--config", str(config), "check")
    assert result.exit_code == 0, result.output


def test_init_never_overwrites_and_then_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "statement-feeds.toml").write_text("# mine\n", encoding="utf-8")
    result = run("init", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert str(tmp_path / "statement-feeds.toml") in result.output
    assert "never overwrites" in result.output
    assert (tmp_path / "statement-feeds.toml").read_text() == "# mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["statement-feeds.toml"]


def test_init_names_every_file_already_there(tmp_path: Path) -> None:
    assert run("init", str(tmp_path)).exit_code == 0
    result = run("init", str(tmp_path))
    assert result.exit_code == 2
    for name in ("statement-feeds.toml", "statements/welcome.md", "subscribers/subscribers.csv"):
        assert str(tmp_path / name) in result.output


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--timezone", "Mars/Olympus", "--timezone"),
        ("--language", "english!", "--language"),
        ("--url", "example.org", "site.url: must be an absolute http(s) URL"),  # load_config's
        ("--title", "two\nlines", "--title"),
    ],
)
def test_a_bad_answer_is_refused_before_anything_is_written(
    tmp_path: Path, option: str, value: str, named: str
) -> None:
    result = run("init", str(tmp_path / "site"), option, value)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert not (tmp_path / "site").exists()


def test_the_example_statement_is_dated_today_in_the_site_zone(tmp_path: Path) -> None:
    from statement_feeds.new_site import create_site

    late = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)  # already 3 December in Tokyo
    create_site(tmp_path, SiteAnswers(timezone="Asia/Tokyo"), late)
    assert "\ndate: 2026-12-03\n" in (tmp_path / "statements" / "welcome.md").read_text()


def test_a_plain_http_site_gets_no_public_url_rather_than_a_refused_one(tmp_path: Path) -> None:
    assert run("init", str(tmp_path / "https")).exit_code == 0
    https = load_config(tmp_path / "https" / "statement-feeds.toml")
    assert https.http.public_url == "https://example.org/newsletter/"
    result = run("init", str(tmp_path / "http"), "--url", "http://example.net/site")
    assert result.exit_code == 0, result.output
    plain = load_config(tmp_path / "http" / "statement-feeds.toml")
    assert (plain.site.url, plain.http.public_url) == ("http://example.net/site/", "")
