"""The web pages' templates are checked before use and never re-read behind our back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_app import REPO, write_site

from statement_feeds.errors import ConfigError
from statement_feeds.locales import load_translations
from statement_feeds.web.templates import PAGES, PageTemplates

TRANSLATE = load_translations("en").for_language("en").text


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "src" / "statement_feeds" / "templates", tmp_path / "templates")
    return tmp_path / "templates"


def load(folder: Path) -> PageTemplates:
    return PageTemplates.load(folder, TRANSLATE, folder.parent / "statement-feeds.toml")


def test_the_shipped_templates_pass(folder: Path) -> None:
    pages = load(folder)
    html = pages.render(
        "web/notice.html",
        lang="en",
        _=TRANSLATE,
        site_title="S",
        site_url="https://example.org/",
        language_names={},
        heading="Hello",
        text="World",
    )
    assert "<h1>Hello</h1>" in html


@pytest.mark.parametrize(
    ("name", "breakage", "expected"),
    [
        ("web/home.html", "{% block main %}{{ oops(", "web/home.html:"),
        ("web/base.html", "{% if %}", "web/base.html:"),
        ("web/preferences.html", "{{ nope }}", "web/preferences.html:"),  # at render time
        ("web/unsubscribe.html", "{{ 1 // 0 }}", "web/unsubscribe.html:"),
        ("web/notice.html", "{{ _('Hi {name}') }}", "web/notice.html:"),  # a missing value
        ("confirm.txt", "{{ x|nosuchfilter }}", "confirm.txt"),
    ],
)
def test_a_broken_template_is_named_with_its_line(
    folder: Path, name: str, breakage: str, expected: str
) -> None:
    path = folder / name
    path.write_text(breakage + "\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load(folder)
    assert expected in str(raised.value) and raised.value.key == "paths.templates"


def test_a_template_missing_from_the_site_comes_from_the_package(folder: Path) -> None:
    (folder / "web" / "confirm.html").unlink()
    pages = load(folder)
    html = pages.render("web/confirm.html", token="t.k", **_BASE)
    assert 'value="t.k"' in html


def test_a_template_extending_a_missing_one_is_refused(folder: Path) -> None:
    (folder / "web" / "confirm.html").write_text('{% extends "web/nosuch.html" %}\n', "utf-8")
    with pytest.raises(ConfigError, match=r"web/nosuch\.html") as raised:
        load(folder)
    assert str(folder / "web" / "confirm.html") in str(raised.value)


def test_a_broken_site_file_is_named_by_its_full_path(folder: Path) -> None:
    (folder / "web" / "home.html").write_text("{% block main %}{{ oops(\n", "utf-8")
    with pytest.raises(ConfigError) as raised:
        load(folder)
    message = str(raised.value)
    assert f"{folder / 'web' / 'home.html'}:1" in message
    assert "fix that file, or delete it" in message and "fix the template in" not in message


_BASE = {
    "lang": "en",
    "_": TRANSLATE,
    "site_title": "S",
    "site_url": "https://example.org/",
    "language_names": {},
}


def test_files_changed_after_loading_are_not_used(folder: Path) -> None:
    pages = load(folder)
    for name in ("web/base.html", "web/notice.html"):
        (folder / name).write_text("{% if %} broken", encoding="utf-8")
    html = pages.render(
        "web/notice.html",
        lang="en",
        _=TRANSLATE,
        site_title="S",
        site_url="https://example.org/",
        language_names={},
        heading="Still the old one",
        text="",
    )
    assert "Still the old one" in html and "<!DOCTYPE html>" in html
    assert "confirm.txt" in PAGES


def test_check_reports_a_broken_web_template_when_the_site_serves_pages(folder: Path) -> None:
    from click.testing import CliRunner

    from statement_feeds.cli import cli

    (folder / "web" / "home.html").write_text("{% block main %}{{ oops(", encoding="utf-8")
    site = folder.parent / "site"
    config = write_site(site, {}, templates=folder)
    runner = CliRunner()
    served = (
        config.read_text(encoding="utf-8")
        + '\n[http]\nlisten = "127.0.0.1:8080"\npublic_url = "https://example.org/news/"\n'
    )
    result = runner.invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 0, result.output  # no pages served: not their business
    config.write_text(served, encoding="utf-8")
    result = runner.invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 2 and "web/home.html" in result.output
