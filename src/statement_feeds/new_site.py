"""``statement-feeds init DIR``: a new site that ``check`` and ``build`` accept at once.

:data:`CONFIG_KEYS` is the one table the new ``statement-feeds.toml`` is written from:
every key of :data:`config_keys.SECTIONS`, its default and its meaning (a test holds the
two equal, and another loads the file with every default line uncommented to prove the
defaults written are the ones the code uses). Nothing is ever overwritten: if one of the
files exists, nothing at all is written and the error names it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import textwrap
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .config import DEFAULT_NAME, load_config
from .domain.langtags import canonical_tag
from .errors import ConfigError, StatementFeedsError

__all__ = ["CONFIG_KEYS", "ConfigKey", "SiteAnswers", "SiteExists", "config_text", "create_site"]

# How a key is written: an active line (a value the site should look at), a commented
# line showing the default in force, or only its comment (smtp.password: never here).
SET, DEFAULT, NEVER = "set", "default", "never"


@dataclass(frozen=True, slots=True)
class ConfigKey:
    section: str
    name: str
    value: str  # a TOML value; {title}, {url}, ... are filled in from SiteAnswers
    written: str  # SET, DEFAULT or NEVER
    meaning: str


# fmt: off
CONFIG_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("site", "title", "{title}", SET,
              "The site's name: feed titles, digests, web pages."),
    ConfigKey("site", "url", "{url}", SET,
              'The public site; default statement links are <url><lang>/<slug>/.'),
    ConfigKey("site", "feeds_url", "{feeds_url}", DEFAULT,
              'Public URL of the feeds folder (<output>/feeds/).'),
    ConfigKey("site", "author", "{title}", DEFAULT,
              'Author of every statement without its own `author`.'),
    ConfigKey("site", "default_language", "{language}", SET,
              'BCP 47 tag of a statement without `lang` or a .<lang>.md suffix.'),
    ConfigKey("site", "timezone", "{timezone}", SET,
              'IANA zone: dates without a time, cron times, times shown.'),
    ConfigKey("site", "id_base", "{url}", DEFAULT,
              'What default Atom ids are scoped to (default: site.url); when the site moves, set it'
              ' to the old url so readers do not see everything anew.'),
    ConfigKey("paths", "statements", '"statements"', SET,
              "Markdown statements, any depth (relative paths: to this file's folder)."),
    ConfigKey("paths", "templates", '"templates"', SET,
              'Optional: a file here (digest.txt, digest.html, confirm.txt, web/home.html, ...) '
              'replaces that one default template shipped with statement-feeds.'),
    ConfigKey("paths", "subscribers", '"subscribers"', SET,
              'CSV files: email,name,languages,frequency.'),
    ConfigKey("paths", "output", '"public"', SET,
              'Written by build: feeds in <output>/feeds/<lang>.atom.'),
    ConfigKey("paths", "state", '"state"', SET,
              'SQLite state, build cache, lock, secret.key: back it up.'),
    ConfigKey("paths", "outbox", '"outbox"', SET,
              'Maildir the digests are written to while smtp.host is empty.'),
    ConfigKey("feeds", "max_entries", "50", DEFAULT,
              'Entries in each feed; older ones go to RFC 5005 archive pages.'),
    ConfigKey("feeds", "excerpt_words", "100", DEFAULT,
              "Words of a statement's excerpt when it has no `summary`."),
    ConfigKey("feeds", "max_statement_bytes", "2097152", DEFAULT,
              'A bigger statement file is reported and skipped (2 MiB).'),
    ConfigKey("feeds", "websub_hubs", "[]", DEFAULT,
              'WebSub hubs, e.g. ["https://pubsubhubbub.appspot.com/"]: every feed links them '
              '(rel="hub") and `run` pings them after each build that changed a feed.'),
    ConfigKey("digest", "from", "{sender}", SET,
              'The From header of digests and confirmation emails.'),
    ConfigKey("digest", "daily", '"0 7 * * *"', DEFAULT,
              'When the daily edition goes out: cron, in site.timezone.'),
    ConfigKey("digest", "weekly", '"0 7 * * mon"', DEFAULT,
              'When the weekly edition goes out: cron, in site.timezone.'),
    ConfigKey("digest", "max_age", '"30d"', DEFAULT,
              'Older statements are never mailed (s, m, h, d, w).'),
    ConfigKey("digest", "misfire_grace", '"6h"', DEFAULT,
              'An edition missed while the daemon was down is sent on start if less late '
              'than this.'),
    ConfigKey("digest", "retry_lifetime", '"3d"', DEFAULT,
              'A delivery failing temporarily (4xx) is given up after this long.'),
    ConfigKey("digest", "unsubscribe_mailto", '""', DEFAULT,
              'e.g. "unsubscribe@example.org": adds a mailto to List-Unsubscribe.'),
    ConfigKey("digest", "bounce_address", '""', DEFAULT,
              'e.g. "bounces@example.org": every message gets a VERP envelope sender '
              '(bounces+<token>@example.org) so a bounce arriving later maps to its delivery.'),
    ConfigKey("digest", "bounce_threshold", "3", DEFAULT,
              'Permanent bounces (of distinct editions) that mark an address bounced.'),
    ConfigKey("digest", "bounce_mailbox", '""', DEFAULT,
              'What `bounces process` (and run, at each rescan) reads: a Maildir folder, or '
              'imap[s]://user@host/folder (password: $STATEMENT_FEEDS_IMAP_PASSWORD).'),
    ConfigKey("digest", "corrections", "true", DEFAULT,
              'A statement whose `updated` moves later is mailed again, in a "Corrected" '
              'section, to everyone who got it.'),
    ConfigKey("smtp", "host", '""', SET,
              'Your mail relay (it signs with DKIM); empty: digests go to the Maildir at '
              'paths.outbox.'),
    ConfigKey("smtp", "port", "25", DEFAULT,
              '587 for submission with starttls, 465 with tls.'),
    ConfigKey("smtp", "security", '"starttls"', DEFAULT,
              '"none", "starttls" or "tls"; starttls and tls never fall back to plain text.'),
    ConfigKey("smtp", "username", '""', DEFAULT,
              'Log in as this user (empty: no login).'),
    ConfigKey("smtp", "password", "", NEVER,
              'Never in this file: set STATEMENT_FEEDS_SMTP_PASSWORD in the environment.'),
    ConfigKey("smtp", "concurrency", "4", DEFAULT,
              'Parallel SMTP connections, each reused for many messages.'),
    ConfigKey("smtp", "timeout", "60", DEFAULT,
              'Seconds per SMTP command before the connection counts as dropped.'),
    ConfigKey("http", "listen", '""', DEFAULT,
              'e.g. "127.0.0.1:8080": `run` serves feeds, sign-up and unsubscribe pages there '
              '(behind a reverse proxy); empty: nothing is served.'),
    ConfigKey("http", "public_url", "{public_url}", SET,
              "The public https base of the subscribe and unsubscribe pages (http.listen, behind "
              "your reverse proxy): every digest's unsubscribe link points there, so serve it "
              'before mail goes out. Required once there are subscriber files; "": none.'),
    ConfigKey("state", "url", '""', DEFAULT,
              'Empty: SQLite in paths.state. "postgresql://user@host/db": state shared by several '
              'daemons (password: $STATEMENT_FEEDS_STATE_PASSWORD, PGPASSWORD or ~/.pgpass).'),
    ConfigKey("state", "lease", '"60s"', DEFAULT,
              "How long a sender's claim on a delivery holds without renewal (renewed every "
              "third of it; at least 3s): a killed daemon's claimed deliveries go to the "
              "others once it lapses."),
    ConfigKey("pages", "enabled", "true", DEFAULT,
              "`build` writes the HTML pages into paths.output: <lang>/index.html (the "
              "statements, newest first), <lang>/<slug>/index.html for each statement without "
              "its own `url`, index.html, sitemap.xml and robots.txt; false: none (and the ones "
              "written before are removed)."),
    ConfigKey("pages", "per_page", "10", DEFAULT,
              "Statements per page of a language's list; older ones on <lang>/page/<n>/."),
)
# fmt: on

_LANGUAGES_EXAMPLE = """\
# One table per language, optional: that language's feed and digest title.
# [languages.ru]
# title = "Заявления"
"""


class SiteExists(StatementFeedsError):
    """``init`` would overwrite a file: nothing was written."""


@dataclass(frozen=True, slots=True)
class SiteAnswers:
    title: str = "Statements"
    url: str = "https://example.org/"
    language: str = "en"
    timezone: str = "UTC"


def config_text(answers: SiteAnswers) -> str:
    """The commented ``statement-feeds.toml`` of a new site."""
    values = _values(answers)
    parts = [
        "# statement-feeds.toml, written by `statement-feeds init`.\n"
        "# Every key is here with what it means. A line `# key = value` shows the default\n"
        "# in force: remove the `# ` to change it. An unknown key is an error (exit 2).\n"
        "# Secrets never live in this file: they come from the environment (README).\n"
    ]
    for section in dict.fromkeys(key.section for key in CONFIG_KEYS):
        keys = [_key_lines(k, values) for k in CONFIG_KEYS if k.section == section]
        parts.append(f"\n[{section}]\n" + "\n".join(keys))
        if section == "site":
            parts.append("\n" + _LANGUAGES_EXAMPLE)
    return "".join(parts)


def create_site(folder: Path, answers: SiteAnswers, now: datetime) -> list[Path]:
    """Write a new site into ``folder`` (made if missing) and return the files written.
    :class:`SiteExists` naming every file already there, before anything is written;
    :class:`ConfigError` for an answer the configuration refuses (nothing written)."""
    _check_answers(answers)
    text = config_text(answers)
    _refuse_what_load_config_would(text)
    files = {
        folder / DEFAULT_NAME: text,
        folder / "statements" / "welcome.md": _example_statement(answers, now),
        folder / "subscribers" / "subscribers.csv": "email,name,languages,frequency\n",
    }
    existing = [path for path in files if os.path.lexists(path)]
    if existing:
        names = ", ".join(str(path) for path in existing)
        raise SiteExists(
            f"init never overwrites a file, and these are there: {names}; "
            "nothing was written (choose another folder, or move them away)"
        )
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as file:  # "x": never over a file made meanwhile
            file.write(content)
    return list(files)


def _refuse_what_load_config_would(text: str) -> None:
    """Load ``text`` with the real loader, from a scratch folder, before anything is
    written: whatever `check` would refuse (an answer the checks above let through),
    ``init`` refuses first, naming the key."""
    with tempfile.TemporaryDirectory(prefix="statement-feeds-init-") as scratch:
        path = Path(scratch) / DEFAULT_NAME
        path.write_text(text, encoding="utf-8")
        try:
            load_config(path)
        except ConfigError as exc:
            reason = str(exc).removeprefix(f"{path.resolve()}: ")
            raise ConfigError(f"{reason} (nothing was written)") from None


def _key_lines(key: ConfigKey, values: dict[str, str]) -> str:
    comment = "".join(f"# {line}\n" for line in textwrap.wrap(key.meaning, 86))
    if key.written == NEVER:
        return comment
    line = f"{key.name} = {key.value.format(**values)}\n"
    return comment + (line if key.written == SET else f"# {line}")


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's (\\uXXXX included)."""
    return json.dumps(text, ensure_ascii=False)


