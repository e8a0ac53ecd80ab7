"""`deliveries` end to end: the CLI, real SQLite, a real aiosmtpd server on loopback.

The site is ``test_digest_cli``'s (subscribers joined at T0, statements published
after; the site's time zone is Europe/London, +01:00 in May). Edition 1 (at T0) has
no deliveries; edition 2 is sent at T1 with the server refusing three of its four
recipients in three ways: a bounce, a policy refusal and a temporary failure.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_digest_cli import T1, Site, server, site  # noqa: F401 (fixtures)

from statement_feeds.cli.deliveries import reply_parts
from statement_feeds.state.api import DeliveryRow
from statement_feeds.state.sqlite import SqliteStore

BOUNCE = "550 5.1.1 no such user"
REFUSED = "554 5.7.1 relaying denied"
LATER = "451 4.3.0 try later"
EVERYONE = {"en@example.com", "ru@example.com", "ruonly@example.com", "weekly@example.com"}


@pytest.fixture
def failures(site: Site) -> Site:  # noqa: F811 (the fixture imported above)
    site.server.rcpt_replies["ruonly@example.com"] = BOUNCE
    site.server.rcpt_replies["en@example.com"] = REFUSED
    site.server.rcpt_replies["ru@example.com"] = LATER
    sent = site.cli("digest", "send", at=T1)
    assert sent.exit_code == 0, sent.output
    return site


def lines(where: Site, *args: str) -> list[str]:
    result = where.cli("deliveries", *args, at=T1)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def by_address(where: Site, *args: str) -> dict[str, list[str]]:
    return {line.split()[1]: line.split() for line in lines(where, *args)}


def records(where: Site, *args: str) -> dict[str, dict[str, Any]]:
    found = [json.loads(line) for line in lines(where, "--format", "json", *args)]
    return {record["address"]: record for record in found}


def test_text_has_one_aligned_line_per_delivery_with_its_last_reply(failures: Site) -> None:
    output = lines(failures)
    rows = by_address(failures)

    assert set(rows) == EVERYONE and len(output) == 4
    # Aligned: each column starts where it does on the other lines.
    assert len({line.index(f" {line.split()[2]} ") for line in output}) == 1
    assert len({line.index(" 1 ") for line in output}) == 1
    assert rows["ruonly@example.com"][:6] == [
        "2",
        "ruonly@example.com",
        "bounced",
        "1",
        "550",
        "5.1.1",
    ]
    assert rows["en@example.com"][2:6] == ["failed", "1", "554", "5.7.1"]
    assert rows["ru@example.com"][2:6] == ["deferred", "1", "451", "4.3.0"]
    assert rows["ru@example.com"][6].startswith("2024-05-02T08:0")  # next attempt, local
    assert rows["ru@example.com"][6].endswith("+01:00")
    assert " ".join(rows["ru@example.com"][7:]).endswith("4.3.0 try later")
    assert rows["weekly@example.com"][2:] == ["sent", "1", "-", "-", "-", "-"]
    assert rows["ruonly@example.com"][6] == "-"  # failed: no next attempt


def test_json_lines_one_object_per_delivery(failures: Site) -> None:
    found = records(failures)

    assert set(found) == EVERYONE
    bounced = found["ruonly@example.com"]
    assert bounced["edition"] == 2 and bounced["attempts"] == 1
    assert bounced["state"] == "failed" and bounced["address_bounced"] is True
    assert bounced["last_reply"]["code"] == 550
    assert bounced["last_reply"]["enhanced_code"] == "5.1.1"
    assert bounced["last_reply"]["text"].endswith(BOUNCE)
    assert bounced["next_attempt"] is None
    deferred = found["ru@example.com"]
    assert deferred["last_reply"]["code"] == 451
    assert deferred["last_reply"]["enhanced_code"] == "4.3.0"
    retry = datetime.fromisoformat(deferred["next_attempt"])
    assert retry.utcoffset() == timedelta(hours=1) and retry > T1
    assert found["en@example.com"]["address_bounced"] is False
    sent = found["weekly@example.com"]
    assert sent["state"] == "sent" and sent["last_reply"] is None
    assert datetime.fromisoformat(sent["updated"]) == T1


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("failed", {"en@example.com", "ruonly@example.com"}),  # bounces are failures too
        ("bounced", {"ruonly@example.com"}),
        ("deferred", {"ru@example.com"}),
        ("sent", {"weekly@example.com"}),
        ("pending", set()),
        ("cancelled", set()),
        ("sending", set()),
    ],
)
def test_state_filter(failures: Site, state: str, expected: set[str]) -> None:
    assert set(by_address(failures, "--state", state)) == expected
    assert set(records(failures, "--state", state)) == expected


def test_sending_lists_the_unknown_outcomes(failures: Site) -> None:
    # What a kill -9 between hand-over and reply leaves (tests/test_crash.py makes it).
    failures.ledger("UPDATE deliveries SET state = 'sending' WHERE email = ?", "ru@example.com")

    [row] = by_address(failures, "--state", "sending").values()

    assert row[1:3] == ["ru@example.com", "sending"]


def test_an_unbounced_address_is_failed_not_bounced(failures: Site) -> None:
    cleared = failures.cli("subscribers", "unbounce", "ruonly@example.com", at=T1)
    assert cleared.exit_code == 0, cleared.output

    assert by_address(failures, "--state", "bounced") == {}
    assert by_address(failures, "--state", "failed")["ruonly@example.com"][2] == "failed"


def test_edition_filter(failures: Site) -> None:
    assert set(by_address(failures, "--edition", "2")) == EVERYONE
    empty = failures.cli("deliveries", "--edition", "1", at=T1)  # planned, nobody to send to
    assert empty.exit_code == 0 and empty.stdout == ""
    assert empty.stderr == "no deliveries match\n"
    assert failures.cli("deliveries", "--edition", "99", at=T1).stdout == ""


def test_address_filter_takes_any_spelling_and_combines(failures: Site) -> None:
    assert set(by_address(failures, "--address", " RUonly@Example.COM")) == {"ruonly@example.com"}
    both = records(failures, "--address", "ru@example.com", "--state", "deferred", "--edition", "2")
    assert set(both) == {"ru@example.com"}
    assert by_address(failures, "--address", "ru@example.com", "--state", "failed") == {}


def test_an_unknown_address_is_an_empty_answer(failures: Site) -> None:
    result = failures.cli("deliveries", "--address", "nobody@example.com", at=T1)
    assert (result.exit_code, result.stdout) == (0, "")
    assert "no deliveries match" in result.stderr
    result = failures.cli(
        "deliveries", "--address", "nobody@example.com", "--format", "json", at=T1
    )
    assert (result.exit_code, result.stdout) == (0, "")


@pytest.mark.parametrize(
    "args",
    [
        ["--edition", "0"],
        ["--edition", "two"],
        ["--state", "lost"],
        ["--state", "FAILED!"],
        ["--format", "xml"],
    ],
)
def test_bad_option_values_are_usage_errors(failures: Site, args: list[str]) -> None:
    result = failures.cli("deliveries", *args, at=T1)
    assert result.exit_code == 2
    assert result.stdout == "" and "Invalid value" in result.stderr


def test_help_names_every_state(site: Site) -> None:  # noqa: F811
    text = " ".join(site.cli("deliveries", "--help", at=T1).stdout.split())
    for state in ("failed", "deferred", "bounced", "sending", "pending", "sent", "cancelled"):
        assert state in text


def test_status_points_at_deliveries_when_some_failed(failures: Site) -> None:
    result = failures.cli("status", at=T1)
    assert result.exit_code == 0, result.output
    assert "statement-feeds deliveries --state failed" in result.stdout


def test_status_says_nothing_of_deliveries_when_all_went_out(site: Site) -> None:  # noqa: F811
    assert site.cli("digest", "send", at=T1).exit_code == 0
    result = site.cli("status", at=T1)
    assert result.exit_code == 0, result.output
    assert "deliveries --state" not in result.stdout


def test_the_store_streams_rows_with_a_limit_and_refuses_unknown_states(failures: Site) -> None:
    with SqliteStore.open(failures.root / "state") as store:
        rows = store.deliveries(limit=2)
        assert [row.email for row in rows] == ["en@example.com", "ru@example.com"]
        [bounced] = store.deliveries(state="bounced")
        assert bounced.address_bounced and bounced.state == "failed"
        with pytest.raises(ValueError, match="unknown delivery state"):
            list(store.deliveries(state="lost"))


def row(code: int | None, text: str | None) -> DeliveryRow:
    now = datetime(2024, 5, 2, tzinfo=UTC)
    return DeliveryRow(1, "a@example.com", "failed", 1, code, text, None, now, False)


@pytest.mark.parametrize(
    ("code", "text", "enhanced"),
    [
        (550, "recipient refused: 550 5.1.1 no such user", "5.1.1"),
        (451, "451 recipient deferred: 4.3.0 try later", "4.3.0"),
        (550, "recipient refused: 550 no such user", None),
        (554, "554 see 2.0.0 or 4.7.1, then 5.07.001 here", "5.7.1"),  # its class only
        (None, "connection dropped", None),
    ],
)
def test_reply_parts_reads_the_enhanced_code(
    code: int | None, text: str, enhanced: str | None
) -> None:
    assert reply_parts(row(code, text)) == (code, enhanced, text)
