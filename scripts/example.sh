#!/usr/bin/env bash
# The main job on the bundled example site with the embedded defaults (SQLite state,
# Maildir outbox, no external server): the daemon, until Ctrl-C. It builds the feeds
# into examples/site/public/feeds/ and keeps them current; scripts/example-digest.sh
# (in a second terminal) publishes a statement and has a digest delivered to
# examples/site/outbox/new/. Extra arguments replace the default command, e.g.
# `scripts/example.sh build` or `scripts/example.sh status`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
cmd=("$@")
[ ${#cmd[@]} -gt 0 ] || cmd=(run)
exec .venv/bin/statement-feeds --config examples/site/statement-feeds.toml "${cmd[@]}"
