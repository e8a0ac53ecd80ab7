"""Planning corrections on both backends: who gets a corrected statement again (issue 14)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_plan import mid, statement

from pg_helpers import Backend
from statement_feeds.config import Config, load_config
from statement_feeds.digests.plan import dry_run, plan_edition
from statement_feeds.domain.catalog import build_catalog
from statement_feeds.domain.corrections import Correction
from statement_feeds.domain.statements import Statement
from statement_feeds.errors import StoreError
from statement_feeds.state.api import PlannedDelivery

T0 = datetime(2024, 6, 1, 7, tzinfo=UTC)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def corrected(s: Statement, at: datetime) -> Statement:
    return dataclasses.replace(s, updated=at, digest=f"{s.digest}@{at.isoformat()}")


class Site:
    """A site on one backend: its subscribers file, statements, and editions planned."""

    def __init__(self, tmp_path: Path, backend: Backend, extra_toml: str = "") -> None:
        self.root, self.backend = tmp_path, backend
        (tmp_path / "subscribers").mkdir(exist_ok=True)
        self.subscribers("ru@x.org,ru en\nen@x.org,en\nde@x.org,de\n")
        toml = '[site]\ntitle = "S"\nurl = "https://example.org/"\ntimezone = "UTC"\n'
        (tmp_path / "statement-feeds.toml").write_text(
            toml + extra_toml + backend.state_toml(), encoding="utf-8"
        )
        self.config: Config = load_config(tmp_path / "statement-feeds.toml")
        self.statements: dict[str, Statement] = {}
        self.editions = 0

    def subscribers(self, rows: str) -> None:
        path = self.root / "subscribers" / "list.csv"
        path.write_text("email,languages\n" + rows, encoding="utf-8")

    def put(self, *statements: Statement) -> None:
        self.statements.update((s.id, s) for s in statements)

    def got(self, now: datetime) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        """Plan at ``now``: address → (new statement ids, corrected statement ids)."""
        catalog = build_catalog(self.statements.values(), [], now)
        with self.backend.open() as store:
            result = plan_edition(
                self.config, store, catalog, "daily", now, now, message_id_for=mid
            )
            assert result.created
            self.editions += 1
            rows = store.claim(1000, FAR)
            store.mark_sent(rows, now)
        assert all(d.edition_id == self.editions for d in rows)
        return {d.email: (d.statement_ids, d.corrected_ids) for d in rows}


@pytest.fixture
def site(tmp_path: Path, make_backend: Backend) -> Site:
    site = Site(tmp_path, make_backend)
    assert site.got(T0) == {}  # everyone joins now
    site.put(statement("a", "en", T0 + HOUR), statement("a", "ru", T0 + HOUR))
    assert site.got(T0 + DAY) == {
        "ru@x.org": (("a-ru",), ()),
        "en@x.org": (("a-en",), ()),
    }
    return site


def test_a_correction_goes_once_to_who_got_that_version(site: Site) -> None:
    site.put(corrected(site.statements["a-en"], T0 + DAY + 2 * HOUR))
    # en@ got a-en: it comes again. ru@ got a-ru, which did not change: nothing.
    assert site.got(T0 + 2 * DAY) == {"en@x.org": ((), ("a-en",))}
    recorded = site.backend.sql(
        "SELECT email_key, translation_key, statement_updated_at, statement_id, edition_id"
        " FROM corrections"
    )
    assert [tuple(map(str, r)) for r in recorded] == [
        ("en@x.org", "a", "2024-06-02T09:00:00.000000Z", "a-en", "3")
    ]
    # Once per updated value: the next edition has nothing.
    assert site.got(T0 + 3 * DAY) == {}
    # A typo fix (updated unchanged) notifies nobody.
    fixed = dataclasses.replace(site.statements["a-en"], digest="typo fixed")
    site.put(fixed)
    assert site.got(T0 + 4 * DAY) == {}
    # A further correction notifies again.
    site.put(corrected(fixed, T0 + 4 * DAY + HOUR))
    assert site.got(T0 + 5 * DAY) == {"en@x.org": ((), ("a-en",))}


def test_the_correction_comes_in_the_language_received_before(site: Site) -> None:
    # ru@ now prefers English, but got the Russian text: the Russian correction is theirs.
    site.subscribers("ru@x.org,en ru\nen@x.org,en\nde@x.org,de\n")
    at = T0 + DAY + 2 * HOUR
    site.put(corrected(site.statements["a-en"], at), corrected(site.statements["a-ru"], at))
    new = statement("b", "en", T0 + DAY + 3 * HOUR)
    site.put(new)
    assert site.got(T0 + 2 * DAY) == {
        "ru@x.org": (("b-en",), ("a-ru",)),  # a new statement and a correction together
        "en@x.org": (("b-en",), ("a-en",)),
    }


def test_who_never_got_it_gets_no_correction(site: Site) -> None:
    # The delivery of a-en to en@ failed for good: en@ never read the first version.
    site.backend.sql("UPDATE deliveries SET state = 'failed' WHERE email_key = 'en@x.org'")
    site.put(corrected(site.statements["a-en"], T0 + DAY + 2 * HOUR))
    assert site.got(T0 + 2 * DAY) == {}


def test_unsubscribed_addresses_get_no_correction(site: Site) -> None:
    with site.backend.open() as store:
        store.unsubscribe("en@x.org", T0 + DAY + HOUR)
    site.put(corrected(site.statements["a-en"], T0 + DAY + 2 * HOUR))
    assert site.got(T0 + 2 * DAY) == {}


def test_rows_from_before_corrections_were_tracked(site: Site) -> None:
    # As migration 7 (SQLite) / 3 (PostgreSQL) leaves older rows: no version, no value.
    site.backend.sql("UPDATE assigned SET statement_id = NULL, statement_updated_at = NULL")
    # Corrected before that edition was planned (T0 + 1 day): not news to its readers.
    site.put(corrected(site.statements["a-ru"], T0 + DAY - HOUR))
    # Corrected after: the delivery's statement ids say which version went.
    site.put(corrected(site.statements["a-en"], T0 + DAY + 2 * HOUR))
    assert site.got(T0 + 2 * DAY) == {"en@x.org": ((), ("a-en",))}
    assert site.got(T0 + 3 * DAY) == {}


def test_corrections_false_turns_it_off(tmp_path: Path, make_backend: Backend) -> None:
    site = Site(tmp_path, make_backend, "[digest]\ncorrections = false\n")
    assert site.config.digest.corrections is False
    site.got(T0)
    site.put(statement("a", "en", T0 + HOUR))
    got = {"en@x.org": (("a-en",), ()), "ru@x.org": (("a-en",), ())}
    assert site.got(T0 + DAY) == got
    site.put(corrected(site.statements["a-en"], T0 + DAY + 2 * HOUR))
    assert site.got(T0 + 2 * DAY) == {}


def test_the_dry_run_lists_corrections_and_records_nothing(site: Site) -> None:
    site.put(corrected(site.statements["a-en"], T0 + DAY + 2 * HOUR))
    catalog = build_catalog(site.statements.values(), [], T0 + 2 * DAY)
    with site.backend.open() as store:
        shown = dry_run(site.config, store, catalog, "daily", T0 + 2 * DAY)
    [planned] = shown.planned
    assert planned.corrections == (Correction("a-en", "a", T0 + DAY + 2 * HOUR),)
    assert shown.labels["a-en"] == "a (en)"
    assert site.backend.sql("SELECT COUNT(*) FROM corrections") == [(0,)]


def test_planning_a_correction_twice_aborts_the_whole_edition(site: Site) -> None:
    # The primary key of `corrections` is the hard rule behind "once per updated value".
    twice = PlannedDelivery(
        "en@x.org",
        "",
        "en",
        (),
        (),
        corrections=(Correction("a-en", "a", T0 + DAY + 2 * HOUR),),
    )
    with site.backend.open() as store:
        store.plan_edition("daily", T0 + 2 * DAY, T0 + 2 * DAY, [twice], mid)
        with pytest.raises(StoreError):
            store.plan_edition("weekly", T0 + 2 * DAY, T0 + 2 * DAY, [twice], mid)
        assert store.edition_for("weekly", T0 + 2 * DAY) is None
