"""``statement-feeds subscribers list | export | unbounce``."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..config import Config
from .common import (
    EXIT_INVALID_INPUT,
    EXIT_OK,
    EXIT_USAGE,
    Context,
    handles_errors,
    report_problems,
)

__all__ = ["subscribers"]


@click.group(short_help="List, export or unbounce subscribers.")
def subscribers() -> None:
    """Subscribers from the CSV files and the web sign-up, as planning sees them."""


def _merged_subscribers(config: Config) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """(merged subscribers, CSV problems, email key → (joined, state)) in list order."""
    from ..clock import system_clock
    from ..digests.subscriber_files import read_subscribers
    from ..domain.problems import Problem
    from ..domain.subscribers import email_key
    from ..domain.web_subscribers import merge_subscribers
    from ..state.open import open_store

    with open_store(config) as store:
        web, overrides = store.web_subscribers(include_blocked=True), store.preference_overrides()
        # Who keeps an address two files list, as planning decides it (read only).
        sightings = store.sightings(system_clock(), record=False)
        items = read_subscribers(
            config.paths.subscribers, config.site.default_language, sightings=sightings
        )
        merged = list(merge_subscribers(items, web, overrides))
        people = [m for m in merged if not isinstance(m, Problem)]
        states = store.subscriber_status([p.email for p in people])
    problems = [m for m in merged if isinstance(m, Problem)]
    return (
        people,
        problems,
        {key: states.get(key) for key in map(email_key, (p.email for p in people))},
    )


@subscribers.command("list", short_help="One line per subscriber, with source and state.")
@click.option("--all", "show_all", is_flag=True, help="Include unsubscribed and bounced addresses.")
@click.pass_obj
@handles_errors
def subscribers_list(ctx: Context, show_all: bool) -> None:
    """One line per subscriber: address, source, languages, frequency, state, joined."""
    from ..domain.subscribers import email_key

    people, problems, states = _merged_subscribers(ctx.config)
    shown = 0
    for person in people:
        joined, state = states.get(email_key(person.email)) or (None, "new")
        if state in ("unsubscribed", "bounced") and not show_all:
            continue
        shown += 1
        since = f"{joined:%Y-%m-%d}" if joined else "-"
        source = person.source.rsplit("/", 1)[-1] or "-"
        click.echo(
            f"{person.email:40} {source:16} {','.join(person.languages):10} "
            f"{person.frequency:7} {state:12} {since}"
        )
    click.echo(f"{shown} subscribers", err=True)
    report_problems(problems)
    sys.exit(EXIT_INVALID_INPUT if problems else EXIT_OK)


@subscribers.command("export", short_help="CSV of the subscribers on stdout.")
@click.option("--all", "show_all", is_flag=True, help="Include unsubscribed and bounced addresses.")
@click.pass_obj
@handles_errors
def subscribers_export(ctx: Context, show_all: bool) -> None:
    """CSV on stdout in the subscribers file format (plus source and state columns)."""
    import csv

    from ..domain.subscribers import email_key

    people, problems, states = _merged_subscribers(ctx.config)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["email", "name", "languages", "frequency", "source", "state"])
    for person in people:
        _, state = states.get(email_key(person.email)) or (None, "new")
        if state in ("unsubscribed", "bounced") and not show_all:
            continue
        source = person.source.rsplit("/", 1)[-1]
        writer.writerow(
            [person.email, person.name, " ".join(person.languages), person.frequency, source, state]
        )
    report_problems(problems)
    sys.exit(EXIT_INVALID_INPUT if problems else EXIT_OK)


@subscribers.command("unbounce", short_help="Let a bounced address get digests again.")
@click.argument("email")
@click.pass_obj
@handles_errors
def subscribers_unbounce(ctx: Context, email: str) -> None:
    """Clear a hard bounce so the address gets digests again (not an unsubscribe)."""
    from ..state.open import open_store

    with open_store(ctx.config) as store:
        cleared = store.clear_bounce(email)
    if not cleared:
        click.echo(f"error: {email} is not marked bounced", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"{email}: bounce cleared; it receives the next edition")
