#!/usr/bin/env bash
# Make sure Postfix's smtp-sink and smtp-source exist (the SMTP benchmarks' server and
# reference sender): installs the Debian package postfix when they are missing. Only the
# two binaries are used; the postfix service is not started.
set -euo pipefail
if command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ]; then
  exit 0
fi
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
