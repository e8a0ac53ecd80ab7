"""Shared fixtures: a real site on disk (config + statements folder) in ``tmp_path``.

Usage in a test::

    def test_x(tmp_path, make_site, statement_md):
        config = make_site(tmp_path, statements={"a.en.md": statement_md(title="A")})

``make_site`` returns the path of the written ``statement-feeds.toml``; the
statements folder is ``config.parent / "statements"``. Everything is real files:
no mocks of the code under test.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from smtp_server import RecordingServer

# No per-example deadline: speed is measured in bench/, and a loaded CI machine made
# a 200 ms deadline a source of failures that say nothing about correctness.
settings.register_profile("statement-feeds", deadline=None, print_blob=True)
settings.load_profile("statement-feeds")

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = REPO / "examples" / "site" / "statement-feeds.toml"

SITE_URL = "https://example.org/"

_BASE_TOML = """\
[site]
title = "Socialism From Below"
url = "{url}"
feeds_url = "{url}feeds/"
author = "International Socialist Tendency"
default_language = "{default_language}"
timezone = "{timezone}"

[languages.ru]
title = "Социализм снизу"

[paths]
statements = "statements"
templates = "{templates}"
subscribers = "subscribers"
output = "public"
state = "state"
outbox = "outbox"

[feeds]
max_entries = {max_entries}
excerpt_words = {excerpt_words}

[digest]
from = "Statements <statements@example.org>"

[smtp]
host = ""
"""


def statement_md(
    title: str | None = "A statement",
    date: str | None = "2020-08-26",
    body: str = "First paragraph of the statement.\n\nSecond paragraph.\n",
    **keys: Any,
) -> str:
    """The text of a statement file. ``None`` leaves a key out; extra keys go in as given.

    Values are written verbatim after ``key: ``, so quote them yourself when YAML needs it.
    """
    lines = ["---"]
    if title is not None:
        lines.append(f"title: {title}")
    if date is not None:
        lines.append(f"date: {date}")
    lines += [f"{key}: {value}" for key, value in keys.items()]
    lines.append("---")
    return "\n".join(lines) + "\n\n" + body


def write_site(
    root: Path,
    statements: Mapping[str, str | bytes] | None = None,
    *,
    extra_toml: str = "",
    url: str = SITE_URL,
    default_language: str = "en",
    timezone: str = "Europe/London",
    max_entries: int = 50,
    excerpt_words: int = 100,
    templates: Path | None = None,
) -> Path:
    """Write a complete site under ``root`` and return its config path.

    ``statements`` maps paths relative to the statements folder (subfolders allowed)
    to text or raw bytes. ``extra_toml`` is appended to the config, e.g. to set a bad
    value. Templates default to the package's defaults (``src/statement_feeds/templates/``).
    """
    root.mkdir(parents=True, exist_ok=True)
    folder = root / "statements"
    folder.mkdir(exist_ok=True)
    (root / "subscribers").mkdir(exist_ok=True)
    for name, content in (statements or {}).items():
        add_statement(folder, name, content)
    config = root / "statement-feeds.toml"
    text = _BASE_TOML.format(
        url=url,
        default_language=default_language,
        timezone=timezone,
        templates=(templates or REPO / "src" / "statement_feeds" / "templates").as_posix(),
        max_entries=max_entries,
        excerpt_words=excerpt_words,
    )
    config.write_text(text + extra_toml, encoding="utf-8")
    return config


def add_statement(folder: Path, name: str, content: str | bytes) -> Path:
    """Write one file into a statements folder (creating subfolders)."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


@pytest.fixture
def make_site() -> Callable[..., Path]:
    """``make_site(tmp_path, statements={...}, **options)`` → config path (see write_site)."""
    return write_site


@pytest.fixture(name="statement_md")
def statement_md_fixture() -> Callable[..., str]:
    """``statement_md(title=..., date=..., body=..., **keys)`` → statement file text."""
    return statement_md


@pytest.fixture
def example_config() -> Path:
    """The bundled example site's config (read-only: copy it before building)."""
    return EXAMPLE_CONFIG


# A self-signed certificate for the SMTP TLS tests (tests/digests/test_mailer.py, test_send.py).
@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("openssl is needed to make a test certificate")
    return cert, key


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MiB file system (tmpfs) to fill up: for "disk full" tests.

    Needs root (CI and these machines run as root); skipped, saying why, elsewhere.
    """
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def smtp_server() -> Iterator[RecordingServer]:
    """A real SMTP server (aiosmtpd, tests/smtp_server.py) on loopback."""
    with RecordingServer() as server:
        yield server


# PostgreSQL and both store backends (a random database per test; skipped without a server).
from pg_helpers import backend, make_backend, pg_url  # noqa: E402, F401
