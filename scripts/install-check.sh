#!/usr/bin/env bash
# What `pip install .` gives an admin, with no test tools: build a wheel, install it into a
# fresh venv (its dependencies from PyPI), and run a new site with it from a folder outside
# this repository (so the templates and locales must come from the installed package):
# init, check, build, digest send --dry-run, then a real digest into the Maildir outbox,
# and status; then the daemon as the unit runs it (serving /healthz), a digest it delivers,
# `state backup` while it runs, a restore into a new folder that `status` reads, and
# `systemd-analyze verify` of contrib/statement-feeds.service (when present). Usage: scripts/install-check.sh [WORK_DIR]  (default: a new temp folder).
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

step "the daemon, as the unit runs it (its environment file), serving on a free port"
port=$("$work/venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i "s|^# listen = \"\"|listen = \"127.0.0.1:$port\"|" statement-feeds.toml
grep -q "^listen = \"127.0.0.1:$port\"" statement-feeds.toml
printf 'STATEMENT_FEEDS_TRUSTED_PROXIES=1\n' > "$work/env"   # /etc/statement-feeds/env
"$sf" check
(set -a; . "$work/env"; exec "$sf" run --rescan 1) 2> "$work/daemon.log" &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true' EXIT
healthz() {
  "$work/venv/bin/python" - "$port" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=2) as r:
    sys.exit(0 if b'"ready": true' in r.read().replace(b'":true', b'": true') else 1)
PY
}
for _ in $(seq 150); do healthz 2>/dev/null && break; sleep 0.2; done
healthz || { cat "$work/daemon.log" >&2; echo "the daemon never became ready" >&2; exit 1; }
"$sf" status > "$work/status.running"   # not piped into grep -q: that would stop it early
grep -q "^daemon   running (pid $daemon)" "$work/status.running"

step "digest send while the daemon runs (it delivers), then state backup while it runs"
now=$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)
printf -- '---\ntitle: Published while the daemon ran\ndate: %s\n---\n\nLater.\n' "$now" \
  > statements/later.md
sleep 3
"$sf" digest send
for _ in $(seq 100); do [ "$(ls outbox/new | wc -l)" -eq 2 ] && break; sleep 0.1; done
[ "$(ls outbox/new | wc -l)" -eq 2 ] || { cat "$work/daemon.log" >&2; echo "the daemon did not deliver" >&2; exit 1; }
"$sf" state backup "$work/backup.sqlite" | tee "$work/backup.out"
grep -q 'integrity ok' "$work/backup.out"
grep -q "keep with it: $PWD/state/secret.key" "$work/backup.out"
kill -0 "$daemon"   # it ran all along
"$sf" status > "$work/status.before"
kill -TERM "$daemon"
wait "$daemon" || { cat "$work/daemon.log" >&2; echo "the daemon did not stop cleanly" >&2; exit 1; }
trap - EXIT

step "restore into a new folder: the backup, secret.key, the config, the statements"
restored=$work/restored
mkdir -p "$restored/state"
cp statement-feeds.toml "$restored/"
cp -r statements subscribers "$restored/"
cp "$work/backup.sqlite" "$restored/state/state.sqlite"
install -m 600 state/secret.key "$restored/state/secret.key"
"$sf" --config "$restored/statement-feeds.toml" status | tee "$work/status.after"
grep -q '^daemon   not running' "$work/status.after"
# The editions and the ledger are the ones backed up (2 messages sent).
diff <(grep -E '^(edition|ledger)' "$work/status.before") <(grep -E '^(edition|ledger)' "$work/status.after")
grep -q '^ledger   sent 2, pending 0, deferred 0, failed 0' "$work/status.after"
"$sf" --config "$restored/statement-feeds.toml" deliveries --state sent | grep -c reader@example.org \
  | grep -qx 2

step "the systemd unit, with this venv's program (systemd-analyze verify)"
if command -v systemd-analyze > /dev/null; then
  sed "s|/opt/statement-feeds/venv|$work/venv|" "$repo/contrib/statement-feeds.service" \
    > "$work/statement-feeds.service"
  # It exits 0 on a setting it ignores, saying so: any word from it is a problem.
  said=$(systemd-analyze verify "$work/statement-feeds.service" 2>&1) \
    || { echo "$said" >&2; exit 1; }
  [ -z "$said" ] || { echo "systemd-analyze verify: $said" >&2; exit 1; }
else
  echo "systemd-analyze not found: the unit is not verified"
fi
step "ok: $work"
