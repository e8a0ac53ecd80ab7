"""Deterministic benchmark corpus: statements in five languages, for statement-feeds and Hugo.

Every statement exists in all languages (same translation key, file names ``key.<lang>.md``).
Bodies are ~500 words in several paragraphs with headings, emphasis, links and lists.
The same bodies are written twice: once with statement-feeds front matter, once as a
Hugo content tree (``title``, ``date``, ``translationKey``) with a multilingual config
whose only outputs are RSS documents, so both tools parse and render the same Markdown.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

__all__ = [
    "LANGUAGES",
    "Corpus",
    "Statement",
    "generate",
    "statement_text",
    "write_hugo_site",
    "write_site",
]

LANGUAGES = ("en", "ru", "de", "fr", "es")

# Syllables per language: pseudo-words that look like the language's script and accents,
# so that tokenising, excerpt cutting and XML escaping see realistic code points.
_SYLLABLES = {
    "en": "the an ing er ou str ike pro ment tion work ers class state gov ern wage",
    "ru": "про тив ра бо чи ков ст во ни ет за ща ось ли ди кта ту ра",
    "de": "ge ar bei ter schaft ung klas sen kampf ße über für lich keit staat",
    "fr": "tra vail leu rs lut te é ta ble ment ré vo lu tion ç oi grè ve",
    "es": "tra ba ja do res lu cha ñ ción gre ve pue blo esta do sin di cal",
}
_START_DATE = date(2005, 1, 1)
_DAYS = (date(2024, 12, 31) - _START_DATE).days


@dataclass(frozen=True, slots=True)
class Statement:
    key: str
    lang: str
    year: int
    title: str
    date: str  # ISO 8601 date or datetime with offset
    body: str

    @property
    def filename(self) -> str:
        return f"{self.key}.{self.lang}.md"


@dataclass(frozen=True, slots=True)
class Corpus:
    keys: int
    words: int
    seed: int

    def __iter__(self) -> Iterator[Statement]:
        return generate(self.keys, self.words, self.seed)


def _vocabulary(rng: random.Random, lang: str, size: int = 1500) -> list[str]:
    syllables = _SYLLABLES[lang].split()
    words = set()
    while len(words) < size:
        n = rng.choices((1, 2, 3), weights=(4, 4, 2))[0]
        words.add("".join(rng.choice(syllables) for _ in range(n)))
    return sorted(words)


def _sentence(rng: random.Random, vocab: list[str], n: int) -> list[str]:
    words = rng.choices(vocab, k=n)
    words[0] = words[0].capitalize()
    return words


def _paragraph(rng: random.Random, vocab: list[str], n: int) -> str:
    """``n`` words of prose with inline Markdown (emphasis, strong, links, code)."""
    out: list[str] = []
    while len(out) < n:
        words = _sentence(rng, vocab, min(rng.randint(8, 20), n - len(out)))
        roll = rng.random()
        if roll < 0.25 and len(words) > 3:
            i = rng.randrange(1, len(words) - 1)
            words[i] = f"*{words[i]}*"
        elif roll < 0.4 and len(words) > 3:
            i = rng.randrange(1, len(words) - 2)
            words[i : i + 2] = [f"**{words[i]} {words[i + 1]}**"]
        elif roll < 0.55 and len(words) > 4:
            i = rng.randrange(1, len(words) - 2)
            href = f"https://example.org/{rng.choice(vocab)}/{rng.randrange(10_000)}"
            words[i : i + 2] = [f"[{words[i]} {words[i + 1]}]({href})"]
        out.extend(words)
        out[-1] += rng.choice(".....!?;")
    return " ".join(out)


def _body(rng: random.Random, vocab: list[str], total: int) -> str:
    blocks: list[str] = []
    left = total
    while left > 0:
        roll = rng.random()
        if blocks and roll < 0.15:
            heading = " ".join(_sentence(rng, vocab, rng.randint(2, 6)))
            blocks.append(f"{'#' * rng.randint(2, 3)} {heading}")
            left -= 4
        elif blocks and roll < 0.3:
            items = [" ".join(_sentence(rng, vocab, rng.randint(4, 12))) for _ in range(4)]
            marker = rng.choice(("-", "*", "1."))
            blocks.append("\n".join(f"{marker} {item}" for item in items))
            left -= sum(len(i.split()) for i in items)
        elif blocks and roll < 0.35:
            blocks.append("> " + _paragraph(rng, vocab, min(left, 30)))
            left -= 30
        else:
            n = min(left, rng.randint(50, 110))
            blocks.append(_paragraph(rng, vocab, n))
            left -= n
    return "\n\n".join(blocks) + "\n"


def generate(keys: int, words: int = 500, seed: int = 20240501) -> Iterator[Statement]:
    """``keys`` translation keys x 5 languages, as a stream (nothing kept in memory)."""
    rng = random.Random(seed)
    vocabs = {lang: _vocabulary(rng, lang) for lang in LANGUAGES}
    for index in range(keys):
        day = _START_DATE + timedelta(days=rng.randrange(_DAYS))
        hour = rng.randrange(24)
        when = (
            day.isoformat()
            if rng.random() < 0.5
            else f"{day.isoformat()}T{hour:02d}:{rng.randrange(60):02d}:00+01:00"
        )
        key = f"s{index:05d}-{rng.choice(vocabs['en'])}"
        for lang in LANGUAGES:
            vocab = vocabs[lang]
            title = " ".join(_sentence(rng, vocab, rng.randint(4, 10)))
            body = _body(rng, vocab, words + rng.randint(-50, 50))
            yield Statement(key, lang, day.year, title, when, body)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def statement_text(s: Statement) -> str:
    return f"---\ntitle: {_quote(s.title)}\ndate: {s.date}\n---\n\n{s.body}"


def hugo_text(s: Statement) -> str:
    return (
        f"---\ntitle: {_quote(s.title)}\ndate: {s.date}\ntranslationKey: {s.key}\n---\n\n{s.body}"
    )


SITE_CONFIG = """\
[site]
title = "Benchmark Statements"
url = "https://example.org/"
feeds_url = "https://example.org/feeds/"
author = "Benchmark"
default_language = "en"
timezone = "Europe/London"

