#!/usr/bin/env bash
# The edition benchmark: `statement-feeds digest send` to 100,000 subscribers against
# Postfix's smtp-sink, with smtp-source as the reference sender in the same run.
# Installs the Debian package postfix when smtp-sink is missing (only its smtp-sink and
# smtp-source binaries are used; the postfix service is not started). Extra arguments go
# to bench/smtp_bench.py (e.g. --runs 3, --subscribers 200000, --profile).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if ! command -v smtp-sink >/dev/null 2>&1 && [ ! -x /usr/sbin/smtp-sink ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "smtp-sink: not installed, installing the Debian package postfix ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq postfix >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq postfix >/dev/null 2>&1; } \
      || { echo "smtp-sink: could not install postfix" >&2; exit 2; }
  else
    echo "smtp-sink: not installed and apt-get is not usable here (install postfix)" >&2
    exit 2
  fi
fi
exec .venv/bin/python bench/smtp_bench.py "$@"
