#!/usr/bin/env bash
# What `pip install .` gives an admin, with no test tools: build a wheel, install it into a
# fresh venv (its dependencies from PyPI), and run a new site with it from a folder outside
# this repository (so the templates and locales must come from the installed package):
# init, check, build, digest send --dry-run, then a real digest into the Maildir outbox,
# and status. Usage: scripts/install-check.sh [WORK_DIR]  (default: a new temp folder).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d -t statement-feeds-install.XXXXXX)}
PYTHON=${PYTHON:-python3}
step() { printf '== %s\n' "$*"; }

step "wheel"
rm -rf "$work/dist" "$work/venv" "$work/site"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$repo"
wheel=$(ls "$work"/dist/statement_feeds-*.whl)
# Package data the site relies on must be in the wheel, not only in the source tree.
"$PYTHON" - "$wheel" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["statement_feeds/templates/digest.txt", "statement_feeds/templates/digest.html",
        "statement_feeds/templates/confirm.txt", "statement_feeds/templates/web/base.html",
        "statement_feeds/templates/web/home.html", "statement_feeds/locales/ru.po"]
missing = [n for n in need if n not in names]
sys.exit(f"missing from the wheel: {missing}" if missing else 0)
PY

step "install into a fresh venv"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "$wheel"
for tool in pytest hypothesis aiosmtpd mypy ruff; do
  if "$work/venv/bin/python" -c "import $tool" 2>/dev/null; then
    echo "a test tool came with the install: $tool" >&2; exit 1
  fi
done
sf=$work/venv/bin/statement-feeds
"$sf" --version

step "init, check, build"
cd "$work"   # not the repository: nothing may come from its src/ or templates
"$sf" init site --title "Install check" --timezone Europe/London
cd site
"$sf" check
"$sf" build
test -s public/feeds/en.atom

step "digest send --dry-run, then to the Maildir"
echo "reader@example.org,Reader,en,daily" >> subscribers/subscribers.csv
"$sf" check
"$sf" digest send --dry-run
"$sf" digest send     # records when the reader joined: nothing is new for them yet
now=$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)
printf -- '---\ntitle: Published after the reader joined\ndate: %s\n---\n\nNew.\n' "$now" \
  > statements/new.md
sleep 3
"$sf" digest send
count=$(ls outbox/new | wc -l)
[ "$count" -eq 1 ] || { echo "expected 1 message in outbox/new, found $count" >&2; exit 1; }
message=outbox/new/$(ls outbox/new)
grep -q '^List-Unsubscribe-Post: List-Unsubscribe=One-Click' "$message"
grep -q 'Published after the reader joined' "$message"
"$sf" status
step "ok: $work"
