#!/usr/bin/env bash
# The edition benchmark: `statement-feeds digest send` to 100,000 subscribers against
# Postfix's smtp-sink, with smtp-source as the reference sender in the same run.
# Extra arguments go to bench/smtp_bench.py (e.g. --runs 3, --subscribers 200000, --profile).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/ensure-smtp-sink.sh
exec .venv/bin/python bench/smtp_bench.py "$@"