def _values(answers: SiteAnswers) -> dict[str, str]:
    url = answers.url if answers.url.endswith("/") else answers.url + "/"
    host = re.sub(r"^https?://([^/:]+).*$", r"\1", url)
    return {
        "title": _toml_string(answers.title),
        "url": _toml_string(url),
        "feeds_url": _toml_string(url + "feeds/"),
        "language": _toml_string(answers.language),
        "timezone": _toml_string(answers.timezone),
        # RFC 8058 one-click unsubscribe needs https: for a plain-http site, left empty.
        "public_url": _toml_string(url + "newsletter/" if _https_or_local(url) else ""),
        "sender": _toml_string(f"{_display_name(answers.title)} <statements@{host}>"),
    }


def _https_or_local(url: str) -> bool:
    return (
        url.startswith("https://")
        or re.match(r"^http://(127\.0\.0\.1|localhost)[:/]", url) is not None
    )


def _display_name(title: str) -> str:
    """``title`` as the display name of a From header: quoted when it holds specials."""
    if re.fullmatch(r"[\w '-]+", title):
        return title
    return '"' + title.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_answers(answers: SiteAnswers) -> None:
    """The answers that would make a file `check` refuses, refused before writing it."""
    if not answers.title.strip() or any(c in answers.title for c in "\r\n\u2028\u2029"):
        raise ConfigError("--title: one line of text", key="site.title")
    if canonical_tag(answers.language) is None:
        raise ConfigError(
            f"--language: not a BCP 47 language tag (e.g. en, pt-BR): {answers.language!r}",
            key="site.default_language",
        )
    try:
        ZoneInfo(answers.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"--timezone: unknown time zone {answers.timezone!r}; use an IANA name like "
            "Europe/London",
            key="site.timezone",
        ) from None


def _example_statement(answers: SiteAnswers, now: datetime) -> str:
    day = now.astimezone(ZoneInfo(answers.timezone)).date().isoformat()
    return f"""---
title: An example statement
date: {day}
---

This is an example statement written by `statement-feeds init`. Replace it with your own:
one Markdown file per statement and language (`name.en.md`, `name.ru.md`), with a `title`
and a `date` in the front matter above. Delete this file, or set `draft: true` above, so
that it is never published.
"""
