#!/usr/bin/env bash
# The main job on the bundled example site with the embedded defaults (SQLite state,
# Maildir outbox, no external server). Extra arguments replace the default command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
cmd=("$@")
[ ${#cmd[@]} -gt 0 ] || cmd=(build)
exec .venv/bin/statement-feeds --config examples/site/statement-feeds.toml "${cmd[@]}"
