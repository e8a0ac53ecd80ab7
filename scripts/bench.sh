#!/usr/bin/env bash
# The build benchmark: 10,000 generated statements in 5 languages, cold build, rebuilds
# after one change, and Hugo on the same corpus in the same run (installed with apt-get
# when missing and possible; otherwise skipped with a message). Extra arguments go to
# bench/build_bench.py (e.g. --runs 3, --profile, --keys 200 for a quick look).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if ! command -v hugo >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "hugo: not installed, installing the Debian package ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq hugo >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq hugo >/dev/null 2>&1; } \
      || echo "hugo: could not be installed; the Hugo reference and the ratio are skipped"
  else
    echo "hugo: not installed and apt-get is not usable here; the Hugo reference is skipped"
  fi
fi
exec .venv/bin/python bench/build_bench.py "$@"
