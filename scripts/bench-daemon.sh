#!/usr/bin/env bash
# The daemon benchmark (issue 4): `statement-feeds run` on 10,000 generated statements.
# Write -> feed latency over 100 edits (median, p95, max), idle CPU over 60 s (default 60 s
# rescan, then --rescan 600), RSS and CPU under 10 minutes of churn at 5 operations/s
# (create, edit, rename, delete), sampled every 10 s, with a least-squares slope.
# Waits (at most 15 minutes in total) for a 1-minute load average below 1.5 first.
# Extra arguments go to bench/daemon_bench.py (e.g. --churn 3600 for the issue's hour,
# --keys 200 --churn 60 --idle 10 for a quick look, --max-wait 0 to measure at once).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
echo "statement-feeds source: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' + uncommitted changes in src/')"
exec .venv/bin/python bench/daemon_bench.py "$@"
