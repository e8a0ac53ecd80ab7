"""``bounces process`` joined to the configuration and the state, for the CLI and the daemon."""

from __future__ import annotations

from contextlib import ExitStack
from typing import cast

from ..clock import Clock
from ..config import Config
from ..domain.verp import VerpSigner, parse_bounce_address
from ..environment import imap_password
from ..state.bounce_api import bounce_log
from ..state.open import open_store
from .bounce_mailbox import MaildirMailbox, open_imap
from .bounces import BounceReport, BounceStore, Mailbox, process_bounces

__all__ = ["configured_mailbox", "process_configured", "process_mailbox"]


def configured_mailbox(config: Config, stack: ExitStack) -> Mailbox | None:
    """``digest.bounce_mailbox``: an IMAP folder (``imap://``, ``imaps://``; logged in, and
    out when ``stack`` closes) or a Maildir relative to the config file; None if unset."""
    where = config.digest.bounce_mailbox
    if not where:
        return None
    if where.partition("://")[0] in ("imap", "imaps"):
        return stack.enter_context(open_imap(where, imap_password()))
    return MaildirMailbox((config.path.parent / where).resolve())


def process_mailbox(config: Config, mailbox: Mailbox, clock: Clock) -> BounceReport:
    """Process every message waiting in ``mailbox`` against this site's state."""
    bounce = config.digest.bounce_address
    with open_store(config) as store:
        bounce_log(store)  # StateError if this backend keeps no scores
        return process_bounces(
            mailbox,
            cast(BounceStore, store),  # a Store (SubscriberStore) that is a BounceLog too
            VerpSigner(store.signing_keys()),  # the keys the senders signed with
            parse_bounce_address(bounce) if bounce else None,
            clock,
            threshold=config.digest.bounce_threshold,
        )


def process_configured(config: Config, clock: Clock) -> BounceReport | None:
    """The daemon's turn: the configured mailbox, if there is one (None: nothing to do)."""
    with ExitStack() as stack:
        mailbox = configured_mailbox(config, stack)
        return None if mailbox is None else process_mailbox(config, mailbox, clock)
