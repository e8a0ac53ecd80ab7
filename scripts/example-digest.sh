#!/usr/bin/env bash
# With the example daemon running (scripts/example.sh): publish a new statement dated now
# (in English and Russian), trigger a digest and show the messages in the Maildir outbox.
set -euo pipefail
cd "$(dirname "$0")/.."
site=examples/site
sf() { .venv/bin/statement-feeds --config "$site/statement-feeds.toml" "$@"; }
# Two seconds ahead: strictly after the subscribers joined (the daemon records that at
# start, perhaps within this very second); the statement is public when the digest is sent.
now=$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)
stamp=$(date -u +%Y%m%d%H%M%S)
mkdir -p "$site/statements/demo"
cat > "$site/statements/demo/demo-$stamp.en.md" <<MD
---
title: "Demo statement of $now"
date: $now
---

A statement published just now, to show a digest being sent.
MD
cat > "$site/statements/demo/demo-$stamp.ru.md" <<MD
---
title: "Демонстрационное заявление ($now)"
date: $now
---

Заявление, опубликованное только что, чтобы показать отправку рассылки.
MD
sleep 3     # until the statement's date has passed (the daemon publishes it then)
sf digest send
for _ in $(seq 1 50); do   # the daemon delivers: wait up to 10 s for the messages
  [ "$(ls "$site/outbox/new" 2>/dev/null | wc -l)" -gt 0 ] && break
  sleep 0.2
done
echo "messages in $site/outbox/new:"
ls -1 "$site/outbox/new"
