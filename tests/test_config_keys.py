"""An unknown section or key is an error (exit 2) naming the file, line and key, with the
nearest known key; contract keys this version does not implement are refused as such."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from statement_feeds import config_keys
from statement_feeds.cli import cli
from statement_feeds.config import load_config
from statement_feeds.config_keys import NOT_YET_SUPPORTED, SECTIONS, line_of
from statement_feeds.config_reader import Reader
from statement_feeds.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
# Line 1 [site], 2 title, 3 url, 4 blank, 5 [feeds], 6 max_entries: additions start at 7.
SITE = '[site]\ntitle = "T"\nurl = "https://example.org/"\n'
BASE = SITE + "\n[feeds]\nmax_entries = 5\n"


def _load(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "statement-feeds.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value


# (the file, the dotted key, its line, what the message must say)
TYPOS = [
    (BASE + "excerpt_word = 3\n", "feeds.excerpt_word", 7, "did you mean `feeds.excerpt_words`?"),
    (BASE + "[feed]\nmax_entries = 3\n", "feed", 7, "did you mean `[feeds]`?"),
    (BASE + '[smtp]\nsecurty = "tls"\n', "smtp.securty", 8, "did you mean `smtp.security`?"),
    # The right name in the wrong section: the section it belongs to is suggested.
    (BASE + "[digest]\nmax_entries = 3\n", "digest.max_entries", 8, "`feeds.max_entries`?"),
    (BASE + '[languages.ru]\ntitel = "Т"\n', "languages.ru.titel", 8, "`languages.ru.title`?"),
    ('title = "T"\n' + BASE, "title", 1, "outside every section; did you mean `site.title`?"),
    # Dotted keys, inline tables and a multi-line string that looks like a key line.
    ("feeds.excerpt_word = 3\n" + SITE, "feeds.excerpt_word", 1, "`feeds.excerpt_words`?"),
    ('digest = { daily = "0 7 * * *", dayly = "x" }\n' + BASE, "digest.dayly", 1, "`digest.daily`"),
    (
        BASE.replace('title = "T"\n', 'title = "T"\nauthor = """\nexcerpt_word = 1\n"""\n')
        + "excerpt_word = 2\n",
        "feeds.excerpt_word",
        10,
        "`feeds.excerpt_words`?",
    ),
]


@pytest.mark.parametrize("case", TYPOS, ids=lambda c: f"{c[1]}@{c[2]}")
def test_an_unknown_name_names_file_line_key_and_the_nearest_known_key(
    tmp_path: Path, case: tuple[str, str, int, str]
) -> None:
    text, key, line, hint = case
    error = _load(tmp_path, text)
    path = (tmp_path / "statement-feeds.toml").resolve()
    assert (error.path, error.key, error.line) == (str(path), key, line)
    assert str(error).startswith(f"{path}:{line}: {key}: ")
    assert hint in str(error)


def test_the_first_problem_in_the_file_is_named(tmp_path: Path) -> None:
    # tomllib puts [site.extra] (line 8) under [site], ahead of [feeds] in its dict.
    error = _load(tmp_path, BASE + "excerpt_word = 3\n[site.extra]\na = 1\n")
    assert (error.key, error.line) == ("feeds.excerpt_word", 7)


def test_a_known_section_elsewhere_in_the_file_is_not_flagged(tmp_path: Path) -> None:
    path = tmp_path / "statement-feeds.toml"
    path.write_text(BASE + '[http]\npublic_url = "https://example.org/n/"\n', encoding="utf-8")
    assert load_config(path).http.public_url == "https://example.org/n/"


@pytest.mark.parametrize(
    ("text", "key", "listed"),
    [
        (BASE + "[zzz]\nq = 1\n", "zzz", "the sections are [digest], [feeds], [http]"),
        (BASE + '[paths]\nqqqqqq = "x"\n', "paths.qqqqqq", ""),
    ],
)
def test_no_suggestion_when_nothing_is_close(
    tmp_path: Path, text: str, key: str, listed: str
) -> None:
    error = _load(tmp_path, text)
    assert error.key == key
    assert "did you mean" not in str(error)
    assert listed in str(error)


@pytest.mark.parametrize(
    ("addition", "key", "line"),
    [
        ("[digest]\ncorrections = true\n", "digest.corrections", 8),
        ("[pages]\nsize = 20\n", "pages", 7),
    ],
)
def test_contract_keys_not_built_yet_are_refused_as_such(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    addition: str,
    key: str,
    line: int,
) -> None:
    # Every contract key is built now: the mechanism is checked with one pretended unbuilt.
    monkeypatch.setattr(config_keys, "NOT_YET_SUPPORTED", frozenset({key}))
    error = _load(tmp_path, BASE + addition)
    assert (error.key, error.line) == (key, line)
    assert "part of the statement-feeds contract but not supported by this version yet" in str(
        error
    )
    assert "unknown" not in str(error) and "did you mean" not in str(error)


def test_an_unknown_pages_key_is_named_with_the_nearest(tmp_path: Path) -> None:
    error = _load(tmp_path, BASE + "[pages]\nperpage = 20\n")
    assert (error.key, error.line) == ("pages.perpage", 8)
    assert "unknown key in [pages]; did you mean `pages.per_page`?" in str(error)


def test_pages_enabled_must_be_a_boolean(tmp_path: Path) -> None:
    error = _load(tmp_path, BASE + '[pages]\nenabled = "no"\n')
    assert error.key == "pages.enabled"
    assert "must be true or false" in str(error)


def test_a_typo_of_a_contract_only_section_key_is_a_typo(tmp_path: Path) -> None:
    error = _load(tmp_path, BASE + '[state]\nuri = "postgresql://x"\n')
    assert error.key == "state.uri"
    assert "did you mean `state.url`?" in str(error)


def test_the_password_keeps_its_own_message(tmp_path: Path) -> None:
    error = _load(tmp_path, BASE + '[smtp]\npassword = "hunter2"\n')
    assert error.key == "smtp.password"
    assert "set STATEMENT_FEEDS_SMTP_PASSWORD" in str(error)
    assert "hunter2" not in str(error)


def test_a_line_not_found_is_left_out(tmp_path: Path) -> None:
    assert line_of("[site]\ntitle = 1\n", ["feeds", "excerpt_word"]) is None
    error = ConfigError("unknown key", path="/x.toml", key="feeds.y", line=None)
    assert str(error) == "/x.toml: feeds.y: unknown key"


def test_reading_an_undeclared_key_is_a_programming_error() -> None:
    """A new key read by config.py but not declared would be refused in every file."""
    reader = Reader("x.toml", {"feeds": {}})
    with pytest.raises(LookupError, match=r"feeds\.new_key is read but not declared"):
        reader.value("feeds", "new_key", 1)


def test_not_yet_supported_keys_are_not_also_declared() -> None:
    declared = {f"{s}.{k}" for s, keys in SECTIONS.items() for k in keys} | set(SECTIONS)
    assert not declared & NOT_YET_SUPPORTED


@pytest.mark.parametrize(
    "name", ["examples/site/statement-feeds.toml", "bench/corpus.py:SITE_CONFIG"]
)
def test_the_shipped_configurations_load(tmp_path: Path, name: str) -> None:
    if name.startswith("bench/"):
        spec = importlib.util.spec_from_file_location("bench_corpus", REPO / "bench/corpus.py")
        assert spec is not None and spec.loader is not None
        corpus = importlib.util.module_from_spec(spec)
        sys.modules["bench_corpus"] = corpus  # dataclasses look their module up
        spec.loader.exec_module(corpus)
        path = tmp_path / "statement-feeds.toml"
        path.write_text(corpus.SITE_CONFIG, encoding="utf-8")
    else:
        path = REPO / name
    assert load_config(path).site.title


# --- through the command line -------------------------------------------------------


@pytest.mark.parametrize(
    ("addition", "expected"),
    [
        ("excerpt_word = 3\n", ":7: feeds.excerpt_word: unknown key in [feeds]; did you mean"),
        ("[feed]\nx = 1\n", ":7: feed: unknown section; did you mean `[feeds]`?"),
        ('[digest]\ncorrections = "no"\n', ": digest.corrections: must be true or false"),
    ],
)
def test_check_exits_2_with_the_message(tmp_path: Path, addition: str, expected: str) -> None:
    config = tmp_path / "statement-feeds.toml"
    config.write_text(BASE + addition, encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["--config", str(config), "check"],
        env={"STATEMENT_FEEDS_CONFIG": None},
        catch_exceptions=False,
    )
    assert result.exit_code == 2, result.output
    assert f"{config.resolve()}{expected}" in result.output


def test_check_exits_2_as_a_real_process(tmp_path: Path) -> None:
    config = tmp_path / "statement-feeds.toml"
    config.write_text(BASE + '[smtp]\nsecurty = "tls"\n', encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STATEMENT_FEEDS_")}
    done = subprocess.run(
        [sys.executable, "-m", "statement_feeds", "--config", str(config), "check"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"{config.resolve()}:8: smtp.securty: unknown key in [smtp]" in done.stderr
    assert "did you mean `smtp.security`?" in done.stderr


def test_state_url_is_read(tmp_path: Path) -> None:
    path = tmp_path / "statement-feeds.toml"
    path.write_text(BASE + '[state]\nurl = "postgresql://feeds@db.example.org/statements"\n')
    assert load_config(path).state.url == "postgresql://feeds@db.example.org/statements"


def test_no_state_url_means_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "statement-feeds.toml"
    path.write_text(BASE)
    assert load_config(path).state.url == ""


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://feeds@db/statements", "must be a PostgreSQL URL"),
        ("db.example.org/statements", "must be a PostgreSQL URL"),
        ("postgresql://feeds:hunter2@db/statements", "STATEMENT_FEEDS_STATE_PASSWORD"),
    ],
)
def test_bad_state_url_is_refused(tmp_path: Path, url: str, says: str) -> None:
    error = _load(tmp_path, BASE + f'[state]\nurl = "{url}"\n')
    assert error.key == "state.url" and says in str(error)
    assert "hunter2" not in str(error)  # a password put in the file is never echoed


def test_state_lease_is_read_and_defaults_to_a_minute(tmp_path: Path) -> None:
    path = tmp_path / "statement-feeds.toml"
    path.write_text(BASE)
    assert load_config(path).state.lease == timedelta(seconds=60)
    path.write_text(BASE + '[state]\nlease = "2m"\n')
    assert load_config(path).state.lease == timedelta(minutes=2)


@pytest.mark.parametrize(
    ("lease", "says"),
    [("2s", "at least 3s"), ("soon", "is not a duration"), ("10", "not a duration")],
)
def test_bad_state_lease_is_refused(tmp_path: Path, lease: str, says: str) -> None:
    error = _load(tmp_path, BASE + f'[state]\nlease = "{lease}"\n')
    assert error.key == "state.lease" and says in str(error)


def test_open_store_takes_the_configured_lease(tmp_path: Path) -> None:
    from statement_feeds.state.open import open_store

    path = tmp_path / "statement-feeds.toml"
    path.write_text(BASE + '[state]\nlease = "7s"\n')
    with open_store(load_config(path)) as store:
        assert store.lease == timedelta(seconds=7)
