"""Templates ship with the package; a site's ``paths.templates`` overrides them file by file."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from conftest import statement_md, write_site
from statement_feeds.cli import cli
from statement_feeds.template_files import DEFAULTS, template_path

SERVED = '[http]\nlisten = "127.0.0.1:8080"\npublic_url = "https://example.org/news/"\n'


def site_without_templates(root: Path) -> Path:
    """A site with a subscriber, serving pages, and no templates folder of its own."""
    statements = {"a.en.md": statement_md(title="Alpha", date="2020-08-26")}
    config = write_site(root, statements, templates=root / "templates", extra_toml=SERVED)
    (root / "subscribers" / "list.csv").write_text("email\nreader@example.org\n", "utf-8")
    return config


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def test_the_package_carries_every_default_template() -> None:
    names = {p.relative_to(DEFAULTS).as_posix() for p in DEFAULTS.rglob("*") if p.is_file()}
    assert {"digest.txt", "digest.html", "confirm.txt", "web/base.html", "web/home.html"} <= names


def test_a_site_with_no_templates_folder_checks_and_previews(tmp_path: Path) -> None:
    config = site_without_templates(tmp_path)
    assert not (tmp_path / "templates").exists()
    result = run(config, "check")
    assert result.exit_code == 0, result.output  # digest and web templates: the defaults
    out = tmp_path / "preview"
    result = run(config, "digest", "preview", "--lang", "en", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Alpha" in (out / "digest.en.txt").read_text(encoding="utf-8")


def test_one_overridden_file_replaces_that_default_only(tmp_path: Path) -> None:
    config = site_without_templates(tmp_path)
    (tmp_path / "templates").mkdir()
    mine = tmp_path / "templates" / "digest.txt"
    mine.write_text("OUR OWN TEXT\n{% for item in items %}{{ item.title }}\n{% endfor %}", "utf-8")
    assert template_path(tmp_path / "templates", "digest.txt") == mine
    assert template_path(tmp_path / "templates", "digest.html") == DEFAULTS / "digest.html"
    out = tmp_path / "preview"
    result = run(config, "digest", "preview", "--lang", "en", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "digest.en.txt").read_text(encoding="utf-8").startswith("OUR OWN TEXT\nAlpha")
    default_html = (out / "digest.en.html").read_text(encoding="utf-8")
    assert "OUR OWN TEXT" not in default_html and "Alpha" in default_html


def test_a_broken_override_is_named_by_its_path_not_the_folder(tmp_path: Path) -> None:
    config = site_without_templates(tmp_path)
    (tmp_path / "templates").mkdir()
    broken = tmp_path / "templates" / "digest.html"
    broken.write_text("<p>\n{% if %}\n", encoding="utf-8")
    result = run(config, "check")
    assert result.exit_code == 2, result.output
    assert f"{broken}:2:" in result.output
    assert "delete it to use statement-feeds' default" in result.output


def test_a_broken_base_breaks_the_default_pages_and_is_named(tmp_path: Path) -> None:
    """web/home.html (the default) extends web/base.html (the site's, broken): the error
    names the site's file, where the fix is."""
    config = site_without_templates(tmp_path)
    (tmp_path / "templates" / "web").mkdir(parents=True)
    base = tmp_path / "templates" / "web" / "base.html"
    base.write_text("<html>{{ no_such_variable.x }}</html>\n", encoding="utf-8")
    result = run(config, "check")
    assert result.exit_code == 2, result.output
    assert str(base) in result.output, result.output


def test_check_says_which_templates_are_the_sites_own(tmp_path: Path) -> None:
    config = site_without_templates(tmp_path)
    assert "templates:" not in run(config, "check").output
    (tmp_path / "templates" / "web").mkdir(parents=True)
    for name in ("digest.txt", "web/notice.html"):
        (tmp_path / "templates" / name).write_text((DEFAULTS / name).read_text("utf-8"), "utf-8")
    (tmp_path / "templates" / "web" / "_footer.html").write_text("mine\n", encoding="utf-8")
    result = run(config, "check")
    assert result.exit_code == 0, result.output
    expected = f"templates: digest.txt, web/notice.html from {tmp_path / 'templates'}; "
    assert expected + "the others are the defaults\n" in result.output
