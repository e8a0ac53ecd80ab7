"""Looking up only the keys ever assigned, pair by pair or in whole histories (issue 12),
plans the same deliveries as looking up every wanted key for every address pair by pair
did: random lists, statements, translations, corrections and join times over several
editions, planned on two states side by side."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_plan import mid, statement

from statement_feeds.config import load_config
from statement_feeds.digests.plan import plan_edition, sync_subscribers
from statement_feeds.domain.catalog import build_catalog
from statement_feeds.domain.statements import Statement
from statement_feeds.state.sqlite import SqliteStore

T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)
LANGUAGES = ["en", "ru", "de", "en ru", "ru en", "de en", "de ru en"]
TOML = (
    '[site]\ntitle = "S"\nurl = "https://example.org/"\ntimezone = "UTC"\n'
    '[digest]\nmax_age = "4d"\n'
)


class EveryKeyStore(SqliteStore):
    """The way before: every wanted key counts as possibly assigned, and each one is
    looked up for every address, pair by pair."""

    def ever_assigned(self, translation_keys: Collection[str]) -> frozenset[str]:
        return frozenset(translation_keys)

    def _whole_histories(self, wanted: int) -> bool:
        return False


def _ledger(store: SqliteStore) -> list[tuple[object, ...]]:
    rows = store._db.execute(
        "SELECT edition_id, email_key, lang, statement_ids, corrected_ids FROM deliveries"
        " ORDER BY 1, 2"
    ).fetchall()
    assigned = store._db.execute("SELECT * FROM assigned ORDER BY 1, 2").fetchall()
    corrections = store._db.execute("SELECT * FROM corrections ORDER BY 1, 2, 3").fetchall()
    return [*rows, *assigned, *corrections]


@pytest.mark.parametrize("seed", range(6))
def test_the_same_deliveries_as_looking_up_every_key(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    sites = {}
    for name in ("now", "before"):
        root = tmp_path / name
        (root / "subscribers").mkdir(parents=True)
        (root / "statement-feeds.toml").write_text(TOML, encoding="utf-8")
        sites[name] = load_config(root / "statement-feeds.toml")
    people: list[str] = []
    statements: dict[str, Statement] = {}
    now = T0
    for round_ in range(8):
        now += timedelta(hours=rng.choice([6, 12, 24, 48]))
        # Some join, at times between the editions (a sync before the plan).
        people += [
            f"p{len(people) + i}@x.org,{rng.choice(LANGUAGES)},daily"
            for i in range(rng.randint(0, 15))
        ]
        # Some statements appear (some languages only), some earlier ones get corrected.
        for n in range(rng.randint(0, 3)):
            key, published = f"r{round_}s{n}", now - timedelta(hours=rng.randint(0, 30))
            for lang in rng.sample(["en", "ru", "de"], rng.randint(1, 3)):
                made = statement(key, lang, published)
                statements[made.id] = made
        for s in rng.sample(sorted(statements.values(), key=lambda s: s.id), 2 * (round_ > 2)):
            statements[s.id] = dataclasses.replace(
                s, updated=now - timedelta(hours=1), digest=f"{s.digest}@{round_}"
            )
        catalog = build_catalog(statements.values(), [], now)
        joined = now - timedelta(hours=rng.randint(1, 5))
        ledgers = []
        for name, config in sites.items():
            text = "email,languages,frequency\n" + "\n".join(people) + "\n"
            (config.paths.subscribers / "list.csv").write_text(text, encoding="utf-8")
            kind = SqliteStore if name == "now" else EveryKeyStore
            with kind.open(config.paths.state) as store:
                sync_subscribers(config, store, joined)
                plan_edition(config, store, catalog, "daily", now, now, message_id_for=mid)
                ledgers.append(_ledger(store))
        assert ledgers[0] == ledgers[1], f"edition {round_ + 1}"
    assert any(row for row in ledgers[0]), "nothing was planned: the test proves nothing"
