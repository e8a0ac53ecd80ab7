"""Configuration: ``statement-feeds.toml`` read into typed, validated settings.

Lookup order: ``--config PATH``, ``$STATEMENT_FEEDS_CONFIG``, ``./statement-feeds.toml``;
relative paths resolve against the config file's folder. Secrets come only from the
environment (``STATEMENT_FEEDS_SMTP_PASSWORD``, read in :mod:`statement_feeds.environment`).
Every problem, an unknown key too (:mod:`statement_feeds.config_keys`), raises
:class:`ConfigError` naming the key and how to fix it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .config_keys import check_keys
from .config_reader import Reader, base_url, parse_duration
from .domain.langtags import canonical_tag
from .domain.schedule import plainly_valid_crontab, standard_crontab
from .environment import CONFIG_ENV, STATE_PASSWORD_ENV, Environ, config_file, smtp_password
from .errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "Config",
    "DigestConfig",
    "FeedsConfig",
    "HttpConfig",
    "PagesConfig",
    "PathsConfig",
    "SiteConfig",
    "SmtpConfig",
    "StateConfig",
    "find_config",
    "load_config",
    "parse_duration",
]

DEFAULT_NAME = "statement-feeds.toml"


@dataclass(frozen=True, slots=True)
class SiteConfig:
    title: str
    url: str
    feeds_url: str
    author: str
    default_language: str
    timezone: ZoneInfo
    language_titles: Mapping[str, str] = field(default_factory=dict)
    # What default Atom ids are scoped to; defaults to ``url``. Moving the site to
    # another address: set this to the old url so readers do not see everything anew.
    id_base: str = ""


@dataclass(frozen=True, slots=True)
class PathsConfig:
    statements: Path
    templates: Path
    subscribers: Path
    output: Path
    state: Path
    outbox: Path


DEFAULT_MAX_STATEMENT_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FeedsConfig:
    max_entries: int = 50
    excerpt_words: int = 100
    # A bigger statement file is reported and skipped: one huge file would otherwise
    # swell the build's memory and a feed past what readers (and lxml) accept.
    max_statement_bytes: int = DEFAULT_MAX_STATEMENT_BYTES
    # WebSub hubs (absolute https URLs): linked rel="hub" in every feed, pinged by `run`.
    websub_hubs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DigestConfig:
    sender: str
    daily: str = "0 7 * * *"
    weekly: str = "0 7 * * mon"
    max_age: timedelta = timedelta(days=30)
    misfire_grace: timedelta = timedelta(hours=6)
    unsubscribe_mailto: str = ""
    retry_lifetime: timedelta = timedelta(days=3)
    bounce_address: str = ""  # VERP (domain/verp.py); "": bounces go to digest.from
    bounce_threshold: int = 3  # permanent bounces (of distinct editions) that mark an address
    bounce_mailbox: str = ""  # a Maildir (relative to the config's folder) or an imap(s):// URL
    corrections: bool = True  # re-mail a corrected statement to who got it (domain/corrections)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str = ""
    port: int = 25
    security: str = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)  # from the environment only
    concurrency: int = 4
    timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class HttpConfig:
    listen: str = ""
    public_url: str = ""


@dataclass(frozen=True, slots=True)
class StateConfig:
    # Empty: SQLite in paths.state. "postgresql://user@host/db": the shared store; the
    # password comes from the environment (environment.state_password), never the file.
    url: str = ""
    # How long a sender's claim on a delivery holds without renewal (renewed every third
    # of it): a killed daemon's claimed deliveries go to the others once it lapses.
    lease: timedelta = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class PagesConfig:
    # The static HTML pages (feeds/pages.py): per language, per statement, a chooser.
    enabled: bool = True
    per_page: int = 10  # statements per page of a language's list


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    site: SiteConfig
    paths: PathsConfig
    feeds: FeedsConfig
    digest: DigestConfig
    smtp: SmtpConfig
    http: HttpConfig
    state: StateConfig = StateConfig()
    pages: PagesConfig = PagesConfig()


def find_config(explicit: str | None, cwd: Path | None = None) -> Path:
    """Where the configuration is, by the documented lookup order."""
    return Path(explicit or config_file() or (cwd or Path.cwd()) / DEFAULT_NAME)


def load_config(path: Path, environ: Environ = None) -> Config:
    """Read and validate the configuration file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(
            "configuration file not found; pass --config PATH or set "
            f"${CONFIG_ENV}, or create ./{DEFAULT_NAME}",
            path=str(path),
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration: {exc}", path=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(path)) from None
    check_keys(raw, text, str(path.resolve()))  # a typo is an error, not a silent default
    return _build(path.resolve(), raw, environ)


def _build(path: Path, raw: dict[str, Any], environ: Environ) -> Config:
    reader = Reader(str(path), raw)
    site = _site(reader)
    return Config(
        path=path,
        site=site,
        paths=_paths(reader, path.parent),
        feeds=FeedsConfig(
            max_entries=reader.integer("feeds", "max_entries", 50, minimum=1),
            excerpt_words=reader.integer("feeds", "excerpt_words", 100, minimum=1),
            max_statement_bytes=reader.integer(
                "feeds", "max_statement_bytes", DEFAULT_MAX_STATEMENT_BYTES, minimum=1
            ),
            websub_hubs=_websub_hubs(reader),
        ),
        digest=_digest(reader, site),
        smtp=_smtp(reader, environ),
        http=_http(reader),
        state=_state(reader),
        pages=PagesConfig(
            enabled=reader.boolean("pages", "enabled", True),
            per_page=reader.integer("pages", "per_page", 10, minimum=1),
        ),
    )


def _site(reader: Reader) -> SiteConfig:
    url = base_url(reader, "site", "url", reader.string("site", "url"))
    feeds_url = base_url(
        reader, "site", "feeds_url", reader.string("site", "feeds_url", url + "feeds/")
    )
    tz_name = reader.string("site", "timezone", "UTC")
    try:
        timezone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise reader.error(
            "site.timezone", f"unknown time zone {tz_name!r}; use an IANA name like Europe/London"
        ) from None
    default_language = canonical_tag(reader.string("site", "default_language", "en"))
    if default_language is None:
        raise reader.error("site.default_language", "not a BCP 47 language tag (e.g. en, pt-BR)")
    return SiteConfig(
        title=reader.string("site", "title"),
        url=url,
        feeds_url=feeds_url,
        author=reader.string("site", "author", reader.string("site", "title")),
        default_language=default_language,
        timezone=timezone,
        language_titles=_language_titles(reader),
        id_base=base_url(reader, "site", "id_base", reader.string("site", "id_base", url)),
    )


def _language_titles(reader: Reader) -> dict[str, str]:
    titles: dict[str, str] = {}
    for tag, table in reader.table("languages").items():
        canonical = canonical_tag(tag)
        if canonical is None or not isinstance(table, dict):
            raise reader.error(f"languages.{tag}", "must be a table named by a BCP 47 language tag")
        title = table.get("title")
        if title is not None:
            if not isinstance(title, str) or not title.strip():
                raise reader.error(f"languages.{tag}.title", "must be a non-empty string")
            titles[canonical] = title
    return titles


def _paths(reader: Reader, base: Path) -> PathsConfig:
    def resolve(key: str, default: str) -> Path:
        return (base / reader.string("paths", key, default)).resolve()

    return PathsConfig(
        statements=resolve("statements", "statements"),
        templates=resolve("templates", "templates"),
        subscribers=resolve("subscribers", "subscribers"),
        output=resolve("output", "public"),
        state=resolve("state", "state"),
        outbox=resolve("outbox", "outbox"),
    )


def _digest(reader: Reader, site: SiteConfig) -> DigestConfig:
    daily = reader.string("digest", "daily", "0 7 * * *")
    weekly = reader.string("digest", "weekly", "0 7 * * mon")
    for key, expr in (("daily", daily), ("weekly", weekly)):
        _check_cron(reader, f"digest.{key}", expr, site.timezone)
    host = re.sub(r"^https?://([^/:]+).*$", r"\1", site.url)
    return DigestConfig(
        sender=reader.string("digest", "from", f"{site.title} <statements@{host}>"),
        daily=daily,
        weekly=weekly,
        max_age=reader.duration("digest", "max_age", "30d"),
        misfire_grace=reader.duration("digest", "misfire_grace", "6h"),
        unsubscribe_mailto=reader.string("digest", "unsubscribe_mailto", ""),
        retry_lifetime=reader.duration("digest", "retry_lifetime", "3d"),
        bounce_address=_bounce_address(reader),
        bounce_threshold=reader.integer("digest", "bounce_threshold", 3, minimum=1),
        bounce_mailbox=reader.string("digest", "bounce_mailbox", ""),
        corrections=reader.boolean("digest", "corrections", True),
    )


def _bounce_address(reader: Reader) -> str:
    text = reader.string("digest", "bounce_address", "")
    if not text:
        return ""
    # Imported here: email parsing (~15 ms of imports) is for sites that send digests,
    # and a `build` need not wait for it.
    from .domain.verp import parse_bounce_address

    try:
        return parse_bounce_address(text).email
    except ValueError as exc:
        raise reader.error("digest.bounce_address", f"{exc}, got {text!r}") from None


def _check_cron(reader: Reader, key: str, expr: str, tz: ZoneInfo) -> None:
    if plainly_valid_crontab(expr):
        return  # decided without importing APScheduler: every command loads the config
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(standard_crontab(expr), timezone=tz)
    except ValueError as exc:
        raise reader.error(key, f'not a cron expression ({exc}); e.g. "0 7 * * mon"') from None


def _smtp(reader: Reader, environ: Environ) -> SmtpConfig:
    security = reader.string("smtp", "security", "starttls")
    if security not in ("none", "starttls", "tls"):
        raise reader.error("smtp.security", f"must be none, starttls or tls, got {security!r}")
    if "password" in reader.table("smtp"):
        raise reader.error(
            "smtp.password", "secrets never live in the file; set STATEMENT_FEEDS_SMTP_PASSWORD"
        )
    return SmtpConfig(
        host=reader.string("smtp", "host", ""),
        port=reader.integer("smtp", "port", 25, minimum=1, maximum=65535),
        security=security,
        username=reader.string("smtp", "username", ""),
        password=smtp_password(environ),
        concurrency=reader.integer("smtp", "concurrency", 4, minimum=1),
        timeout=float(reader.integer("smtp", "timeout", 60, minimum=1)),
    )


_LOCAL_HTTP = re.compile(r"^http://(127\.0\.0\.1|localhost|\[::1\])[:/]")


def _websub_hubs(reader: Reader) -> tuple[str, ...]:
    """``feeds.websub_hubs``: absolute https URLs, each once (plain http only on this
    machine, 127.0.0.1/localhost/[::1], for testing: a ping names the feed in the clear)."""
    key = "feeds.websub_hubs"
    value = reader.strings("feeds", "websub_hubs", '["https://hub.example.org/"]')
    for url in value:
        if not re.match(r"^https://[^/\s?#]+(/[^\s#]*)?$", url) and not _LOCAL_HTTP.match(url):
            raise reader.error(
                key,
                f"{url!r} is not an absolute https:// URL; write the hub's full address, "
                'e.g. "https://hub.example.org/"',
            )
    if len(set(value)) != len(value):
        twice = sorted({v for v in value if value.count(v) > 1})
        raise reader.error(key, f"{twice[0]!r} is listed twice; list each hub once")
    return tuple(value)


def _http(reader: Reader) -> HttpConfig:
    listen = reader.string("http", "listen", "")
    port = re.fullmatch(r"[^\s]+:(\d{1,5})", listen)
    if listen and (port is None or not 0 < int(port.group(1)) <= 65535):
        raise reader.error("http.listen", f"must be HOST:PORT, got {listen!r}")
    public_url = reader.string("http", "public_url", "")
    if public_url:
        public_url = base_url(reader, "http", "public_url", public_url)
        # RFC 8058 one-click unsubscribe needs https; plain http only for local testing.
        local = re.match(r"^http://(127\.0\.0\.1|localhost|\[::1\])[:/]", public_url)
        if public_url.startswith("http://") and not local:
            raise reader.error("http.public_url", "must be an https:// URL (RFC 8058)")
    elif listen:
        # Links in confirmation emails would otherwise come from the request's Host
        # header, which a visitor controls.
        raise reader.error("http.public_url", "required when http.listen is set")
    return HttpConfig(listen=listen, public_url=public_url)


def _state(reader: Reader) -> StateConfig:
    url = reader.string("state", "url", "")
    lease = reader.duration("state", "lease", "60s")
    if lease < timedelta(seconds=3):
        raise reader.error(
            "state.lease", "must be at least 3s (it is renewed every third of it); e.g. 60s"
        )
    if not url:
        return StateConfig(lease=lease)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres") or not rest:
        raise reader.error(
            "state.url",
            f"must be a PostgreSQL URL (postgresql://user@host:5432/database), got {url!r}; "
            "remove it to keep the state in SQLite under paths.state",
        )
    userinfo = rest.split("@", 1)[0] if "@" in rest.split("/", 1)[0] else ""
    if ":" in userinfo:
        raise reader.error(
            "state.url",
            "holds a password; remove it from the file and set $"
            f"{STATE_PASSWORD_ENV} (or PGPASSWORD, or ~/.pgpass) instead",
        )
    return StateConfig(url=url, lease=lease)
