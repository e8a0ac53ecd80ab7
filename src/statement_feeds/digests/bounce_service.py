"""``bounces process`` joined to the configuration and the state, for the CLI and the daemon."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from ..clock import Clock
from ..config import Config
from ..domain.verp import parse_bounce_address
from ..state.bounce_api import bounce_log
from ..state.open import open_store
from .bounce_mailbox import MaildirMailbox
from .bounces import BounceReport, BounceStore, Mailbox, process_bounces
from .envelope import verp_signer

__all__ = ["configured_maildir", "process_configured", "process_mailbox"]


def configured_maildir(config: Config) -> Path | None:
    """``digest.bounce_maildir``, resolved against the config file's folder; None if unset."""
    folder = config.digest.bounce_maildir
    return (config.path.parent / folder).resolve() if folder else None


def process_mailbox(config: Config, mailbox: Mailbox, clock: Clock) -> BounceReport:
    """Process every message waiting in ``mailbox`` against this site's state."""
    bounce = config.digest.bounce_address
    with open_store(config) as store:
        bounce_log(store)  # StateError if this backend keeps no scores
        return process_bounces(
            mailbox,
            cast(BounceStore, store),  # a Store (SubscriberStore) that is a BounceLog too
            verp_signer(config),
            parse_bounce_address(bounce) if bounce else None,
            clock,
            threshold=config.digest.bounce_threshold,
        )


def process_configured(config: Config, clock: Clock) -> BounceReport | None:
    """The daemon's turn: the configured Maildir, if there is one (None: nothing to do)."""
    folder = configured_maildir(config)
    return None if folder is None else process_mailbox(config, MaildirMailbox(folder), clock)
