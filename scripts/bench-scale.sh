#!/usr/bin/env bash
# The scaling benchmark: one edition sent by 1, 2 or 3 processes on one state (SQLite, and
# PostgreSQL at $STATEMENT_FEEDS_TEST_PG or 127.0.0.1:5432) against smtp-sink, smtp-source
# as the reference at the same total concurrency. Extra arguments go to bench/scale_bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/ensure-smtp-sink.sh
exec .venv/bin/python bench/scale_bench.py "$@"
