#!/usr/bin/env bash
# The pages benchmark (issue 15): a cold `statement-feeds build` of 10,000 generated
# statements in 5 languages with its HTML pages, against Hugo rendering the same corpus
# with its pages (and feeds) in the same run, interleaved; then one-file rebuilds, with
# the files each rewrites. Installs Hugo with apt-get when missing (the benchmark needs
# it). Extra arguments go to bench/pages_bench.py (e.g. --runs 5, --keys 200 for a quick look).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if ! command -v hugo >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "hugo: not installed, installing the Debian package ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq hugo >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq hugo >/dev/null 2>&1; } \
      || { echo "hugo: could not be installed with apt-get; install it and run this again" >&2; exit 1; }
  else
    echo "hugo: not installed and apt-get is not usable here (not root?); install Hugo first" >&2
    exit 1
  fi
fi
exec .venv/bin/python bench/pages_bench.py --no-install "$@"
