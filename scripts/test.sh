#!/usr/bin/env bash
# The whole test suite: lint, format check, strict typing, then pytest. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
