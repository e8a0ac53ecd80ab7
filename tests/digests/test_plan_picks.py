"""The choice made once per (languages, join time, history) triple (``plan._Selection``):
the same answers as ``Selector.choose`` for every subscriber, also after the memo
is cleared at its bound, and a plan whose subscribers share triples gives each one
what its own history allows."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from statement_feeds.digests import plan
from statement_feeds.domain.corrections import CorrectionFinder
from statement_feeds.domain.selection import Selector
from statement_feeds.domain.statements import Statement

NOW = datetime(2024, 6, 10, tzinfo=UTC)


def published(count: int) -> list[Statement]:
    out = []
    for n in range(count):
        when = NOW - timedelta(hours=3 * n + 1)
        for lang in ("en", "ru", "de")[: 1 + n % 3]:
            out.append(
                Statement(
                    f"s{n}.{lang}.md", f"s{n}-{lang}", lang, f"s{n}", f"S {n}", when,
                    when + timedelta(minutes=n % 2),
                    f"https://example.org/{lang}/s{n}/", "", "", "", False, f"{n}{lang}",
                )
            )  # fmt: skip
    return out


def selection(statements: list[Statement]) -> plan._Selection:
    max_age = timedelta(days=30)
    return plan._Selection(
        Selector(statements, NOW, max_age),
        CorrectionFinder(statements, NOW, max_age, enabled=False),
    )


@pytest.mark.parametrize("kept", [3, 10_000])
def test_picks_are_what_choose_gives(monkeypatch: pytest.MonkeyPatch, kept: int) -> None:
    monkeypatch.setattr(plan, "_PICKS_KEPT", kept)  # 3: cleared again and again
    statements = published(12)
    chosen = selection(statements)
    reference = Selector(statements, NOW, timedelta(days=30))
    keys = sorted({s.translation_key for s in statements})
    rng = random.Random(5)
    for _ in range(2000):
        languages = tuple(rng.sample(["en", "ru", "de", "fr"], rng.randint(1, 3)))
        joined = NOW - timedelta(hours=rng.choice([0, 2, 5, 11, 40, 1000]))
        assigned = frozenset(rng.sample(keys, rng.randint(0, len(keys))))
        picks = chosen.picks(languages, joined, assigned)
        expected = reference.choose(languages, joined, assigned)
        assert picks.statement_ids == tuple(c.statement_id for c in expected)
        assert picks.translation_keys == tuple(c.translation_key for c in expected)
        assert picks.updated == tuple(c.updated or c.published for c in expected)
        assert (picks is plan._NO_PICKS) == (not expected)
        assert len(chosen.picked) <= kept


def test_the_memo_is_keyed_by_the_history_too() -> None:
    chosen = selection(published(3))
    fresh = chosen.picks(("en",), NOW - timedelta(days=1), frozenset())
    given = chosen.picks(("en",), NOW - timedelta(days=1), frozenset({"s0"}))
    assert "s0" in fresh.translation_keys and "s0" not in given.translation_keys
    assert chosen.picks(("en",), NOW - timedelta(days=1), frozenset()) is fresh