[languages.ru]
title = "Заявления"

[languages.de]
title = "Erklärungen"

[paths]
statements = "statements"
templates = "templates"
subscribers = "subscribers"
output = "public"
state = "state"
outbox = "outbox"

[feeds]
max_entries = 50
excerpt_words = 100
"""


def write_statements(folder: Path, corpus: Corpus, text: Callable[[Statement], str]) -> int:
    """Every statement as ``folder/<year>/<file>`` in the form ``text`` gives; the count."""
    count = 0
    for s in corpus:
        year = folder / str(s.year)
        year.mkdir(parents=True, exist_ok=True)
        (year / s.filename).write_text(text(s), encoding="utf-8")
        count += 1
    return count


def write_site(root: Path, corpus: Corpus) -> int:
    """A statement-feeds site under ``root``; returns the number of statement files."""
    (root / "subscribers").mkdir(parents=True, exist_ok=True)
    (root / "templates").mkdir(exist_ok=True)
    (root / "statement-feeds.toml").write_text(SITE_CONFIG, encoding="utf-8")
    return write_statements(root / "statements", corpus, statement_text)


# Feeds-only Hugo: no HTML at all. Home: RSS of the newest 50 (like our subscription
# feed); sections (one per year): RSS of every page with its full rendered content and
# summary (like our archives), so every page's Markdown is rendered once.
HUGO_CONFIG = """\
baseURL = "https://example.org/"
title = "Benchmark Statements"
defaultContentLanguage = "en"
disableKinds = ["taxonomy", "term", "sitemap", "robotsTXT", "404"]
enableRobotsTXT = false

[outputs]
home = ["RSS"]
section = ["RSS"]

[services.rss]
limit = -1

[[cascade]]
  [cascade._build]
    render = "never"
  [cascade._target]
    kind = "page"

[languages]
  [languages.en]
    weight = 1
  [languages.ru]
    weight = 2
    title = "Заявления"
  [languages.de]
    weight = 3
    title = "Erklärungen"
  [languages.fr]
    weight = 4
  [languages.es]
    weight = 5
"""

HUGO_RSS = """\
{{- $pages := .RegularPages -}}
{{- if .IsHome }}{{ $pages = first 50 .Site.RegularPages.ByDate.Reverse }}{{ end -}}
<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">
<channel>
<title>{{ .Site.Title }}</title>
<link>{{ .Permalink }}</link>
<language>{{ .Site.LanguageCode }}</language>
{{- range $pages.ByDate.Reverse }}
<item>
<title>{{ .Title }}</title>
<link>{{ .Permalink }}</link>
<guid>{{ .Permalink }}</guid>
<pubDate>{{ .Date.Format "Mon, 02 Jan 2006 15:04:05 -0700" }}</pubDate>
{{- range .Translations }}
<atom:link rel="alternate" hreflang="{{ .Lang }}" href="{{ .Permalink }}"/>
{{- end }}
<description>{{ .Summary | html }}</description>
<content>{{ .Content | html }}</content>
</item>
{{- end }}
</channel>
</rss>
"""


def write_hugo_site(root: Path, corpus: Corpus) -> int:
    """The same statements as a Hugo site under ``root``; returns the number of pages."""
    layouts = root / "layouts" / "_default"
    layouts.mkdir(parents=True, exist_ok=True)
    (layouts / "rss.xml").write_text(HUGO_RSS, encoding="utf-8")
    (root / "config.toml").write_text(HUGO_CONFIG, encoding="utf-8")
    return write_statements(root / "content", corpus, hugo_text)
