"""`check` and `build`: exit codes 0 / 1 / 2 of the contract, messages, and what is written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner, Result

from statement_feeds.cli import cli
from statement_feeds.template_files import DEFAULTS

MakeSite = Callable[..., Path]
MakeText = Callable[..., str]
REPO = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = REPO / "examples" / "site" / "statement-feeds.toml"
TIMEOUT = 60


def invoke(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    """Run the CLI in-process, as click runs it (exit codes included)."""
    environment = {"STATEMENT_FEEDS_CONFIG": None, **(env or {})}
    return CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)


def run(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m statement_feeds`` as a real process, with a timeout."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STATEMENT_FEEDS_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "statement_feeds", *args],
        cwd=cwd or REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def feed(config: Path, lang: str) -> feedparser.FeedParserDict:
    path = config.parent / "public" / "feeds" / f"{lang}.atom"
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


def copy_example(tmp_path: Path) -> Path:
    """The example site, copied with the folder its config points at (../../subscribers).

    Without what running the demo leaves (``scripts/example-digest.sh`` adds statements
    under ``statements/demo/``): the tests see the seed's four statements.
    """
    site = tmp_path / "examples" / "site"
    ignore = shutil.ignore_patterns("public", "state", "outbox", "demo")
    shutil.copytree(EXAMPLE_CONFIG.parent, site, ignore=ignore)
    shutil.copytree(REPO / "subscribers", tmp_path / "subscribers")
    return site / "statement-feeds.toml"


@pytest.fixture
def good(statement_md: MakeText) -> dict[str, str]:
    """Three valid statements: two English, one Russian translation."""
    return {
        "2020/belarus.en.md": statement_md(title="Belarus", date="2020-08-26"),
        "2020/belarus.ru.md": statement_md(title="Беларусь", date="2020-08-31"),
        "2020/refugees.en.md": statement_md(title="Refugees", date="2020-03-02"),
    }


# --- the example site ----------------------------------------------------------------


def test_check_passes_on_the_example_site(tmp_path: Path) -> None:
    result = invoke("--config", str(copy_example(tmp_path)), "check")
    assert result.exit_code == 0, result.output
    assert "checked 4 statements, 4 subscribers, 0 problems" in result.output


def test_build_of_the_example_site_writes_one_feed_per_language(tmp_path: Path) -> None:
    config = copy_example(tmp_path)
    result = invoke("--config", str(config), "build")
    assert result.exit_code == 0, result.output
    english, russian = feed(config, "en"), feed(config, "ru")
    assert [e.title for e in english.entries] == [
        "Belarus and the struggle against Lukashenko",
        "IST statement on coronavirus pandemic",
        "No to war and imperialism: The refugees are our brothers and sisters!",
    ]
    assert [e.title for e in russian.entries] == [
        "Беларусь и борьба с режимом Александра Лукашенко."
    ]
    assert "2 feeds (2 written), 0 problems" in result.output
    again = invoke("--config", str(config), "build")
    assert again.exit_code == 0
    assert "(0 written)" in again.output


def test_build_as_a_real_process(tmp_path: Path) -> None:
    config = copy_example(tmp_path)
    done = run("--config", str(config), "build")
    assert done.returncode == 0, done.stderr
    assert (config.parent / "public" / "feeds" / "en.atom").is_file()


# --- exit code 1: some input invalid, the rest still published ------------------------


def test_one_invalid_file_gives_exit_1_and_names_file_line_and_fix(
    tmp_path: Path, make_site: MakeSite, good: dict[str, str], statement_md: MakeText
) -> None:
    bad = statement_md(title="Broken", date="2020-02-30")
    config = make_site(tmp_path, {**good, "2020/broken.en.md": bad})
    result = invoke("--config", str(config), "check")
    assert result.exit_code == 1
    assert "2020/broken.en.md:3: 'date' is not a valid date: '2020-02-30'" in result.output
    assert "use an ISO 8601 date" in result.output
    assert "1 problems" in result.output


def test_build_with_an_invalid_file_still_publishes_the_good_ones(
    tmp_path: Path, make_site: MakeSite, good: dict[str, str]
) -> None:
    config = make_site(
        tmp_path, {**good, "zzz.en.md": b"---\ntitle: Latin-1 caf\xe9\ndate: 2020-05-01\n---\n"}
    )
    result = invoke("--config", str(config), "build")
    assert result.exit_code == 1
    assert "zzz.en.md:2: not valid UTF-8" in result.output
    assert [e.title for e in feed(config, "en").entries] == ["Belarus", "Refugees"]
    assert [e.title for e in feed(config, "ru").entries] == ["Беларусь"]


def test_duplicate_ids_give_exit_1_and_keep_the_first(
    tmp_path: Path, make_site: MakeSite, good: dict[str, str], statement_md: MakeText
) -> None:
    copy = statement_md(title="Copy", date="2021-01-01")
    config = make_site(tmp_path, {**good, "2021/belarus.en.md": copy})
    result = invoke("--config", str(config), "build")
    assert result.exit_code == 1
    assert "2021/belarus.en.md: id " in result.output
    assert "already used by 2020/belarus.en.md" in result.output
    assert [e.title for e in feed(config, "en").entries] == ["Belarus", "Refugees"]


def test_fifo_and_symlink_in_the_folder_do_not_block_the_build(
    tmp_path: Path, make_site: MakeSite, good: dict[str, str]
) -> None:
    config = make_site(tmp_path, good)
    folder = config.parent / "statements"
    os.mkfifo(folder / "pipe.md")
    (folder / "link.md").symlink_to(folder / "2020" / "belarus.en.md")
    done = run("--config", str(config), "build")  # a blocking read would hit the timeout
    assert done.returncode == 1, done.stderr
    assert "pipe.md: is not a regular file (a FIFO)" in done.stderr
    assert "link.md: is a symbolic link" in done.stderr
    assert len(feed(config, "en").entries) == 2


def test_drafts_and_embargoed_statements_are_not_in_the_feed(
    tmp_path: Path, make_site: MakeSite, good: dict[str, str], statement_md: MakeText
) -> None:
    config = make_site(
        tmp_path,
        {
            **good,
            "draft.en.md": statement_md(title="Draft", date="2020-01-01", draft="true"),
            "later.en.md": statement_md(title="Later", date="2020-09-01T12:00:00Z"),
        },
    )
    before = run(
        "--config", str(config), "build", env={"STATEMENT_FEEDS_FAKE_NOW": "2020-09-01T11:59:59Z"}
    )
    assert before.returncode == 0, before.stderr
    assert [e.title for e in feed(config, "en").entries] == ["Belarus", "Refugees"]
    after = run(
        "--config", str(config), "build", env={"STATEMENT_FEEDS_FAKE_NOW": "2020-09-01T12:00:00Z"}
    )
    assert after.returncode == 0, after.stderr
    assert [e.title for e in feed(config, "en").entries] == ["Later", "Belarus", "Refugees"]


# --- check writes nothing --------------------------------------------------------------


@pytest.mark.parametrize("broken", [False, True])
def test_check_writes_nothing(
    tmp_path: Path, make_site: MakeSite, good: dict[str, str], broken: bool
) -> None:
    statements = {**good, "bad.md": "no front matter"} if broken else good
    config = make_site(tmp_path, statements)
    before = tree(tmp_path)
    result = invoke("--config", str(config), "check")
    assert result.exit_code == (1 if broken else 0), result.output
    assert tree(tmp_path) == before
    assert not (tmp_path / "public").exists()
    assert not (tmp_path / "state").exists()


# --- exit code 2: usage and configuration errors ---------------------------------------


@pytest.mark.parametrize("command", ["check", "build"])
def test_missing_config_exits_2_and_says_how_to_fix(tmp_path: Path, command: str) -> None:
    result = invoke("--config", str(tmp_path / "nope.toml"), command)
    assert result.exit_code == 2
    assert "nope.toml" in result.output
    assert "configuration file not found" in result.output
    assert "--config" in result.output


@pytest.mark.parametrize(
    "case",
    [
        ('[site]\ntimezone = "Mars/Olympus"\n', "site.timezone", "Europe/London"),
        ('[digest]\ndaily = "every morning"\n', "digest.daily", "0 7 * * mon"),
        ('[digest]\nweekly = "0 7 * * funday"\n', "digest.weekly", "0 7 * * mon"),
        ('[digest]\ndaily = "0 24 * * *"\n', "digest.daily", "0 7 * * mon"),  # hour range
        ('[digest]\ndaily = "0 7 1-40 * *"\n', "digest.daily", "0 7 * * mon"),  # APScheduler's
        ('[digest]\ndaily = "' + "1" * 5000 + ' 7 * * *"\n', "digest.daily", "0 7 * * mon"),
        ('[smtp]\npassword = "hunter2"\n', "smtp.password", "STATEMENT_FEEDS_SMTP_PASSWORD"),
        ("[feeds]\nexcerpt_words = 0\n", "feeds.excerpt_words", ">= 1"),
        ('[site]\ndefault_language = "english"\n', "site.default_language", "pt-BR"),
        ('[site]\nurl = "example.org"\n', "site.url", "http(s) URL"),
        ('[smtp]\nsecurity = "ssl"\n', "smtp.security", "starttls"),
        ('[digest]\nmax_age = "a month"\n', "digest.max_age", "30d"),
        ("[smtp]\nport = 70000\n", "smtp.port", "<= 65535"),
        ('[smtp]\nport = "25"\n', "smtp.port", "whole number"),
        ('[http]\nlisten = "127.0.0.1:99999"\n', "http.listen", "HOST:PORT"),
        ('[http]\nlisten = "127.0.0.1:8080"\n', "http.public_url", "required when"),
        ('[http]\npublic_url = "http://example.org/n/"\n', "http.public_url", "https://"),
    ],
)
def test_bad_config_value_exits_2_naming_file_and_key(
    tmp_path: Path, make_site: MakeSite, good: dict[str, str], case: tuple[str, str, str]
) -> None:
    extra, key, fix = case
    config = make_site(tmp_path, good)
    _override(config, extra)
    for command in ("check", "build"):
        result = invoke("--config", str(config), command)
        assert result.exit_code == 2, result.output
        assert f"{config}: {key}:" in result.output
        assert fix in result.output
        assert "hunter2" not in result.output
    assert not (tmp_path / "public").exists()


def _override(config: Path, extra: str) -> None:
    """Set keys by rewriting the table they belong to (TOML forbids a table twice)."""
    text = config.read_text(encoding="utf-8")
    table, assignment = extra.split("\n", 1)
    key = assignment.split("=", 1)[0].strip()
    lines = text.splitlines()
    if table not in lines:
        lines += [table]
    start = lines.index(table)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    kept = [line for line in lines[start + 1 : end] if line.split("=", 1)[0].strip() != key]
    lines[start + 1 : end] = [assignment.rstrip("\n"), *kept]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_invalid_toml_exits_2(tmp_path: Path, make_site: MakeSite, good: dict[str, str]) -> None:
    config = make_site(tmp_path, good, extra_toml="[site\n")
    result = invoke("--config", str(config), "check")
    assert result.exit_code == 2
    assert f"{config}: not valid TOML" in result.output


def test_missing_required_key_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "statement-feeds.toml"
    config.write_text('[site]\ntitle = "T"\n', encoding="utf-8")
    result = invoke("--config", str(config), "check")
    assert result.exit_code == 2
    assert "site.url: required" in result.output


def test_unknown_command_exits_2() -> None:
    result = invoke("--config", str(EXAMPLE_CONFIG), "publish")
    assert result.exit_code == 2
    assert "No such command 'publish'" in result.output


def test_unknown_command_exits_2_as_a_real_process() -> None:
    done = run("frobnicate")
    assert done.returncode == 2
    assert "No such command" in done.stderr


def test_no_command_is_a_usage_error() -> None:
    assert run().returncode == 2


# --- where the configuration is found -------------------------------------------------


def _three_sites(
    tmp_path: Path, make_site: MakeSite, good: dict[str, str]
) -> tuple[Path, Path, Path]:
    """Sites with 1, 2 and 3 statements: "checked N statements" tells which was used."""
    items = list(good.items())
    return (
        make_site(tmp_path / "explicit", dict(items[:1])),
        make_site(tmp_path / "from-env", dict(items[:2])),
        make_site(tmp_path / "cwd", dict(items[:3])),
    )


def test_config_option_wins_over_env_and_cwd(
    tmp_path: Path, make_site: MakeSite, good: dict[str, str]
) -> None:
    explicit, from_env, cwd = _three_sites(tmp_path, make_site, good)
    done = run(
        "--config",
        str(explicit),
        "check",
        cwd=cwd.parent,
        env={"STATEMENT_FEEDS_CONFIG": str(from_env)},
    )
    assert done.returncode == 0, done.stderr
    assert "checked 1 statements" in done.stdout


def test_env_wins_over_cwd(tmp_path: Path, make_site: MakeSite, good: dict[str, str]) -> None:
    _, from_env, cwd = _three_sites(tmp_path, make_site, good)
    done = run("check", cwd=cwd.parent, env={"STATEMENT_FEEDS_CONFIG": str(from_env)})
    assert done.returncode == 0, done.stderr
    assert "checked 2 statements" in done.stdout


def test_cwd_config_is_the_last_resort(
    tmp_path: Path, make_site: MakeSite, good: dict[str, str]
) -> None:
    _, _, cwd = _three_sites(tmp_path, make_site, good)
    done = run("check", cwd=cwd.parent)
    assert done.returncode == 0, done.stderr
    assert "checked 3 statements" in done.stdout


def test_no_config_anywhere_exits_2(tmp_path: Path) -> None:
    done = run("check", cwd=tmp_path)
    assert done.returncode == 2
    assert str(tmp_path / "statement-feeds.toml") in done.stderr
    assert "STATEMENT_FEEDS_CONFIG" in done.stderr


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, make_site: MakeSite, good: dict[str, str]
) -> None:
    config = make_site(tmp_path / "site", good)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run("--config", os.path.relpath(config, elsewhere), "build", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "public" / "feeds" / "en.atom").is_file()
    assert tree(elsewhere) == []


def test_unwritable_output_folder_exits_2_with_a_message(tmp_path: Path) -> None:
    config = make_site_for_oserror(tmp_path)
    (tmp_path / "public").write_text("a file where the output folder should be", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "build"])
    assert result.exit_code == 2, result.output
    assert "public" in result.output and "check the paths" in result.output


def make_site_for_oserror(root: Path) -> Path:
    (root / "statements").mkdir()
    (root / "statements" / "a.md").write_text(
        "---\ntitle: A\ndate: 2020-01-01\n---\n\nBody.\n", encoding="utf-8"
    )
    config = root / "statement-feeds.toml"
    config.write_text(
        '[site]\ntitle = "T"\nurl = "https://example.org/"\n[paths]\noutput = "public"\n',
        encoding="utf-8",
    )
    return config


def test_status_shows_the_last_build_the_daemon_and_the_next_editions(tmp_path: Path) -> None:
    config = make_site_for_oserror(tmp_path)
    runner = CliRunner()
    before = runner.invoke(cli, ["--config", str(config), "status"])
    assert before.exit_code == 0, before.output
    assert "build    last" not in before.output  # nothing built yet
    assert runner.invoke(cli, ["--config", str(config), "build"]).exit_code == 0
    after = runner.invoke(cli, ["--config", str(config), "status"])
    assert after.exit_code == 0, after.output
    assert "1 statements, 0 problems, 1 files written" in after.output
    assert "daemon   not running" in after.output
    assert "next     daily   edition due" in after.output
    assert "next     weekly  edition due" in after.output


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STATEMENT_FEEDS_")}


def test_status_into_a_closed_pipe_exits_quietly_as_unix_tools_do(tmp_path: Path) -> None:
    """``status | head -1`` once said "cannot use: Broken pipe ... check the paths", exit 2."""
    config = make_site_for_oserror(tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first line: every write is EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "statement_feeds", "--config", str(config), "status"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=_environment(),
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr == b""
    assert done.returncode == 141  # what a shell shows for a tool SIGPIPE killed


def test_status_piped_to_head_prints_one_line_and_nothing_on_stderr(tmp_path: Path) -> None:
    config = make_site_for_oserror(tmp_path)
    command = f"'{sys.executable}' -m statement_feeds --config '{config}' status | head -n 1"
    done = subprocess.run(
        ["sh", "-c", command],
        capture_output=True,
        text=True,
        env=_environment(),
        timeout=TIMEOUT,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert len(done.stdout.splitlines()) == 1


def _site_with_subscribers(root: Path, csv: str, http: str) -> Path:
    config = make_site_for_oserror(root)
    (root / "subscribers").mkdir()
    (root / "subscribers" / "list.csv").write_text(csv, encoding="utf-8")
    templates = root / "templates"
    shutil.copytree(DEFAULTS, templates)
    text = config.read_text(encoding="utf-8") + '[paths]\ntemplates = "templates"\n' + http
    config.write_text(text.replace('[paths]\noutput = "public"\n', "", 1), encoding="utf-8")
    return config


def test_check_reports_bad_subscriber_rows_with_file_and_line(tmp_path: Path) -> None:
    csv = "email,frequency\nok@example.org,daily\nnot-an-address,daily\nb@example.org,hourly\n"
    config = _site_with_subscribers(tmp_path, csv, '[http]\npublic_url = "https://e.org/n/"\n')
    result = invoke("--config", str(config), "check")
    assert result.exit_code == 1, result.output
    assert "list.csv:3" in result.output and "list.csv:4" in result.output
    assert "1 subscribers, 2 problems" in result.output


def test_check_refuses_a_broken_template_naming_file_and_line(tmp_path: Path) -> None:
    config = _site_with_subscribers(
        tmp_path, "email\nok@example.org\n", '[http]\npublic_url = "https://e.org/n/"\n'
    )
    (tmp_path / "templates" / "digest.html").write_text("<p>\n{% if %}\n", encoding="utf-8")
    result = invoke("--config", str(config), "check")
    assert result.exit_code == 2, result.output
    assert "digest.html:2" in result.output


def test_check_requires_public_url_once_there_are_subscribers(tmp_path: Path) -> None:
    config = _site_with_subscribers(tmp_path, "email\nok@example.org\n", "")
    result = invoke("--config", str(config), "check")
    assert result.exit_code == 2, result.output
    assert "http.public_url" in result.output


def test_digest_send_with_a_broken_template_plans_nothing_and_exits_2(tmp_path: Path) -> None:
    config = _site_with_subscribers(
        tmp_path, "email\nok@example.org\n", '[http]\npublic_url = "https://e.org/n/"\n'
    )
    (tmp_path / "templates" / "digest.txt").write_text("{{ no_such_thing.x }}\n", "utf-8")
    result = invoke("--config", str(config), "digest", "send")
    assert result.exit_code == 2, result.output
    assert "digest.txt" in result.output
    state = tmp_path / "state" / "state.sqlite"
    if state.exists():  # created or not, it must hold no edition
        import sqlite3

        with sqlite3.connect(state) as db:
            assert db.execute("SELECT count(*) FROM editions").fetchone() == (0,)


def test_subscribers_unbounce(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from statement_feeds.state.sqlite import SqliteStore

    config = make_site_for_oserror(tmp_path)
    with SqliteStore.open(tmp_path / "state") as store:
        store.mark_bounced("a@example.org", datetime(2024, 1, 1, tzinfo=UTC), "550 5.1.1")
    first = invoke("--config", str(config), "subscribers", "unbounce", "a@example.org")
    assert first.exit_code == 0 and "bounce cleared" in first.output
    again = invoke("--config", str(config), "subscribers", "unbounce", "a@example.org")
    assert again.exit_code == 2 and "not marked bounced" in again.output


def test_check_refuses_tricky_local_parts_clearly_and_accepts_an_idn_domain(
    tmp_path: Path,
) -> None:
    csv = (
        "email\n"
        "=?utf-8?q?attacker=40evil.org=2C_anna?=@example.org\n"  # an RFC 2047 encoded word
        "пётр@example.org\n"  # would need SMTPUTF8
        "user@Bücher.de\n"  # sent as user@xn--bcher-kva.de
    )
    config = _site_with_subscribers(tmp_path, csv, '[http]\npublic_url = "https://e.org/n/"\n')
    result = invoke("--config", str(config), "check")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    encoded = next(line for line in lines if "list.csv:2" in line)
    assert "encoded word" in encoded
    local = next(line for line in lines if "list.csv:3" in line)
    assert "ASCII" in local and "SMTPUTF8" in local
    assert "1 subscribers, 2 problems" in result.output
