"""Pure helpers of the web forms."""

from __future__ import annotations

from statement_feeds.web.forms import language_choices, parse_preferences


def test_chosen_languages_come_first_in_their_order_then_the_rest() -> None:
    assert language_choices(["en", "ru"], ["ru", "en"]) == ["ru", "en"]
    assert language_choices(["en", "ru", "fr"], ["ru"]) == ["ru", "en", "fr"]
    # A language without a feed (yet) that the subscriber chose stays on offer.
    assert language_choices(["en"], ["de", "en"]) == ["de", "en"]
    assert language_choices(["en"], []) == ["en"]


def test_preferences_outside_the_choices_are_refused() -> None:
    choices = language_choices(["en", "ru"], ["de"])
    assert parse_preferences(["de", "en"], "weekly", choices) == (("de", "en"), "weekly")
    assert parse_preferences(["fr"], "weekly", choices) is None
    assert parse_preferences([], "daily", choices) is None
    assert parse_preferences(["en"], "hourly", choices) is None
