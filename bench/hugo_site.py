"""The benchmark corpus as a Hugo site *with* its HTML pages (issue 15's comparison).

Same statements, same Markdown as ``corpus.write_hugo_site``, but Hugo renders what
``statement-feeds build`` renders with pages on: per language a paginated list of the
statements (newest first, date, title, excerpt, "Full statement"), a page per statement
(title, date, content, links to its translations, hreflang/canonical/OpenGraph in the
head), the newest 50 as the language's feed, one feed per year section with every
page's summary and full content (like our archive documents), sitemap and robots.txt.
No theme: the few layouts below.
"""

from __future__ import annotations

from pathlib import Path

from corpus import HUGO_RSS, Corpus, hugo_text, write_statements

__all__ = ["write_hugo_pages_site"]

CONFIG = """\
baseURL = "https://example.org/"
title = "Benchmark Statements"
defaultContentLanguage = "en"
defaultContentLanguageInSubdir = true
disableKinds = ["taxonomy", "term", "404"]
enableRobotsTXT = true
paginate = {per_page}
summaryLength = {excerpt_words}

[outputs]
home = ["HTML", "RSS"]
section = ["RSS"]
page = ["HTML"]

[services.rss]
limit = -1

[languages]
  [languages.en]
    weight = 1
    languageName = "English"
  [languages.ru]
    weight = 2
    title = "Заявления"
    languageName = "Русский"
  [languages.de]
    weight = 3
    title = "Erklärungen"
    languageName = "Deutsch"
  [languages.fr]
    weight = 4
    languageName = "Français"
  [languages.es]
    weight = 5
    languageName = "Español"
"""

BASEOF = """\
<!DOCTYPE html>
<html lang="{{ .Site.Language.Lang }}" dir="{{ .Site.Language.LanguageDirection | default "ltr" }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ if not .IsHome }}{{ .Title }} · {{ end }}{{ .Site.Title }}</title>
<link rel="canonical" href="{{ .Permalink }}">
{{- range .AllTranslations }}
<link rel="alternate" hreflang="{{ .Lang }}" href="{{ .Permalink }}">
{{- end }}
{{- with .Site.Home.OutputFormats.Get "rss" }}
<link rel="alternate" type="application/rss+xml" title="{{ $.Site.Title }}" href="{{ .Permalink }}">
{{- end }}
<meta property="og:title" content="{{ .Title }}">
<meta property="og:description" content="{{ if .IsPage }}{{ .Summary | plainify }}{{ end }}">
<meta property="og:url" content="{{ .Permalink }}">
<meta property="og:locale" content="{{ .Site.Language.Lang }}">
{{- if .IsPage }}
<meta property="article:published_time" content="{{ .Date.Format "2006-01-02T15:04:05Z07:00" }}">
{{- end }}
<meta name="twitter:card" content="summary">
<meta name="twitter:title" content="{{ .Title }}">
<style>body{font-family:system-ui,sans-serif;max-width:42rem;margin:auto;padding:1rem}</style>
</head>
<body>
<header><p><a href="{{ .Site.Home.RelPermalink }}">{{ .Site.Title }}</a></p>
<nav aria-label="Languages">
{{- range .Site.Home.AllTranslations }}
<a hreflang="{{ .Lang }}" href="{{ .RelPermalink }}">{{ .Language.LanguageName }}</a>
{{- end }}
</nav></header>
<main>{{ block "main" . }}{{ end }}</main>
<footer><p><a href="
{{- with .Site.Home.OutputFormats.Get "rss" }}{{ .RelPermalink }}{{ end }}">Feed</a></p></footer>
</body>
</html>
"""

INDEX = """\
{{ define "main" }}
<h1>{{ .Site.Title }}</h1>
{{- $pager := .Paginate .Site.RegularPages.ByDate.Reverse }}
{{- range $pager.Pages }}
<article>
<h2><a href="{{ .RelPermalink }}">{{ .Title }}</a></h2>
<p><time datetime="{{ .Date.Format "2006-01-02" }}">
{{- .Date | time.Format ":date_long" }}</time></p>
<p>{{ .Summary | plainify }}{{ if .Truncated }} …{{ end }}</p>
<p><a href="{{ .RelPermalink }}">Full statement<span hidden>: {{ .Title }}</span></a></p>
</article>
{{- end }}
<nav aria-label="Pages">
{{- if $pager.HasPrev }}<a rel="prev" href="{{ $pager.Prev.URL }}">Newer statements</a>{{ end }}
{{- if $pager.HasNext }}<a rel="next" href="{{ $pager.Next.URL }}">Older statements</a>{{ end }}
</nav>
{{ end }}
"""

SINGLE = """\
{{ define "main" }}
<article>
<h1>{{ .Title }}</h1>
<p><time datetime="{{ .Date.Format "2006-01-02" }}">{{ .Date | time.Format ":date_long" }}</time>
{{- with .Params.author }} · {{ . }}{{ end }}</p>
{{ .Content }}
{{- with .Translations }}
<nav aria-label="Translations"><ul>
{{- range . }}
<li><a hreflang="{{ .Lang }}" href="{{ .RelPermalink }}">
{{- .Title }} ({{ .Language.LanguageName }})</a></li>
{{- end }}
</ul></nav>
{{- end }}
</article>
{{ end }}
"""


def write_hugo_pages_site(
    root: Path, corpus: Corpus, *, per_page: int = 10, excerpt_words: int = 100
) -> int:
    """The corpus as a Hugo site with HTML pages under ``root``; returns the page count."""
    layouts = root / "layouts" / "_default"
    layouts.mkdir(parents=True, exist_ok=True)
    (layouts / "baseof.html").write_text(BASEOF, encoding="utf-8")
    (layouts / "single.html").write_text(SINGLE, encoding="utf-8")
    (layouts / "rss.xml").write_text(HUGO_RSS, encoding="utf-8")
    (root / "layouts" / "index.html").write_text(INDEX, encoding="utf-8")
    config = CONFIG.format(per_page=per_page, excerpt_words=excerpt_words)
    (root / "config.toml").write_text(config, encoding="utf-8")
    return write_statements(root / "content", corpus, hugo_text)
